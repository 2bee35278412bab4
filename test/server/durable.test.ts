import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeControl, encodePub, FrameType, ulidToString } from '../../src/protocol/index.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const text = (s: string) => new TextEncoder().encode(s);

async function call(c: RawClient, reqId: number, args: Record<string, unknown>) {
  c.write(encodeControl(FrameType.CMD, reqId, args));
  const f = await c.next((x) => (x.type === FrameType.OK || x.type === FrameType.ERR) && x.reqId === reqId);
  const body: Record<string, unknown> = f.type === FrameType.OK || f.type === FrameType.ERR ? f.body : {};
  return { type: f.type, body };
}

async function rest(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const textBody = await res.text();
  return {
    status: res.status,
    json: (textBody ? JSON.parse(textBody) : {}) as Record<string, unknown> & {
      messages?: Array<Record<string, unknown>>;
    },
  };
}

describe('durable queues and streams over REST', () => {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer({ 'message_bus.storage': 'file', 'message_bus.max_payload_bytes': '4096' });
  });
  after(() => ts.close());

  it('declares, publishes with confirm, pulls, acks, and reports stats', async () => {
    const base = ts.httpUrl;
    assert.equal((await rest(base, 'POST', '/v1/queues', { name: 'r1', bindings: ['rest.#'] })).status, 201);
    const pub = await rest(base, 'POST', '/v1/publish', { topic: 'rest.a', payload: 'one', confirm: true });
    assert.deepEqual([pub.status, pub.json.queues], [200, ['r1']]);
    const direct = await rest(base, 'POST', '/v1/queues/r1/messages', { payload: 'two', priority: 'high' });
    assert.equal(direct.status, 201);
    const pulled = await rest(base, 'POST', '/v1/queues/r1/pull', { max: 10 });
    const msgs = pulled.json.messages!;
    assert.deepEqual(
      msgs.map((m) => Buffer.from(String(m.payload_base64), 'base64').toString()),
      ['two', 'one'],
      'higher priority first',
    );
    const consumer = pulled.json.consumer as string;
    const acked = await rest(base, 'POST', '/v1/queues/r1/ack', {
      consumer,
      delivery_ids: msgs.map((m) => m.delivery_id),
    });
    assert.deepEqual(acked.json, { acked: 2 });
    const again = await rest(base, 'POST', '/v1/queues/r1/ack', {
      consumer,
      delivery_id: msgs[0]!.delivery_id,
    });
    assert.deepEqual([again.status, again.json.code], [404, 'UNKNOWN_DELIVERY']);
    const info = await rest(base, 'GET', '/v1/queues/r1');
    const stats = info.json.stats as Record<string, number>;
    assert.equal(stats.depth, 0);
    assert.equal(stats.acked_total, 2);
    assert.equal(stats.published_total, 2);
  });

  it('dead-letters by reason and replays them through REST', async () => {
    const base = ts.httpUrl;
    await rest(base, 'POST', '/v1/queues', { name: 'r2', max_length: 2, overflow: 'drop-oldest' });
    for (const p of ['a', 'b', 'c']) await rest(base, 'POST', '/v1/queues/r2/messages', { payload: p });
    await rest(base, 'POST', '/v1/queues/r2/messages', { payload: 'short-lived', ttl_ms: 1 });
    await new Promise((r) => setTimeout(r, 50));
    const pulled = await rest(base, 'POST', '/v1/queues/r2/pull', { max: 10 });
    const consumer = pulled.json.consumer as string;
    const first = pulled.json.messages![0]!;
    await rest(base, 'POST', '/v1/queues/r2/nack', {
      consumer,
      delivery_id: first.delivery_id,
      requeue: false,
      error: 'bad input',
    });
    const dl = await rest(base, 'GET', '/v1/queues/r2/dead-letters');
    const reasons = (dl.json.dead_letters as Array<Record<string, unknown>>).map((d) => d.reason).sort();
    assert.ok(reasons.includes('overflow'), `overflow in ${reasons}`);
    assert.ok(reasons.includes('rejected'), `rejected in ${reasons}`);
    const rejected = (dl.json.dead_letters as Array<Record<string, unknown>>).find(
      (d) => d.reason === 'rejected',
    )!;
    assert.equal(rejected.last_error, 'bad input');
    const replay = await rest(base, 'POST', '/v1/queues/r2/dead-letters/replay', {});
    assert.ok((replay.json.replayed as number) >= 2);
    const purge = await rest(base, 'DELETE', '/v1/queues/r2/dead-letters');
    assert.equal(purge.status, 200);
  });

  it('reads streams from a position and keeps a reader position', async () => {
    const base = ts.httpUrl;
    await rest(base, 'POST', '/v1/streams', { name: 's1', bindings: ['evt.#'] });
    for (let i = 1; i <= 5; i++)
      await rest(base, 'POST', '/v1/publish', { topic: 'evt.x', payload: `e${i}`, confirm: true });
    const fromSeq = await rest(base, 'GET', '/v1/streams/s1/messages?from=seq:3');
    assert.deepEqual(
      fromSeq.json.messages!.map((m) => m.seq),
      [3, 4, 5],
    );
    const r1 = await rest(base, 'GET', '/v1/streams/s1/messages?reader=web&max=2&from=reader:web');
    assert.deepEqual(
      r1.json.messages!.map((m) => m.seq),
      [1, 2],
    );
    const r2 = await rest(base, 'GET', '/v1/streams/s1/messages?reader=web&from=reader:web');
    assert.deepEqual(
      r2.json.messages!.map((m) => m.seq),
      [3, 4, 5],
    );
    const info = await rest(base, 'GET', '/v1/streams/s1');
    assert.deepEqual(info.json.readers, { web: 6 });
  });

  it('exports queue size, processed and dead-letter metrics per queue', async () => {
    await new Promise((r) => setTimeout(r, 1200)); // sizes refresh with the once-a-second timer
    const text = await (await fetch(`${ts.adminUrl}/metrics`)).text();
    assert.match(text, /messaging_message_queue_size\{kind="queue",queue="r1"\} 0/);
    assert.match(text, /messaging_message_queue_size\{kind="stream",queue="s1"\} 5/);
    assert.match(text, /messaging_messages_processed_total\{kind="queue",queue="r1"\} 2/);
    assert.match(text, /messaging_dead_letters_total\{queue="r2"\} [1-9]/);
    assert.match(
      text,
      /messaging_message_processing_duration_seconds_count\{kind="queue",queue="r1"\} [1-9]/,
    );
  });
});

describe('durable bad input: clear errors, nothing lost', () => {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer({ 'message_bus.storage': 'file', 'message_bus.max_payload_bytes': '1024' });
  });
  after(() => ts.close());

  it('a delivery held by one connection cannot be acked by another', async () => {
    const a = await RawClient.ready(ts.port);
    const b = await RawClient.ready(ts.port);
    await call(a, 2, { op: 'queue.declare', name: 'f1' });
    a.write(encodePub(3, 'f1', text('mine'), { meta: { queue: 'f1' } }));
    await a.next((f) => f.type === FrameType.OK && f.reqId === 3);
    await call(a, 4, { op: 'queue.consume', queue: 'f1', sid: 1 });
    const msg = await a.next((f) => f.type === FrameType.MSG);
    const deliveryId = msg.type === FrameType.MSG ? msg.meta?.delivery_id : undefined;
    const foreign = await call(b, 5, { op: 'queue.ack', queue: 'f1', delivery_id: deliveryId });
    assert.deepEqual([foreign.type, foreign.body.code], [FrameType.ERR, 'UNKNOWN_DELIVERY']);
    const own = await call(a, 6, { op: 'queue.ack', queue: 'f1', delivery_id: deliveryId });
    assert.equal(own.type, FrameType.OK, 'the foreign attempt did not settle it');
    a.close();
    b.close();
  });

  it('confirms a direct queue publish with CONFIRM on protocol 2 and with a JSON OK on protocol 1', async () => {
    const v2 = await RawClient.ready(ts.port, 2);
    const v1 = await RawClient.ready(ts.port, 1);
    await call(v2, 2, { op: 'queue.declare', name: 'cf' });
    v2.write(encodePub(3, 'cf', text('two'), { meta: { queue: 'cf' } }));
    v1.write(encodePub(3, 'cf', text('one'), { meta: { queue: 'cf' } }));
    const binary = await v2.next((f) => 'reqId' in f && f.reqId === 3);
    const json = await v1.next((f) => 'reqId' in f && f.reqId === 3);
    assert.equal(binary.type, FrameType.CONFIRM);
    assert.equal(json.type, FrameType.OK);
    const ids = [
      binary.type === FrameType.CONFIRM ? ulidToString(binary.msgId) : '',
      json.type === FrameType.OK ? json.body.id : '',
    ];
    // Both ids are the stored messages' ids.
    const pulled = await call(v2, 4, { op: 'queue.pull', queue: 'cf', max: 10 });
    const stored = pulled.body.messages as Array<{ id: string; payload_base64: string }>;
    assert.deepEqual(
      stored.map((m) => [m.id, Buffer.from(m.payload_base64, 'base64').toString()]).sort(),
      [
        [ids[1], 'one'],
        [ids[0], 'two'],
      ].sort(),
    );
    // A refused publish is an ERR on either version.
    v2.write(encodePub(5, 'cf', text('x'), { meta: { queue: 'missing' } }));
    const refused = await v2.next((f) => 'reqId' in f && f.reqId === 5);
    assert.deepEqual(
      [refused.type, refused.type === FrameType.ERR ? refused.body.code : ''],
      [FrameType.ERR, 'NOT_FOUND'],
    );
    v1.close();
    v2.close();
  });

  it('missing queue, oversized message and a full queue each get their code; the connection stays open', async () => {
    const c = await RawClient.ready(ts.port);
    const missing = await call(c, 2, { op: 'queue.consume', queue: 'nope', sid: 1 });
    assert.deepEqual([missing.body.code, typeof missing.body.message], ['NOT_FOUND', 'string']);
    await call(c, 3, { op: 'queue.declare', name: 'full', max_length: 2 });
    c.write(encodePub(4, 'full', new Uint8Array(2000), { meta: { queue: 'full' } }));
    assert.equal((await c.error()).code, 'PAYLOAD_TOO_LARGE');
    for (let i = 0; i < 3; i++)
      c.write(encodePub(10 + i, 'full', text(`m${i}`), { meta: { queue: 'full' } }));
    const results = [];
    for (let i = 0; i < 3; i++) {
      const f = await c.next(
        (x) => (x.type === FrameType.OK || x.type === FrameType.ERR) && x.reqId === 10 + i,
      );
      results.push(f.type === FrameType.OK ? 'ok' : String(f.type === FrameType.ERR && f.body.code));
    }
    assert.deepEqual(results, ['ok', 'ok', 'QUEUE_FULL']);
    const pulled = await call(c, 20, { op: 'queue.pull', queue: 'full', max: 10 });
    const payloads = (pulled.body.messages as Array<{ payload_base64: string }>).map((m) =>
      Buffer.from(m.payload_base64, 'base64').toString(),
    );
    assert.deepEqual(payloads, ['m0', 'm1'], 'the accepted messages are intact');
    c.close();
  });
});

describe('full disk', () => {
  it('answers STORAGE_FULL, keeps every confirmed message, and keeps serving', async (t) => {
    const mountPoint = mkdtempSync(join(tmpdir(), 'full-disk-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mountPoint], { stdio: 'ignore' });
    } catch {
      rmSync(mountPoint, { recursive: true, force: true });
      t.skip(
        'cannot mount a small tmpfs here (needs root): the full-disk case is covered at the storage level',
      );
      return;
    }
    const dataDir = join(mountPoint, 'data');
    mkdirSync(dataDir);
    const ts = await startTestServer({
      'message_bus.storage': 'file',
      'message_bus.persistence_path': dataDir,
    });
    try {
      const c = await RawClient.ready(ts.port);
      await call(c, 2, { op: 'queue.declare', name: 'disk' });
      const confirmed: string[] = [];
      let full = '';
      for (let i = 0; i < 2000 && !full; i++) {
        c.write(encodePub(100 + i, 'disk', new Uint8Array(1000).fill(i % 250), { meta: { queue: 'disk' } }));
        const f = await c.next(
          (x) => (x.type === FrameType.OK || x.type === FrameType.ERR) && x.reqId === 100 + i,
        );
        if (f.type === FrameType.OK) confirmed.push(String(f.body.id));
        else if (f.type === FrameType.ERR) full = String(f.body.code) + ': ' + String(f.body.message);
      }
      assert.match(full, /^STORAGE_FULL/, 'the disk filled up and the publisher was told');
      assert.ok(confirmed.length > 100);
      // Still serving: pub/sub works and the stored messages are all there.
      c.write(encodePub(5000, 'still.alive', text('yes')));
      assert.ok(await c.next((x) => x.type === FrameType.OK && x.reqId === 5000));
      const ids = new Set<string>();
      for (let round = 0; round < 20 && ids.size < confirmed.length; round++) {
        const pulled = await call(c, 6000 + round, { op: 'queue.pull', queue: 'disk', max: 1000 });
        for (const m of pulled.body.messages as Array<{ id: string }>) ids.add(m.id);
      }
      assert.deepEqual(
        confirmed.filter((id) => !ids.has(id)),
        [],
        'every confirmed message is still stored',
      );
      c.close();
    } finally {
      await ts.close().catch(() => undefined);
      execFileSync('umount', [mountPoint]);
      rmSync(mountPoint, { recursive: true, force: true });
    }
  });
});
