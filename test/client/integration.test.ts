/**
 * The SDK against the real messaging_server (started in-process on a free port by the test helper):
 * pub/sub over TCP and WebSocket, queue groups, request/reply and its errors, confirms, reconnect after
 * a server restart, and drain.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import {
  ConnectionClosedError,
  NoRespondersError,
  NotFoundError,
  TimeoutError,
  connect,
  type Connection,
  type ConnectOptions,
  type Message,
} from '../../src/client/index.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

let server: TestServer;
const open: Connection[] = [];
let unique = 0;
/** A topic no other test uses. */
const topic = (name: string): string => `it.${process.pid}.${++unique}.${name}`;

async function client(options: ConnectOptions = {}): Promise<Connection> {
  const c = await connect({ servers: server.url, timeoutMs: 3000, ...options });
  open.push(c);
  return c;
}

/** Takes `n` messages from a subscription's iterator, failing after `timeoutMs`. */
async function take(sub: AsyncIterable<Message>, n: number, timeoutMs = 3000): Promise<Message[]> {
  const out: Message[] = [];
  const it = sub[Symbol.asyncIterator]();
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    const remaining = deadline - Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      it.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`only ${out.length} of ${n} messages arrived`)), remaining);
      }),
    ]);
    clearTimeout(timer);
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

before(async () => {
  server = await startTestServer();
});

after(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  await server.close();
});

describe('SDK against the real server: pub/sub', () => {
  it('publishes and subscribes over TCP with an async iterator and a callback', async () => {
    const c = await client({ name: 'it-tcp' });
    assert.equal(c.info.server, 'messaging-system');
    const t = topic('orders.created');
    const iter = c.subscribe(t.replace(/created$/, '*'));
    const seen: string[] = [];
    const cb = c.subscribe(t, { callback: (m) => void seen.push(m.string()) });
    await Promise.all([iter.ready(), cb.ready()]);

    const p = await client();
    p.publish(t, JSON.stringify({ n: 1 }), { headers: { source: 'it' }, correlationId: 'c-1' });
    const [m] = await take(iter, 1);
    assert.equal(m!.topic, t);
    assert.deepEqual(m!.json(), { n: 1 });
    assert.deepEqual(m!.headers, { source: 'it' });
    assert.equal(m!.correlationId, 'c-1');
    assert.match(m!.id!, /^[0-9A-HJKMNP-TV-Z]{26}$/, 'the server stamps a ULID');
    assert.ok(Math.abs(m!.timestamp! - Date.now()) < 60_000);
    await p.flush();
    await c.flush();
    assert.deepEqual(seen, ['{"n":1}']);
  });

  it('publishes and subscribes over WebSocket (ws package constructor)', async () => {
    const c = await client({ servers: server.wsUrl, webSocket: WebSocket });
    const t = topic('ws');
    const sub = c.subscribe(t);
    await sub.ready();
    const tcp = await client();
    tcp.publish(t, 'over tcp');
    c.publish(t, new Uint8Array([0xff, 0x00, 0x01]));
    const got = await take(sub, 2);
    const payloads = got.map((m) => [...m.payload].join(','));
    assert.ok(payloads.includes('255,0,1'));
    assert.ok(got.some((m) => m.string() === 'over tcp'));
    // Request/reply works over the WebSocket too.
    const svc = tcp.subscribe(`${t}.svc`, { callback: (m) => void m.respond(`ws:${m.string()}`) });
    await svc.ready();
    assert.equal((await c.request(`${t}.svc`, 'hi')).string(), 'ws:hi');
  });

  it('splits messages between the members of a queue group', async () => {
    const a = await client();
    const b = await client();
    const t = topic('work');
    const counts = { a: 0, b: 0, plain: 0 };
    const sa = a.subscribe(t, { queue: 'workers', callback: () => void counts.a++ });
    const sb = b.subscribe(t, { queue: 'workers', callback: () => void counts.b++ });
    const plain = b.subscribe(t, { callback: () => void counts.plain++ });
    await Promise.all([sa.ready(), sb.ready(), plain.ready()]);
    const p = await client();
    for (let i = 0; i < 60; i++) p.publish(t, String(i));
    await p.flush();
    await a.flush();
    await b.flush();
    assert.equal(counts.a + counts.b, 60, 'each message goes to exactly one member');
    assert.ok(counts.a > 0 && counts.b > 0, `both members get work (a=${counts.a}, b=${counts.b})`);
    assert.equal(counts.plain, 60, 'a plain subscription still gets every message');
  });

  it('ends a subscription after max messages', async () => {
    const c = await client();
    const t = topic('max');
    const sub = c.subscribe(t, { max: 3 });
    await sub.ready();
    for (let i = 0; i < 5; i++) c.publish(t, String(i));
    const got: string[] = [];
    for await (const m of sub) got.push(m.string());
    assert.deepEqual(got, ['0', '1', '2']);
  });

  it('confirms a publish with the OK body', async () => {
    const c = await client();
    const t = topic('confirm');
    const sub = c.subscribe(t);
    await sub.ready();
    assert.deepEqual(await c.publish(t, 'x', { confirm: true }), { delivered: 1 });
    assert.deepEqual(await c.publishConfirmed(topic('nobody'), 'x'), { delivered: 0 });
  });

  it('maps server refusals to typed errors', async () => {
    const c = await client();
    await assert.rejects(c.publishConfirmed('bad..topic', 'x'), { code: 'INVALID_TOPIC' });
    const bad = c.subscribe('a.b*');
    await assert.rejects(bad.ready(), { code: 'INVALID_PATTERN' });
    // A fire-and-forget publish that the server refuses is reported on the error event.
    const error = c.next('error');
    c.publish('has space', 'x');
    assert.equal((await error).code, 'INVALID_TOPIC');
  });
});

describe('SDK against the real server: request/reply', () => {
  it('gets the reply from one responder', async () => {
    const svc = await client();
    const t = topic('echo');
    let calls = 0;
    const s1 = svc.subscribe(t, {
      queue: 'svc',
      callback: (m) => void (calls++, m.respond(`re:${m.string()}`)),
    });
    const s2 = svc.subscribe(t, {
      queue: 'svc',
      callback: (m) => void (calls++, m.respond(`re:${m.string()}`)),
    });
    await Promise.all([s1.ready(), s2.ready()]);
    const c = await client();
    const replies = await Promise.all([1, 2, 3].map((n) => c.request(t, `q${n}`, { timeoutMs: 3000 })));
    assert.deepEqual(
      replies.map((r) => r.string()),
      ['re:q1', 're:q2', 're:q3'],
    );
    assert.equal(calls, 3);
  });

  it('rejects with NoRespondersError at once when nobody listens (not after the timeout)', async () => {
    const c = await client();
    const t = topic('nobody.home');
    // Default 5 s timeout: getting NoRespondersError (not TimeoutError) shows it did not wait for it.
    await assert.rejects(c.request(t, 'x'), (err: unknown) => {
      assert.ok(err instanceof NoRespondersError, `expected NoRespondersError, got ${String(err)}`);
      assert.equal(err.code, 'NO_RESPONDERS');
      assert.match(err.message, new RegExp(`no responders for '${t.replace(/\./g, '\\.')}'`));
      return true;
    });
  });

  it('rejects with TimeoutError when the responder does not answer in time', async () => {
    const svc = await client();
    const t = topic('slow');
    const s = svc.subscribe(t, { callback: () => {} });
    await s.ready();
    const c = await client();
    await assert.rejects(c.request(t, 'x', { timeoutMs: 150 }), TimeoutError);
  });

  it("rejects with the responder's typed error", async () => {
    const svc = await client();
    const t = topic('fails');
    const s = svc.subscribe(t, {
      callback: (m) => void m.respondError('NOT_FOUND', 'order 7 does not exist'),
    });
    await s.ready();
    const c = await client();
    await assert.rejects(c.request(t, 'x'), (err: unknown) => {
      assert.ok(err instanceof NotFoundError);
      assert.equal(err.message, 'order 7 does not exist');
      return true;
    });
  });
});

describe('SDK against the real server: lifecycle', () => {
  it('drain delivers what was published before it, waits for confirms, then closes', async () => {
    const c = await client();
    const t = topic('drain');
    const sub = c.subscribe(t);
    await sub.ready();
    for (let i = 0; i < 100; i++) c.publish(t, String(i));
    const confirm = c.publishConfirmed(t, 'last');
    await c.drain();
    assert.deepEqual(await confirm, { delivered: 1 });
    assert.equal(await c.closed(), undefined);
    const got: string[] = [];
    for await (const m of sub) got.push(m.string());
    assert.equal(got.length, 101);
    assert.equal(got[100], 'last');
    assert.throws(() => c.publish(t, 'x'), ConnectionClosedError);
  });

  it('reconnects and resubscribes after the server restarts on the same port', async () => {
    const first = await startTestServer();
    const port = first.port;
    let second: TestServer | undefined;
    const c = await connect({
      servers: first.url,
      reconnectBackoff: { initialMs: 50, maxMs: 200, jitter: 0.1 },
      timeoutMs: 2000,
    });
    try {
      const t = topic('restart');
      const sub = c.subscribe(t);
      await sub.ready();
      const disconnected = c.next('disconnect');
      const reconnected = c.next('reconnect');
      await first.close();
      await disconnected;
      assert.equal(c.isReconnecting, true);
      // Held while disconnected, sent after the new handshake.
      c.publish(t, 'held');
      second = await startTestServer({ 'network.listen_port': String(port) });
      await reconnected;
      await sub.ready();
      const p = await connect({ servers: second.url });
      p.publish(t, 'after restart');
      await p.close();
      const got = await take(sub, 2, 5000);
      assert.deepEqual(got.map((m) => m.string()).sort(), ['after restart', 'held']);
    } finally {
      await c.close();
      await second?.close();
    }
  });

  it('rejects connect with CONNECTION_CLOSED when nothing listens', async () => {
    const probe = await startTestServer();
    const url = probe.url;
    await probe.close();
    await assert.rejects(connect({ servers: url, timeoutMs: 2000 }), (err: unknown) => {
      assert.ok(err instanceof ConnectionClosedError);
      assert.match(err.message, /cannot reach tcp:\/\/127\.0\.0\.1:\d+/);
      return true;
    });
  });
});
