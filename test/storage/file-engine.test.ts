/** File-engine behaviour beyond the conformance suite: recovery, torn tails, reclaim, fsync, ENOSPC. */
import assert from 'node:assert/strict';
import {
  appendFileSync,
  constants as fsConstants,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  openSync,
  writeSync,
  closeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileStorage, type FileStorageOptions } from '../../src/storage/file/file-storage.ts';
import { crc32c } from '../../src/storage/file/crc32c.ts';
import { defaultIo, type SegmentIo } from '../../src/storage/file/segment-log.ts';
import type { Logger, Storage } from '../../src/storage/index.ts';

const root = mkdtempSync(join(tmpdir(), 'storage-engine-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;
const enc = new TextEncoder();
const dec = new TextDecoder();
const T0 = 1_700_000_000_000;

function freshDir(): string {
  return join(root, `d${dirs++}`);
}

function segments(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.seg'))
    .sort();
}

function totalBytes(dir: string): number {
  return segments(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, warn: (_o, m) => void warnings.push(m ?? ''), info: () => undefined };
}

async function drain(s: Storage, queue: string, ack = true): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const ds = await s.take(queue, 'drain', 500);
    if (!ds.length) return out;
    for (const d of ds) {
      out.push(dec.decode(d.message.payload));
      if (ack) await s.ack(queue, 'drain', d.delivery_id);
    }
  }
}

function opts(dir: string, extra: Partial<FileStorageOptions> = {}): FileStorageOptions {
  return { path: dir, fsync: 'batch', batchTimeoutMs: 1, segmentBytes: 16 * 1024, ...extra };
}

describe('file engine', () => {
  it('reopen after close restores queues, messages, dead letters, streams and readers', async () => {
    const dir = freshDir();
    let t = T0;
    const now = () => t;
    let s = await FileStorage.open(opts(dir, { now }));
    await s.declareQueue({ name: 'q', bindings: ['a.#'], max_deliveries: 2 });
    await s.declareQueue({ name: 'other', max_length: 5, overflow: 'drop-oldest' });
    await s.declareStream({ name: 'st', max_msgs: 100 });
    for (let i = 0; i < 50; i++)
      await s.append('q', {
        topic: 'a.b',
        payload: enc.encode(`m${i}`),
        priority: (i % 6) as 0,
        headers: { i: String(i) },
      });
    await s.append('q', { topic: 'a.b', payload: enc.encode('later'), deliver_at: T0 + 60_000 });
    const [d] = await s.take('q', 'c', 1); // m5 (priority 5, first)
    await s.nack('q', 'c', d!.delivery_id, { requeue: false, error: 'boom' });
    const [d2] = await s.take('q', 'c', 1); // m11
    await s.nack('q', 'c', d2!.delivery_id, { requeue: true });
    for (let i = 0; i < 3; i++) await s.streamAppend('st', { topic: 'a.b', payload: enc.encode(`s${i}`) });
    await s.setReaderPosition('st', 'r', 2);
    const before = await s.stats('q');
    await s.close();

    s = await FileStorage.open(opts(dir, { now }));
    assert.deepEqual(
      (await s.listQueues()).map((q) => q.name),
      ['other', 'q'],
    );
    assert.deepEqual(await s.getQueue('q'), {
      name: 'q',
      bindings: ['a.#'],
      overflow: 'reject-publish',
      ack_timeout_ms: 30000,
      max_deliveries: 2,
    });
    assert.deepEqual(await s.stats('q'), before);
    const [dl] = await s.listDeadLetters('q');
    assert.deepEqual(
      [dec.decode(dl!.message.payload), dl!.reason, dl!.last_error, dl!.failures],
      ['m5', 'rejected', 'boom', 1],
    );
    // The requeued message kept its delivery count: one more failure reaches max_deliveries (2).
    const [again] = await s.take('q', 'c', 1);
    assert.deepEqual(
      [dec.decode(again!.message.payload), again!.delivery_count, again!.message.headers.i],
      ['m11', 2, '11'],
    );
    await s.nack('q', 'c', again!.delivery_id, { requeue: true });
    assert.equal((await s.stats('q')).dead_letters, 2);
    const rest = await drain(s, 'q');
    assert.equal(rest.length, 48);
    assert.deepEqual(rest.slice(0, 3), ['m17', 'm23', 'm29']);
    t += 60_000;
    assert.deepEqual(await drain(s, 'q'), ['later']);
    const info = await s.getStream('st');
    assert.deepEqual([info.first_seq, info.last_seq, info.messages, info.readers], [1, 3, 3, { r: 2 }]);
    const r = await s.streamRead('st', { from: { reader: 'r' }, max: 10 });
    assert.deepEqual(
      r.messages.map((m) => dec.decode(m.message.payload)),
      ['s1', 's2'],
    );
    assert.deepEqual((await s.streamAppend('st', { topic: 'a.b', payload: enc.encode('s3') })).streams, {
      st: 4,
    });
    await s.close();
  });

  it('messages in flight at close are ready again after reopen', async () => {
    const dir = freshDir();
    let s = await FileStorage.open(opts(dir));
    await s.declareQueue({ name: 'q' });
    for (let i = 0; i < 10; i++) await s.append('q', { topic: 't', payload: enc.encode(`m${i}`) });
    const ds = await s.take('q', 'c', 4);
    await s.ack('q', 'c', ds[0]!.delivery_id);
    await s.close();
    s = await FileStorage.open(opts(dir));
    const st = await s.stats('q');
    assert.deepEqual([st.depth, st.in_flight], [9, 0]);
    await assert.rejects(s.ack('q', 'c', ds[1]!.delivery_id), { code: 'UNKNOWN_DELIVERY' });
    assert.deepEqual(await drain(s, 'q'), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9']);
    await s.close();
  });

  it("a consumer's batch of acks is one journal record, and survives reopen", async () => {
    const dir = freshDir();
    let s = await FileStorage.open(opts(dir, { segmentBytes: 1024 * 1024 }));
    await s.declareQueue({ name: 'q' });
    for (let i = 0; i < 10; i++) await s.append('q', { topic: 't', payload: enc.encode(`m${i}`) });
    const ds = await s.take('q', 'c', 6);
    const before = totalBytes(dir);
    assert.deepEqual(
      await s.ackMany(
        'q',
        'c',
        ds.map((d) => d.delivery_id),
      ),
      [],
    );
    // One record: frame (8) + kind (1) + count (4) + 6 keys (48) + queue name (2 + 1).
    assert.equal(totalBytes(dir) - before, 8 + 1 + 4 + 6 * 8 + 3);
    await s.close();
    s = await FileStorage.open(opts(dir, { segmentBytes: 1024 * 1024 }));
    const st = await s.stats('q');
    assert.deepEqual([st.depth, st.acked_total], [4, 6]);
    assert.deepEqual(await drain(s, 'q'), ['m6', 'm7', 'm8', 'm9']);
    await s.close();
  });

  it('a group mixing records larger than the journal slab with small ones is written whole, in order', async () => {
    const dir = freshDir();
    let s = await FileStorage.open(opts(dir, { segmentBytes: 4 * 1024 * 1024 }));
    await s.declareQueue({ name: 'q' });
    const big = (fill: number) => new Uint8Array(1536 * 1024).fill(fill); // > the 1 MiB slab
    const sent = [enc.encode('a'), big(1), enc.encode('b'), big(2), enc.encode('c')];
    // Appended without awaiting in between: they share groups.
    await Promise.all(sent.map((payload) => s.append('q', { topic: 't', payload })));
    await s.close();
    s = await FileStorage.open(opts(dir, { segmentBytes: 4 * 1024 * 1024 }));
    const got = await s.take('q', 'c', 10);
    assert.deepEqual(
      got.map((d) => [d.message.payload.length, d.message.payload[0], d.message.payload.at(-1)]),
      sent.map((p) => [p.length, p[0], p.at(-1)]),
    );
    await s.close();
  });

  for (const damage of ['truncate', 'corrupt'] as const) {
    it(`a ${damage}d tail record is dropped with a warning and everything before survives`, async () => {
      const dir = freshDir();
      let s = await FileStorage.open(opts(dir, { segmentBytes: 1024 * 1024 }));
      await s.declareQueue({ name: 'q' });
      for (let i = 0; i < 20; i++) await s.append('q', { topic: 't', payload: enc.encode(`m${i}`) });
      await s.close();
      const [seg] = segments(dir);
      const path = join(dir, seg!);
      const size = statSync(path).size;
      if (damage === 'truncate') truncateSync(path, size - 3);
      else {
        const fd = openSync(path, 'r+');
        writeSync(fd, Buffer.from([0xde, 0xad]), 0, 2, size - 2);
        closeSync(fd);
      }
      const logger = recordingLogger();
      s = await FileStorage.open(opts(dir, { segmentBytes: 1024 * 1024, logger }));
      assert.equal(logger.warnings.length, 1, logger.warnings.join('; '));
      assert.match(logger.warnings[0]!, /torn or corrupt tail/);
      const got = await drain(s, 'q');
      assert.deepEqual(
        got,
        Array.from({ length: 19 }, (_, i) => `m${i}`),
      );
      // The journal continues cleanly after the cut.
      await s.append('q', { topic: 't', payload: enc.encode('after') });
      await s.close();
      const logger2 = recordingLogger();
      s = await FileStorage.open(opts(dir, { segmentBytes: 1024 * 1024, logger: logger2 }));
      assert.deepEqual(logger2.warnings, []);
      assert.deepEqual(await drain(s, 'q'), ['after']);
      await s.close();
    });
  }

  it('a newest segment without a valid header is removed', async () => {
    const dir = freshDir();
    let s = await FileStorage.open(opts(dir));
    await s.declareQueue({ name: 'q' });
    await s.append('q', { topic: 't', payload: enc.encode('kept') });
    await s.close();
    const fd = openSync(join(dir, '0000000099.seg'), 'w');
    writeSync(fd, Buffer.from('MSGL'));
    closeSync(fd);
    const logger = recordingLogger();
    s = await FileStorage.open(opts(dir, { logger }));
    assert.equal(logger.warnings.length, 1);
    assert.deepEqual(await drain(s, 'q'), ['kept']);
    await s.close();
  });

  it('a whole record of an unknown kind (a newer version wrote it) stops the open and is not truncated', async () => {
    const dir = freshDir();
    let s = await FileStorage.open(opts(dir));
    await s.declareQueue({ name: 'q' });
    await s.append('q', { topic: 't', payload: enc.encode('kept') });
    await s.close();
    // A checksummed record of kind 0x7f, as a later format might write.
    const body = Buffer.from([0x7f, 1, 2, 3, 4]);
    const frame = Buffer.alloc(8);
    frame.writeUInt32LE(body.length, 0);
    frame.writeUInt32LE(crc32c(body), 4);
    const newest = join(dir, segments(dir).at(-1)!);
    appendFileSync(newest, Buffer.concat([frame, body]));
    const size = statSync(newest).size;
    await assert.rejects(FileStorage.open(opts(dir)), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'STORAGE_FAILURE');
      assert.match(err.message, /written by a newer messaging_server .*nothing was changed/);
      return true;
    });
    assert.equal(statSync(newest).size, size, 'the unknown record is still there');
    // Without the newer record, the store opens as before (the operator's way back is the newer version).
    truncateSync(newest, size - frame.length - body.length);
    s = await FileStorage.open(opts(dir));
    assert.deepEqual(await drain(s, 'q'), ['kept']);
    await s.close();
  });

  it('segments are reclaimed once everything in them is settled', async () => {
    const dir = freshDir();
    let s = await FileStorage.open(opts(dir));
    await s.declareQueue({ name: 'q' });
    const payload = new Uint8Array(500);
    for (let i = 0; i < 400; i++) await s.append('q', { topic: 't', payload });
    const full = totalBytes(dir);
    assert.ok(segments(dir).length >= 10, `${segments(dir).length} segments`);
    assert.equal((await drain(s, 'q')).length, 400);
    await s.compact();
    assert.deepEqual(segments(dir).length, 1);
    assert.ok(totalBytes(dir) < full / 5, `${totalBytes(dir)} vs ${full}`);
    await s.close();
    s = await FileStorage.open(opts(dir));
    const st = await s.stats('q');
    assert.deepEqual([st.depth, st.published_total, st.acked_total], [0, 400, 400]);
    await s.close();
  });

  it('waits before carrying the live messages of a just-closed segment (they are usually about to be acked)', async () => {
    const dir = freshDir();
    const logs: string[] = [];
    const logger: Logger = { info: (_o, m) => logs.push(String(m)), warn: (_o, m) => logs.push(String(m)) };
    const s = await FileStorage.open(opts(dir, { logger }));
    await s.declareQueue({ name: 'q' });
    await s.append('q', { topic: 't', payload: enc.encode('in flight') });
    const [held] = await s.take('q', 'c', 1);
    const payload = new Uint8Array(300);
    for (let i = 0; i < 100; i++) await s.append('q', { topic: 't', payload });
    for (;;) {
      const ds = await s.take('q', 'f', 100);
      for (const d of ds) await s.ack('q', 'f', d.delivery_id);
      if (!ds.length) break;
    }
    const firstSeg = segments(dir)[0]!;
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(segments(dir).includes(firstSeg), 'not carried within the grace period');
    assert.ok(!logs.some((m) => m.includes('carried forward')), logs.join('; '));
    // Acked in time: the segment is dropped without any carrying.
    await s.ack('q', 'c', held!.delivery_id);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!segments(dir).includes(firstSeg), `${firstSeg} still there: ${segments(dir).join(',')}`);
    assert.ok(!logs.some((m) => m.includes('carried forward')), logs.join('; '));
    await s.close();
  });

  it('live messages in a mostly settled oldest segment are carried forward with their state', async () => {
    const dir = freshDir();
    let t = T0;
    const now = () => t;
    let s = await FileStorage.open(opts(dir, { now }));
    await s.declareQueue({ name: 'q', max_deliveries: 0 });
    await s.declareQueue({ name: 'dlq-holder' });
    await s.declareStream({ name: 'st' });
    const payload = new Uint8Array(300);
    await s.append('q', { topic: 't', payload: enc.encode('keep-ready'), priority: 4 });
    await s.append('q', { topic: 't', payload: enc.encode('keep-delayed'), deliver_at: T0 + 5000 });
    await s.append('dlq-holder', { topic: 't', payload: enc.encode('keep-dead') });
    await s.streamAppend('st', { topic: 't', payload: enc.encode('keep-stream') });
    const [dd] = await s.take('dlq-holder', 'c', 1);
    await s.nack('dlq-holder', 'c', dd!.delivery_id, { requeue: false, error: 'kept error' });
    const [retry] = await s.take('q', 'c', 1); // keep-ready, delivery 1
    await s.nack('q', 'c', retry!.delivery_id, { requeue: true });
    for (let i = 0; i < 300; i++) await s.append('q', { topic: 't', payload });
    const firstSeg = segments(dir)[0];
    // Settle the filler, leaving the four kept messages in the first segment.
    for (;;) {
      const ds = await s.take('q', 'f', 100);
      const filler = ds.filter((d) => d.message.payload.length === 300);
      for (const d of ds) {
        if (d.message.payload.length === 300) await s.ack('q', 'f', d.delivery_id);
        else await s.nack('q', 'f', d.delivery_id, { requeue: true });
      }
      if (!filler.length) break;
    }
    await s.compact();
    assert.ok(
      !segments(dir).includes(firstSeg!),
      `first segment ${firstSeg} still there: ${segments(dir).join(',')}`,
    );
    assert.ok(segments(dir).length <= 2, segments(dir).join(','));
    await s.close();

    s = await FileStorage.open(opts(dir, { now }));
    const [ready] = await s.take('q', 'c', 5);
    assert.equal(dec.decode(ready!.message.payload), 'keep-ready');
    assert.ok(ready!.delivery_count >= 3, `delivery count ${ready!.delivery_count}`);
    t += 5000;
    assert.deepEqual(
      (await s.take('q', 'c', 5)).map((d) => dec.decode(d.message.payload)),
      ['keep-delayed'],
    );
    const [dl] = await s.listDeadLetters('dlq-holder');
    assert.deepEqual(
      [dec.decode(dl!.message.payload), dl!.reason, dl!.last_error],
      ['keep-dead', 'rejected', 'kept error'],
    );
    const r = await s.streamRead('st', { from: 'earliest', max: 5 });
    assert.deepEqual(
      r.messages.map((m) => [m.seq, dec.decode(m.message.payload)]),
      [[1, 'keep-stream']],
    );
    const st = await s.stats('q');
    assert.equal(st.published_total, 302);
    await s.close();
  });

  it('stream retention frees segments', async () => {
    const dir = freshDir();
    const s = await FileStorage.open(opts(dir));
    await s.declareStream({ name: 'st', max_msgs: 10 });
    const payload = new Uint8Array(1000);
    for (let i = 0; i < 300; i++) await s.streamAppend('st', { topic: 't', payload });
    await s.compact();
    assert.ok(segments(dir).length <= 2, segments(dir).join(','));
    const info = await s.getStream('st');
    assert.deepEqual([info.first_seq, info.last_seq, info.messages], [291, 300, 10]);
    await s.close();
  });

  it('a reader position and deletions survive reclaim of the segments that recorded them', async () => {
    const dir = freshDir();
    let s = await FileStorage.open(opts(dir));
    await s.declareQueue({ name: 'gone' });
    await s.declareQueue({ name: 'q' });
    await s.declareStream({ name: 'st' });
    await s.streamAppend('st', { topic: 't', payload: enc.encode('x') });
    await s.setReaderPosition('st', 'r', 1);
    await s.append('gone', { topic: 't', payload: enc.encode('x') });
    await s.deleteQueue('gone');
    const payload = new Uint8Array(500);
    for (let i = 0; i < 200; i++) await s.append('q', { topic: 't', payload });
    await drain(s, 'q');
    await s.compact();
    await s.close();
    s = await FileStorage.open(opts(dir));
    assert.deepEqual(
      (await s.listQueues()).map((q) => q.name),
      ['q'],
    );
    assert.equal(await s.getReaderPosition('st', 'r'), 1);
    assert.equal((await s.getStream('st')).messages, 1);
    await s.close();
  });

  it('fsync always: no append is confirmed before a durable write that covers it, and appends share writes', async () => {
    const dir = freshDir();
    let syncs = 0; // durable (O_DSYNC) writes
    let release: (() => void) | null = null;
    const io: SegmentIo = {
      write: async (fh, b, p) => {
        await new Promise<void>((r) => (release = r));
        syncs++;
        await defaultIo.write(fh, b, p);
      },
      sync: defaultIo.sync,
    };
    const auto = setInterval(() => release?.(), 5);
    const s = await FileStorage.open(opts(dir, { fsync: 'always', io, segmentBytes: 1024 * 1024 }));
    await s.declareQueue({ name: 'q' });
    clearInterval(auto);
    const syncsBefore = syncs;
    let confirmed = 0;
    const appends = Array.from({ length: 50 }, (_, i) =>
      s.append('q', { topic: 't', payload: enc.encode(`m${i}`) }).then(() => confirmed++),
    );
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(confirmed, 0, 'confirmed before the fsync completed');
    const pump = setInterval(() => release?.(), 1);
    await Promise.all(appends);
    clearInterval(pump);
    assert.equal(confirmed, 50);
    assert.ok(syncs - syncsBefore <= 3, `${syncs - syncsBefore} durable writes for 50 concurrent appends`);
    await s.close();
  });

  it('writes segments with O_DSYNC under fsync always and batch, and without under none', async () => {
    for (const fsync of ['always', 'batch', 'none'] as const) {
      const dir = freshDir();
      let flags = -1;
      const io: SegmentIo = {
        write: async (fh, b, p) => {
          // The kernel's own record of how the file was opened.
          const info = readFileSync(`/proc/self/fdinfo/${fh.fd}`, 'utf8');
          flags = parseInt(/^flags:\s+([0-7]+)/m.exec(info)![1]!, 8);
          await defaultIo.write(fh, b, p);
        },
        sync: defaultIo.sync,
      };
      const s = await FileStorage.open(opts(dir, { fsync, io }));
      await s.declareQueue({ name: 'q' });
      await s.append('q', { topic: 't', payload: enc.encode('x') });
      await s.close();
      assert.equal(
        (flags & fsConstants.O_DSYNC) !== 0,
        fsync !== 'none',
        `fsync ${fsync}: flags 0${flags.toString(8)}`,
      );
    }
  });

  it('fsync none never syncs while running; batch groups up to batchSize (each write durable)', async () => {
    for (const fsync of ['none', 'batch'] as const) {
      const dir = freshDir();
      let syncs = 0;
      let writes = 0;
      const io: SegmentIo = {
        write: (fh, b, p) => {
          writes++;
          return defaultIo.write(fh, b, p);
        },
        sync: (fh) => {
          syncs++;
          return defaultIo.sync(fh);
        },
      };
      const s = await FileStorage.open(
        opts(dir, { fsync, io, batchSize: 10, batchTimeoutMs: 50, segmentBytes: 1024 * 1024 }),
      );
      await s.declareQueue({ name: 'q' });
      const w0 = writes;
      const s0 = syncs;
      const t0 = Date.now();
      await Promise.all(
        Array.from({ length: 100 }, (_, i) => s.append('q', { topic: 't', payload: enc.encode(`m${i}`) })),
      );
      // Batch writes are durable by themselves (O_DSYNC, tested above): no separate sync either.
      assert.equal(syncs - s0, 0);
      if (fsync === 'batch') assert.ok(Date.now() - t0 < 1000, 'a full batch does not wait for the timeout');
      assert.ok(writes - w0 >= 1 && writes - w0 <= 10, `${writes - w0} writes for 100 appends`);
      await s.close();
      const again = await FileStorage.open(opts(dir));
      assert.equal((await again.stats('q')).depth, 100);
      await again.close();
    }
  });

  it('ENOSPC fails the appends with STORAGE_FULL, keeps confirmed data and deliveries, and recovers', async () => {
    const dir = freshDir();
    let full = false;
    const io: SegmentIo = {
      write: async (fh, b, p) => {
        if (full) {
          // A partial write, then no space: as a real disk would.
          await fh.write(b, 0, Math.min(5, b.length), p);
          throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
        }
        return defaultIo.write(fh, b, p);
      },
      sync: defaultIo.sync,
    };
    const logger = recordingLogger();
    let s = await FileStorage.open(opts(dir, { io, logger, segmentBytes: 1024 * 1024 }));
    await s.declareQueue({ name: 'q' });
    await s.append('q', { topic: 't', payload: enc.encode('ok1') });
    await s.append('q', { topic: 't', payload: enc.encode('ok2') });
    const [held] = await s.take('q', 'c', 1);
    full = true;
    const results = await Promise.allSettled(
      [1, 2, 3].map((i) => s.append('q', { topic: 't', payload: enc.encode(`fail${i}`) })),
    );
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.equal((r as PromiseRejectedResult).reason.code, 'STORAGE_FULL');
    }
    full = false;
    // Nothing unconfirmed is visible; the delivery in flight survived the reload.
    const st = await s.stats('q');
    assert.deepEqual([st.depth, st.in_flight], [1, 1]);
    assert.ok(logger.warnings.some((w) => /journal write failed/.test(w)));
    await s.ack('q', 'c', held!.delivery_id);
    await s.append('q', { topic: 't', payload: enc.encode('ok3') });
    await s.close();
    s = await FileStorage.open(opts(dir));
    assert.deepEqual(await drain(s, 'q'), ['ok2', 'ok3']);
    await s.close();
  });

  it('a directory is opened by one storage at a time', async () => {
    const dir = freshDir();
    const s = await FileStorage.open(opts(dir));
    await assert.rejects(FileStorage.open(opts(dir)), { code: 'STORAGE_FAILURE' });
    await s.close();
    const again = await FileStorage.open(opts(dir));
    await again.close();
  });
});
