import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { encodeControl, encodePub, FrameType, type Frame } from '../../src/protocol/index.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const text = (s: string) => new TextEncoder().encode(s);
const isMsg = (f: Frame) => f.type === FrameType.MSG;

describe('bad input: each gets a stable error code, and everyone else keeps being served', () => {
  let ts: TestServer;
  let bystander: RawClient;
  let publisher: RawClient;
  let round = 0;

  before(async () => {
    ts = await startTestServer({
      'message_bus.max_payload_bytes': '1024',
      'network.connection_timeout_ms': '300',
      'network.max_pending_bytes': '65536',
    });
    bystander = await RawClient.ready(ts.port);
    bystander.write(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: 'alive.*' }));
    await bystander.next((f) => f.type === FrameType.OK);
    publisher = await RawClient.ready(ts.port);
  });
  after(async () => {
    bystander.close();
    publisher.close();
    await ts.close();
  });

  /** After each attack, a healthy pair of clients still exchanges a message. */
  async function assertStillServing(): Promise<void> {
    const topic = `alive.r${++round}`;
    publisher.write(encodePub(0, topic, text('ok')));
    const m = await bystander.next((f) => isMsg(f) && f.type === FrameType.MSG && f.topic === topic, 3000);
    assert.ok(m);
  }

  it('random bytes: PROTOCOL_ERROR or UNKNOWN_FRAME_TYPE, then the connection is closed', async () => {
    for (let i = 0; i < 20; i++) {
      const c = await RawClient.ready(ts.port);
      const junk = randomBytes(64);
      junk[0] = 0; // looks like a frame length so it reaches the parser
      junk[1] = 0;
      junk[2] = 0;
      junk[3] = 8;
      c.write(junk);
      const err = await c.error();
      assert.ok(['PROTOCOL_ERROR', 'UNKNOWN_FRAME_TYPE'].includes(err.code), err.code);
      assert.ok(err.message.length > 10);
      await c.waitClosed();
    }
    await assertStillServing();
  });

  it('a first byte that is neither a frame nor HTTP is refused with PROTOCOL_ERROR', async () => {
    const c = await RawClient.connect(ts.port);
    c.write(Uint8Array.of(0xff, 0xfe, 0x01));
    const err = await c.error();
    assert.equal(err.code, 'PROTOCOL_ERROR');
    assert.match(err.message, /first byte 0xff/);
    await c.waitClosed();
    await assertStillServing();
  });

  it('unknown frame type: UNKNOWN_FRAME_TYPE naming the byte', async () => {
    const c = await RawClient.ready(ts.port);
    c.write(Uint8Array.of(0, 0, 0, 1, 0x42));
    const err = await c.error();
    assert.equal(err.code, 'UNKNOWN_FRAME_TYPE');
    assert.match(err.message, /0x42/);
    await c.waitClosed();
    await assertStillServing();
  });

  it('oversized frame length: FRAME_TOO_LARGE before any body is read', async () => {
    const c = await RawClient.ready(ts.port);
    c.write(Uint8Array.of(0x00, 0xff, 0xff, 0xff, FrameType.PUB));
    const err = await c.error();
    assert.equal(err.code, 'FRAME_TOO_LARGE');
    await c.waitClosed();
    await assertStillServing();
  });

  it('oversized payload inside a legal frame: PAYLOAD_TOO_LARGE, connection stays open', async () => {
    const c = await RawClient.ready(ts.port);
    c.write(encodePub(7, 'alive.big', new Uint8Array(2048)));
    const err = await c.error();
    assert.equal(err.code, 'PAYLOAD_TOO_LARGE');
    assert.equal(err.reqId, 7);
    assert.match(err.message, /2048 bytes exceeds the maximum of 1024/);
    c.write(encodePub(8, 'alive.small', text('fine')));
    const ok = await c.next((f) => f.type === FrameType.OK);
    assert.equal(ok.type === FrameType.OK && ok.reqId, 8);
    c.close();
    await assertStillServing();
  });

  it('truncated frame then close: the server drops it quietly and keeps serving', async () => {
    const c = await RawClient.ready(ts.port);
    const frame = encodePub(0, 'alive.trunc', text('never'));
    c.write(frame.subarray(0, frame.length - 3));
    await new Promise((r) => setTimeout(r, 50));
    c.close();
    await assertStillServing();
    assert.ok(!bystander.frames.some((f) => f.type === FrameType.MSG && f.topic === 'alive.trunc'));
  });

  it('truncated body inside a frame: PROTOCOL_ERROR with the bad bytes', async () => {
    const c = await RawClient.ready(ts.port);
    c.write(Uint8Array.of(0, 0, 0, 8, FrameType.PUB, 0, 0, 0, 0, 0, 0, 99));
    const err = await c.error();
    assert.equal(err.code, 'PROTOCOL_ERROR');
    assert.match(err.message, /truncated topic/);
    await c.waitClosed();
    await assertStillServing();
  });

  it('invalid topics and patterns: INVALID_TOPIC / INVALID_PATTERN, connection stays open', async () => {
    const c = await RawClient.ready(ts.port);
    const topics = ['', 'a..b', 'a.*', 'has space', 'x'.repeat(256), 'a.#'];
    for (const [i, topic] of topics.entries()) c.write(encodePub(10 + i, topic, text('x')));
    for (let i = 0; i < topics.length; i++) {
      const err = await c.error();
      assert.equal(err.code, 'INVALID_TOPIC', `${topics[err.reqId - 10]}: ${err.message}`);
    }
    c.write(encodeControl(FrameType.SUB, 50, { sid: 1, pattern: 'a.b*' }));
    const perr = await c.error();
    assert.deepEqual([perr.code, perr.reqId], ['INVALID_PATTERN', 50]);
    c.write(encodeControl(FrameType.CMD, 51, { op: 'no.such.thing' }));
    const cerr = await c.error();
    assert.deepEqual([cerr.code, cerr.reqId], ['UNKNOWN_COMMAND', 51]);
    c.write(encodeControl(FrameType.SUB, 52, { pattern: 'ok' }));
    assert.equal((await c.error()).code, 'INVALID_SUBSCRIPTION');
    c.write(encodePub(60, 'alive.after', text('still here')));
    assert.ok(await c.next((f) => f.type === FrameType.OK && f.reqId === 60));
    c.close();
    await assertStillServing();
  });

  it('frames before HELLO: HANDSHAKE_REQUIRED', async () => {
    const c = await RawClient.connect(ts.port);
    c.write(encodePub(0, 'alive.x', text('sneaky')));
    const err = await c.error();
    assert.equal(err.code, 'HANDSHAKE_REQUIRED');
    await c.waitClosed();
    await assertStillServing();
  });

  it('no HELLO within connection_timeout_ms: HANDSHAKE_TIMEOUT', async () => {
    const c = await RawClient.connect(ts.port);
    c.write(Uint8Array.of(0)); // one byte of a frame, then silence (slow-loris)
    const err = await c.error(3000);
    assert.equal(err.code, 'HANDSHAKE_TIMEOUT');
    await c.waitClosed();
    const silent = await RawClient.connect(ts.port); // sends nothing at all
    await silent.waitClosed(3000);
    await assertStillServing();
  });

  it('a slow consumer is cut off with SLOW_CONSUMER and others are unaffected', async () => {
    const slow = await RawClient.ready(ts.port);
    slow.write(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: 'flood' }));
    await slow.next((f) => f.type === FrameType.OK);
    slow.socket.pause(); // stop reading: the kernel buffers fill, then ours
    const payload = new Uint8Array(1000);
    for (let i = 0; i < 3000; i++) publisher.write(encodePub(0, 'flood', payload));
    slow.socket.resume();
    await slow.waitClosed(10_000);
    assert.ok(
      slow.frames.some((f) => f.type === FrameType.ERR && f.body.code === 'SLOW_CONSUMER'),
      'the cut-off connection is told why',
    );
    await assertStillServing();
  });
});

describe('max_connections', () => {
  it('refuses connections beyond the limit with TOO_MANY_CONNECTIONS and accepts again after one leaves', async () => {
    const ts = await startTestServer({ 'network.max_connections': '3' });
    try {
      const clients = await Promise.all([0, 1, 2].map(() => RawClient.ready(ts.port)));
      const extra = await RawClient.connect(ts.port);
      extra.write(encodeControl(FrameType.HELLO, 1, { version: 1 }));
      const err = await extra.error();
      assert.equal(err.code, 'TOO_MANY_CONNECTIONS');
      assert.match(err.message, /max_connections \(3\)/);
      await extra.waitClosed();
      const http = await fetch(`${ts.httpUrl}/v1/publish`, { method: 'POST', body: '{}' });
      assert.equal(http.status, 503);
      clients[0]!.close();
      await new Promise((r) => setTimeout(r, 100));
      const again = await RawClient.ready(ts.port);
      again.close();
      for (const c of clients) c.close();
    } finally {
      await ts.close();
    }
  });
});
