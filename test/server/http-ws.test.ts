import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import {
  encodeControl,
  encodePub,
  FrameParser,
  FrameType,
  PUB_FLAG_REQUEST,
  type Frame,
} from '../../src/protocol/index.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const text = (s: string) => new TextEncoder().encode(s);
const isMsg = (f: Frame) => f.type === FrameType.MSG;

async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('HTTP and WebSocket on the messaging port', () => {
  let ts: TestServer;
  let sub: RawClient;
  before(async () => {
    ts = await startTestServer({ 'message_bus.max_payload_bytes': '2048' });
    sub = await RawClient.ready(ts.port);
    sub.write(encodeControl(FrameType.SUB, 2, { sid: 4, pattern: 'rest.#' }));
    await sub.next((f) => f.type === FrameType.OK);
  });
  after(async () => {
    sub.close();
    await ts.close();
  });

  it('POST /v1/publish delivers to native subscribers and returns the id', async () => {
    const r = await post(`${ts.httpUrl}/v1/publish`, {
      topic: 'rest.created',
      payload: 'from http',
      headers: { h: '1' },
      priority: 4,
    });
    assert.equal(r.status, 202);
    assert.match(String(r.json.id), /^[0-9A-Z]{26}$/);
    assert.equal(r.json.delivered, 1);
    const m = await sub.next(isMsg);
    assert.ok(m.type === FrameType.MSG);
    assert.equal(new TextDecoder().decode(m.payload), 'from http');
    assert.deepEqual(m.meta, { headers: { h: '1' }, priority: 4 });
  });

  it('REST errors carry the catalogue code and HTTP status', async () => {
    const bad = await post(`${ts.httpUrl}/v1/publish`, { topic: 'rest.*', payload: 'x' });
    assert.deepEqual([bad.status, bad.json.code], [400, 'INVALID_TOPIC']);
    const big = await post(`${ts.httpUrl}/v1/publish`, { topic: 'rest.big', payload: 'x'.repeat(3000) });
    assert.deepEqual([big.status, big.json.code], [413, 'PAYLOAD_TOO_LARGE']);
    const notJson = await fetch(`${ts.httpUrl}/v1/publish`, { method: 'POST', body: '{nope' });
    assert.equal(notJson.status, 400);
    assert.equal(((await notJson.json()) as { code: string }).code, 'BAD_REQUEST');
    const missing = await fetch(`${ts.httpUrl}/v1/nothing-here`);
    assert.equal(missing.status, 404);
    const wrongMethod = await fetch(`${ts.httpUrl}/v1/publish`);
    assert.equal(wrongMethod.status, 405);
  });

  it('POST /v1/request: reply, no_responders (503) and timeout (504)', async () => {
    const responder = await RawClient.ready(ts.port);
    responder.write(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: 'calc.double' }));
    await responder.next((f) => f.type === FrameType.OK);
    const answering = (async () => {
      const req = await responder.next(isMsg);
      if (req.type !== FrameType.MSG) return;
      const n = Number(new TextDecoder().decode(req.payload));
      responder.write(encodePub(0, req.reply, text(String(n * 2))));
    })();
    const r = await post(`${ts.httpUrl}/v1/request`, {
      topic: 'calc.double',
      payload: '21',
      timeout_ms: 3000,
    });
    await answering;
    assert.equal(r.status, 200);
    assert.equal(r.json.payload, '42');

    const none = await post(`${ts.httpUrl}/v1/request`, { topic: 'calc.nobody', payload: '1' });
    assert.deepEqual([none.status, none.json.code], [503, 'NO_RESPONDERS']);

    responder.write(encodeControl(FrameType.SUB, 3, { sid: 2, pattern: 'calc.slow' }));
    await responder.next((f) => f.type === FrameType.OK);
    const slow = await post(`${ts.httpUrl}/v1/request`, {
      topic: 'calc.slow',
      payload: '1',
      timeout_ms: 200,
    });
    assert.deepEqual([slow.status, slow.json.code], [504, 'TIMEOUT']);
    responder.close();
  });

  it('WebSocket on /v1/ws carries native frames both ways', async () => {
    const ws = new WebSocket(ts.wsUrl);
    const frames: Frame[] = [];
    const parser = new FrameParser(1 << 20, (f) => frames.push(f));
    ws.on('message', (data: Buffer) => parser.push(data));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.send(encodeControl(FrameType.HELLO, 1, { version: 1 }));
    ws.send(encodeControl(FrameType.SUB, 2, { sid: 3, pattern: 'browser.*' }));
    ws.send(encodePub(3, 'rest.from-ws', text('hi from ws')));
    const m = await sub.next(isMsg);
    assert.ok(m.type === FrameType.MSG && m.topic === 'rest.from-ws');
    await post(`${ts.httpUrl}/v1/publish`, { topic: 'browser.event', payload: 'to ws' });
    const deadline = Date.now() + 3000;
    while (!frames.some(isMsg) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const got = frames.find(isMsg);
    assert.ok(got && got.type === FrameType.MSG && got.sid === 3);
    assert.equal(new TextDecoder().decode(got.payload), 'to ws');
    assert.ok(frames.some((f) => f.type === FrameType.WELCOME));
    ws.close();
  });

  it('WebSocket text messages are refused with PROTOCOL_ERROR', async () => {
    const ws = new WebSocket(ts.wsUrl);
    const frames: Frame[] = [];
    const parser = new FrameParser(1 << 20, (f) => frames.push(f));
    ws.on('message', (data: Buffer) => parser.push(data));
    await new Promise((r) => ws.once('open', r));
    ws.send('hello');
    await new Promise((r) => ws.once('close', r));
    assert.ok(frames.some((f) => f.type === FrameType.ERR && f.body.code === 'PROTOCOL_ERROR'));
  });

  it('request flag over WebSocket gets no_responders', async () => {
    const ws = new WebSocket(ts.wsUrl);
    const frames: Frame[] = [];
    const parser = new FrameParser(1 << 20, (f) => frames.push(f));
    ws.on('message', (data: Buffer) => parser.push(data));
    await new Promise((r) => ws.once('open', r));
    ws.send(encodeControl(FrameType.HELLO, 1, { version: 1 }));
    ws.send(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: '_INBOX.ws.*' }));
    ws.send(encodePub(0, 'nobody', text(''), { reply: '_INBOX.ws.1', flags: PUB_FLAG_REQUEST }));
    const deadline = Date.now() + 3000;
    while (!frames.some(isMsg) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const m = frames.find(isMsg);
    assert.ok(m && m.type === FrameType.MSG && m.meta?.status === 'no_responders');
    ws.close();
  });
});

describe('heartbeats', () => {
  it('the server PINGs a silent client and closes it with HEARTBEAT_TIMEOUT when it never answers', async () => {
    const ts = await startTestServer({ 'network.keepalive_interval_s': '1' });
    try {
      const c = await RawClient.ready(ts.port);
      const ping = await c.next((f) => f.type === FrameType.PING, 5000);
      assert.ok(ping);
      const err = await c.error(6000);
      assert.equal(err.code, 'HEARTBEAT_TIMEOUT');
      await c.waitClosed();

      const polite = await RawClient.ready(ts.port);
      // answer every PING: stays connected through many intervals
      polite.socket.on('data', () => polite.write(Uint8Array.of(0, 0, 0, 1, FrameType.PONG)));
      await new Promise((r) => setTimeout(r, 4500));
      assert.equal(polite.closed, false);
      polite.close();
    } finally {
      await ts.close();
    }
  });
});

describe('graceful shutdown', () => {
  it('tells connected clients SERVER_SHUTTING_DOWN, closes them and stops accepting', async () => {
    const ts = await startTestServer();
    const c = await RawClient.ready(ts.port);
    await ts.close();
    const err = await c.error();
    assert.equal(err.code, 'SERVER_SHUTTING_DOWN');
    await c.waitClosed();
    await assert.rejects(RawClient.connect(ts.port));
  });
});
