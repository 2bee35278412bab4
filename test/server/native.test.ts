import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  encodeControl,
  encodePub,
  FrameType,
  PUB_FLAG_REQUEST,
  ulidTime,
  type Frame,
} from '../../src/protocol/index.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const text = (s: string) => new TextEncoder().encode(s);
const isMsg = (f: Frame) => f.type === FrameType.MSG;

describe('native protocol: handshake, pub/sub, request/reply', () => {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer();
  });
  after(() => ts.close());

  it('answers HELLO with WELCOME carrying version, limits and instance id', async () => {
    const c = await RawClient.connect(ts.port);
    c.write(encodeControl(FrameType.HELLO, 9, { version: 3, client: 't' }));
    const w = await c.next();
    assert.equal(w.type, FrameType.WELCOME);
    if (w.type !== FrameType.WELCOME) return;
    assert.equal(w.reqId, 9);
    assert.equal(w.body.version, 2, 'server answers with the highest version both speak');
    assert.equal(w.body.max_payload, 1048576);
    assert.equal(typeof w.body.instance_id, 'string');
    c.close();
  });

  it('fans out to every matching subscription with wildcard semantics, stamping a time-ordered id', async () => {
    const a = await RawClient.ready(ts.port);
    const b = await RawClient.ready(ts.port);
    a.write(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: 'orders.*' }));
    a.write(encodeControl(FrameType.SUB, 3, { sid: 2, pattern: 'orders.#' }));
    b.write(encodeControl(FrameType.SUB, 2, { sid: 7, pattern: '#' }));
    await a.next((f) => f.type === FrameType.OK && f.reqId === 3);
    await b.next((f) => f.type === FrameType.OK && f.reqId === 2);
    const before = Date.now();
    const p = await RawClient.ready(ts.port);
    p.write(encodePub(0, 'orders.eu.created', text('deep'), { meta: { headers: { k: 'v' } } }));
    p.write(encodePub(5, 'orders.created', text('shallow')));
    const ok = await p.next((f) => f.type === FrameType.OK);
    assert.ok(ok.type === FrameType.OK && ok.reqId === 5 && ok.body.delivered === 3);

    const aMsgs = [await a.next(isMsg), await a.next(isMsg), await a.next(isMsg)];
    const sids = aMsgs.map((m) => (m.type === FrameType.MSG ? `${m.sid}:${m.topic}` : '')).sort();
    assert.deepEqual(sids, ['1:orders.created', '2:orders.created', '2:orders.eu.created']);
    const bMsgs = [await b.next(isMsg), await b.next(isMsg)];
    const deep = bMsgs.find((m) => m.type === FrameType.MSG && m.topic === 'orders.eu.created');
    assert.ok(deep && deep.type === FrameType.MSG);
    assert.deepEqual(deep.meta, { headers: { k: 'v' } });
    assert.equal(new TextDecoder().decode(deep.payload), 'deep');
    assert.ok(deep.msgId, 'server stamps an id');
    assert.ok(ulidTime(deep.msgId) >= before - 1000 && ulidTime(deep.msgId) <= Date.now() + 1000);
    for (const c of [a, b, p]) c.close();
  });

  it('splits messages between members of a queue group', async () => {
    const members = await Promise.all([0, 1, 2].map(() => RawClient.ready(ts.port)));
    for (const m of members)
      m.write(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: 'jobs.*', queue: 'workers' }));
    for (const m of members) await m.next((f) => f.type === FrameType.OK);
    const p = await RawClient.ready(ts.port);
    for (let i = 0; i < 30; i++) p.write(encodePub(0, `jobs.n${i}`, text(String(i))));
    p.write(encodePub(99, 'jobs.flush', text('x')));
    await p.next((f) => f.type === FrameType.OK);
    await new Promise((r) => setTimeout(r, 100));
    const counts = members.map((m) => m.frames.filter(isMsg).length);
    assert.equal(
      counts.reduce((x, y) => x + y, 0),
      31,
      'each message goes to exactly one member',
    );
    for (const c of counts) assert.ok(c >= 10 && c <= 11, `even split, got ${counts}`);
    for (const c of [...members, p]) c.close();
  });

  it('answers a request with no responders at once with a no_responders status', async () => {
    const c = await RawClient.ready(ts.port);
    c.write(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: '_INBOX.me.*' }));
    await c.next((f) => f.type === FrameType.OK);
    c.write(encodePub(0, 'nobody.home', text('?'), { reply: '_INBOX.me.1', flags: PUB_FLAG_REQUEST }));
    const m = await c.next(isMsg, 1000);
    assert.ok(m.type === FrameType.MSG && m.topic === '_INBOX.me.1' && m.meta?.status === 'no_responders');
    c.close();
  });

  it('delivers a request to exactly one responder even without a queue group', async () => {
    const r1 = await RawClient.ready(ts.port);
    const r2 = await RawClient.ready(ts.port);
    for (const r of [r1, r2]) r.write(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: 'svc.echo' }));
    for (const r of [r1, r2]) await r.next((f) => f.type === FrameType.OK);
    const c = await RawClient.ready(ts.port);
    for (let i = 0; i < 10; i++)
      c.write(encodePub(0, 'svc.echo', text('q'), { reply: `_INBOX.x.${i}`, flags: PUB_FLAG_REQUEST }));
    c.write(encodePub(1, 'sync.point', text('')));
    await c.next((f) => f.type === FrameType.OK);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(r1.frames.filter(isMsg).length + r2.frames.filter(isMsg).length, 10);
    for (const x of [r1, r2, c]) x.close();
  });

  it('stops delivery after UNSUB and after UNSUB with max', async () => {
    const s = await RawClient.ready(ts.port);
    s.write(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: 'u.a' }));
    s.write(encodeControl(FrameType.SUB, 3, { sid: 2, pattern: 'u.b' }));
    s.write(encodeControl(FrameType.UNSUB, 4, { sid: 1 }));
    s.write(encodeControl(FrameType.UNSUB, 5, { sid: 2, max: 2 }));
    await s.next((f) => f.type === FrameType.OK && f.reqId === 5);
    const p = await RawClient.ready(ts.port);
    for (let i = 0; i < 5; i++) {
      p.write(encodePub(0, 'u.a', text('a')));
      p.write(encodePub(0, 'u.b', text('b')));
    }
    p.write(encodePub(1, 'sync', text('')));
    await p.next((f) => f.type === FrameType.OK);
    await new Promise((r) => setTimeout(r, 100));
    const got = s.frames.filter(isMsg).map((m) => (m.type === FrameType.MSG ? m.topic : ''));
    assert.deepEqual(got, ['u.b', 'u.b']);
    s.close();
    p.close();
  });

  it('answers PING with PONG', async () => {
    const c = await RawClient.ready(ts.port);
    c.write(Uint8Array.of(0, 0, 0, 1, FrameType.PING));
    const f = await c.next();
    assert.equal(f.type, FrameType.PONG);
    c.close();
  });
});
