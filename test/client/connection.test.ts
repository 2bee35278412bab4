/**
 * Protocol-level behaviour of the SDK's Connection over the in-memory transport pair.
 *
 * The server here is a tiny scripted fake written for these tests, on purpose: batching, reconnect
 * backoff, heartbeats and error mapping need a peer we can make misbehave on cue (stay silent, drop
 * the link, send a fatal ERR, refuse connections). Everything that a real server can show — routing,
 * queue groups, request/reply end to end — is tested against the real server in integration.test.ts.
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  FrameParser,
  FrameType,
  PUB_FLAG_REQUEST,
  encodeControl,
  encodeMsg,
  encodePing,
  encodePong,
  FLAG_HAS_ID,
  ulidFromString,
  ulidTime,
  type ControlFrame,
  type Frame,
  type PubFrame,
  type WireError,
} from '../../src/protocol/index.ts';
import {
  AuthError,
  ConnectionClosedError,
  MessagingError,
  NoRespondersError,
  NotFoundError,
  PermissionError,
  TimeoutError,
  connect,
  createMemoryPair,
  type Connection,
  type ConnectOptions,
  type ConnectionEvents,
  type MemoryTransport,
  type TransportFactory,
} from '../../src/client/index.ts';
import { backoffDelay, parseServerUrl } from '../../src/client/options.ts';

// ---------------------------------------------------------------------------------------------------
// The scripted fake server

function matches(pattern: string, topic: string): boolean {
  const p = pattern.split('.');
  const t = topic.split('.');
  const walk = (i: number, j: number): boolean => {
    if (i === p.length) return j === t.length;
    if (p[i] === '#') return walk(i + 1, j) || (j < t.length && walk(i, j + 1));
    if (j === t.length) return false;
    return (p[i] === '*' || p[i] === t[j]) && walk(i + 1, j + 1);
  };
  return walk(0, 0);
}

class FakeConn {
  readonly frames: Frame[] = [];
  /** Raw chunks as received: one per client flush. */
  readonly chunks: Uint8Array[] = [];
  readonly subs = new Map<number, { pattern: string; queue?: string }>();
  hello: Record<string, unknown> | undefined;
  private waiters: Array<{ pred: (f: Frame) => boolean; resolve: (f: Frame) => void }> = [];
  private readonly parser = new FrameParser(1 << 24, (f) => this.onFrame(f));

  constructor(
    readonly server: FakeServer,
    readonly end: MemoryTransport,
  ) {
    end.receive((chunk) => {
      this.chunks.push(chunk);
      this.parser.push(chunk);
    });
  }

  send(bytes: Uint8Array): void {
    this.end.send(bytes);
  }

  sendErr(reqId: number, error: WireError): void {
    this.send(encodeControl(FrameType.ERR, reqId, error));
  }

  /** Resolves with the first frame (already received or future) matching `pred`. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs = 2000): Promise<Frame> {
    const found = this.frames.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('waitFor timed out')), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
    });
  }

  pubs(): PubFrame[] {
    return this.frames.filter((f): f is PubFrame => f.type === FrameType.PUB);
  }

  private onFrame(f: Frame): void {
    this.frames.push(f);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(f)) return true;
      w.resolve(f);
      return false;
    });
    const s = this.server;
    switch (f.type) {
      case FrameType.HELLO: {
        this.hello = f.body;
        const refusal = s.helloError;
        if (refusal) {
          this.sendErr(f.reqId, refusal);
          this.end.close();
        } else {
          const welcome = encodeControl(FrameType.WELCOME, f.reqId, s.welcome);
          const extra = s.afterWelcome;
          // Glued into the same chunk: the client must handle what follows the WELCOME at once.
          this.send(extra ? new Uint8Array([...welcome, ...extra]) : welcome);
        }
        return;
      }
      case FrameType.PING:
        if (!s.silent) this.send(encodePong());
        return;
      case FrameType.SUB: {
        const b = f.body as { sid: number; pattern: string; queue?: string };
        this.subs.set(b.sid, { pattern: b.pattern, queue: b.queue });
        if (s.subError) this.sendErr(f.reqId, s.subError);
        else if (f.reqId) this.send(encodeControl(FrameType.OK, f.reqId, {}));
        return;
      }
      case FrameType.UNSUB:
        if (f.body['max'] === undefined) this.subs.delete(f.body['sid'] as number);
        return;
      case FrameType.CMD:
        if (s.holdAnswers) return;
        this.send(encodeControl(FrameType.OK, f.reqId, { echo: f.body }));
        return;
      case FrameType.PUB:
        if (f.reqId && !s.holdAnswers) this.send(encodeControl(FrameType.OK, f.reqId, { id: `m${f.reqId}` }));
        s.route(f);
        return;
      default:
        return;
    }
  }
}

class FakeServer {
  readonly conns: FakeConn[] = [];
  welcome: Record<string, unknown> = {
    version: 1,
    server: 'fake',
    server_version: '0.0.0',
    instance_id: 'fake-1',
    connection_id: 1,
    max_payload: 1024,
    heartbeat_ms: 30000,
  };
  refuse = false;
  silent = false;
  holdAnswers = false;
  helloError: WireError | undefined;
  afterWelcome: Uint8Array | undefined;
  subError: WireError | undefined;
  /** Responders: topic → answer builder; used for request tests. */
  responders = new Map<string, (f: PubFrame) => { payload?: string; meta?: Record<string, unknown> }>();
  private accepted: Array<(c: FakeConn) => void> = [];

  readonly factory: TransportFactory = async () => {
    if (this.refuse) throw new Error('connect ECONNREFUSED (fake)');
    const [client, server] = createMemoryPair();
    const conn = new FakeConn(this, server);
    this.conns.push(conn);
    const waiters = this.accepted;
    this.accepted = [];
    for (const w of waiters) w(conn);
    return client;
  };

  get last(): FakeConn {
    return this.conns[this.conns.length - 1]!;
  }

  /** Resolves with connection number `n` (1-based) once it exists. */
  connection(n: number): Promise<FakeConn> {
    if (this.conns.length >= n) return Promise.resolve(this.conns[n - 1]!);
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.conns.length >= n) resolve(this.conns[n - 1]!);
        else this.accepted.push(check);
      };
      this.accepted.push(check);
    });
  }

  route(f: PubFrame): void {
    const responder = this.responders.get(f.topic);
    if (responder && f.reply) {
      const answer = responder(f);
      const enc = new TextEncoder().encode(answer.payload ?? '');
      for (const c of this.conns) {
        for (const [sid, sub] of c.subs) {
          if (matches(sub.pattern, f.reply)) c.send(encodeMsg(sid, f.reply, enc, { meta: answer.meta }));
        }
      }
      return;
    }
    let delivered = 0;
    for (const c of this.conns) {
      if (!c.end.isOpen) continue;
      for (const [sid, sub] of c.subs) {
        if (!matches(sub.pattern, f.topic)) continue;
        if ((f.flags & PUB_FLAG_REQUEST) !== 0 && delivered > 0) continue;
        c.send(encodeMsg(sid, f.topic, f.payload, { reply: f.reply, meta: f.meta, msgId: f.msgId }));
        delivered++;
      }
    }
    if ((f.flags & PUB_FLAG_REQUEST) !== 0 && delivered === 0 && f.reply) {
      for (const c of this.conns) {
        for (const [sid, sub] of c.subs) {
          if (matches(sub.pattern, f.reply)) {
            c.send(encodeMsg(sid, f.reply, new Uint8Array(0), { meta: { status: 'no_responders' } }));
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------

const open: Connection[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});

async function connectFake(server: FakeServer, options: ConnectOptions = {}): Promise<Connection> {
  const c = await connect({
    servers: 'memory://fake',
    transport: server.factory,
    reconnectBackoff: { initialMs: 5, maxMs: 20, jitter: 0 },
    ...options,
  });
  open.push(c);
  return c;
}

function record<K extends keyof ConnectionEvents>(c: Connection, event: K): Array<ConnectionEvents[K]> {
  const seen: Array<ConnectionEvents[K]> = [];
  c.on(event, (p) => seen.push(p));
  return seen;
}

const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('client handshake', () => {
  it('sends HELLO (reqId 1, version, name, token) and exposes the WELCOME body as info', async () => {
    const server = new FakeServer();
    const c = await connectFake(server, { name: 'unit', token: 'jwt-token' });
    const hello = (await server.last.waitFor((f) => f.type === FrameType.HELLO)) as ControlFrame;
    assert.equal(hello.reqId, 1);
    assert.deepEqual(hello.body, { version: 2, lang: 'typescript', client: 'unit', token: 'jwt-token' });
    assert.equal(c.info.server, 'fake');
    assert.equal(c.info.max_payload, 1024);
  });

  it('handles frames that arrive in the same chunk right behind the WELCOME', async () => {
    const server = new FakeServer();
    server.afterWelcome = encodePing();
    await connectFake(server);
    await server.last.waitFor((f) => f.type === FrameType.PONG);
  });

  it('rejects connect with the typed handshake error and does not retry AUTH_FAILED', async () => {
    const server = new FakeServer();
    server.helloError = { code: 'AUTH_FAILED', message: 'bad token' };
    await assert.rejects(connectFake(server), (err: unknown) => {
      assert.ok(err instanceof AuthError);
      assert.equal(err.code, 'AUTH_FAILED');
      assert.equal(err.message, 'bad token');
      return true;
    });
    assert.equal(server.conns.length, 1);
  });

  it('rejects connect with CONNECTION_CLOSED naming the server when it is unreachable', async () => {
    const server = new FakeServer();
    server.refuse = true;
    await assert.rejects(connectFake(server), (err: unknown) => {
      assert.ok(err instanceof ConnectionClosedError);
      assert.match(err.message, /cannot reach memory:\/\/fake: connect ECONNREFUSED/);
      return true;
    });
  });

  it('tries each server of the list in order', async () => {
    const good = new FakeServer();
    const factory: TransportFactory = async (url, o) => {
      if (url.hostname === 'down') throw new Error('refused');
      return good.factory(url, o);
    };
    const c = await connectFake(good, { servers: ['memory://down', 'memory://up'], transport: factory });
    assert.equal(c.server, 'memory://up');
  });
});

describe('client writes', () => {
  it('batches every frame of one tick into a single write', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    const conn = server.last;
    await c.flush();
    const before = conn.chunks.length;
    for (let i = 0; i < 100; i++) c.publish('batch.topic', `m${i}`);
    await c.flush();
    // 100 PUBs + the flush PING left in one write.
    assert.equal(conn.chunks.length, before + 1);
    assert.equal(conn.pubs().length, 100);
    assert.equal(text(conn.pubs()[99]!.payload), 'm99');
  });

  it('flushes at once when a tick queues a lot, without waiting for the end of the tick', async () => {
    const server = new FakeServer();
    server.welcome = { ...server.welcome, max_payload: 1 << 20 };
    const c = await connectFake(server);
    await c.flush();
    const before = server.last.chunks.length;
    const big = new Uint8Array(40 * 1024);
    for (let i = 0; i < 4; i++) c.publish('big', big);
    await c.flush();
    assert.ok(server.last.chunks.length >= before + 2, 'a 160 KiB tick is split into several writes');
  });

  it('encodes strings as UTF-8, sends no metadata when none is set, and maps options to meta', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    c.publish('a.b', 'héllo');
    c.publish('a.c', new Uint8Array([1, 2, 3]), {
      headers: { k: 'v' },
      priority: 'high',
      ttlMs: 1000,
      correlationId: 'c1',
      type: 'event',
      deliverAt: new Date(5000),
      id: 'id-1',
      reply: 'r.x',
    });
    await c.flush();
    const [p1, p2] = server.last.pubs();
    assert.equal(text(p1!.payload), 'héllo');
    assert.equal(p1!.meta, undefined);
    assert.equal(p1!.reqId, 0);
    assert.deepEqual([...p2!.payload], [1, 2, 3]);
    assert.equal(p2!.reply, 'r.x');
    assert.deepEqual(p2!.meta, {
      headers: { k: 'v' },
      priority: 3,
      ttl_ms: 1000,
      correlation_id: 'c1',
      type: 'event',
      deliver_at: 5000,
      id: 'id-1',
    });
  });

  it('sends a ULID id as the binary message id and exposes the stamped id and time on messages', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    const sub = c.subscribe('ids');
    await sub.ready();
    const ulid = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
    c.publish('ids', 'x', { id: ulid });
    const pub = (await server.last.waitFor((f) => f.type === FrameType.PUB)) as PubFrame;
    assert.equal(pub.meta, undefined);
    assert.equal(pub.flags & FLAG_HAS_ID, FLAG_HAS_ID);
    assert.deepEqual(pub.msgId, ulidFromString(ulid));
    const m = (await sub[Symbol.asyncIterator]().next()).value!;
    assert.equal(m.id, ulid);
    assert.equal(m.timestamp, ulidTime(ulidFromString(ulid)!));
  });

  it('refuses a payload above the server max_payload without sending it', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    assert.throws(() => c.publish('x', new Uint8Array(2000)), { code: 'PAYLOAD_TOO_LARGE' });
    await assert.rejects(c.publishConfirmed('x', new Uint8Array(2000)), { code: 'PAYLOAD_TOO_LARGE' });
  });
});

describe('client confirms, commands and server errors', () => {
  it('publish with confirm resolves with the OK body; publishes use non-zero request ids', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    const ack = await c.publish('x', 'y', { confirm: true });
    const pub = server.last.pubs()[0]!;
    assert.notEqual(pub.reqId, 0);
    assert.deepEqual(ack, { id: `m${pub.reqId}` });
    assert.deepEqual(await c.publishConfirmed('x', 'z'), { id: `m${server.last.pubs()[1]!.reqId}` });
  });

  it('ERR with a request id rejects that promise with the typed error', async () => {
    const server = new FakeServer();
    server.holdAnswers = true;
    const c = await connectFake(server);
    const p = c.command('queue.declare', { name: 'q' });
    const cmd = (await server.last.waitFor((f) => f.type === FrameType.CMD)) as ControlFrame;
    assert.deepEqual(cmd.body, { name: 'q', op: 'queue.declare' });
    server.last.sendErr(cmd.reqId, { code: 'PERMISSION_DENIED', message: 'no', details: { topic: 'q' } });
    await assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof PermissionError);
      assert.deepEqual(err.details, { topic: 'q' });
      return true;
    });
  });

  it('command resolves with the OK body', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    assert.deepEqual(await c.command('ping.op', { a: 1 }), { echo: { a: 1, op: 'ping.op' } });
  });

  it('confirms and commands time out with TimeoutError', async () => {
    const server = new FakeServer();
    server.holdAnswers = true;
    const c = await connectFake(server);
    await assert.rejects(c.publishConfirmed('x', 'y', { timeoutMs: 20 }), TimeoutError);
    await assert.rejects(c.publishConfirmed('orders.eu', 'y', { timeoutMs: 20 }), {
      message: "publish to 'orders.eu' got no answer within 20 ms",
    });
    await assert.rejects(c.command('slow', {}, { timeoutMs: 20 }), {
      code: 'TIMEOUT',
      message: "command 'slow' got no answer within 20 ms",
    });
  });

  it('ERR with reqId 0 is emitted as a status error; an unknown code becomes INTERNAL', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    const errors = record(c, 'error');
    server.last.sendErr(0, { code: 'INVALID_TOPIC', message: 'bad topic' });
    server.last.sendErr(0, { code: 'FUTURE_CODE' as WireError['code'], message: 'new' });
    await c.flush();
    assert.equal(errors.length, 2);
    assert.equal(errors[0]!.code, 'INVALID_TOPIC');
    assert.equal(errors[1]!.code, 'INTERNAL');
    assert.match(errors[1]!.message, /FUTURE_CODE/);
  });

  it('a refused SUB closes the subscription with the error', async () => {
    const server = new FakeServer();
    server.subError = { code: 'INVALID_PATTERN', message: 'bad pattern' };
    const c = await connectFake(server);
    const sub = c.subscribe('a..b');
    await assert.rejects(sub.ready(), { code: 'INVALID_PATTERN' });
    await assert.rejects(
      async () => {
        for await (const _ of sub) assert.fail('no messages expected');
      },
      { code: 'INVALID_PATTERN' },
    );
  });
});

describe('client subscriptions', () => {
  it('delivers to an async iterator and a callback, with meta helpers', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    const it1 = c.subscribe('orders.*');
    const got: string[] = [];
    const cb = c.subscribe('orders.#', { callback: (m) => void got.push(m.string()) });
    await Promise.all([it1.ready(), cb.ready()]);
    c.publish('orders.created', JSON.stringify({ n: 1 }), { headers: { h: '1' }, priority: 4, id: 'x1' });
    const first = await it1[Symbol.asyncIterator]().next();
    assert.equal(first.done, false);
    const m = first.value!;
    assert.equal(m.topic, 'orders.created');
    assert.deepEqual(m.json(), { n: 1 });
    assert.deepEqual(m.headers, { h: '1' });
    assert.equal(m.priority, 4);
    assert.equal(m.id, 'x1');
    assert.equal(m.sid, it1.sid);
    await c.flush();
    assert.deepEqual(got, ['{"n":1}']);
  });

  it('each message keeps its own payload and id, whether frames came in one chunk or split', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    const sub = c.subscribe('many');
    await sub.ready();
    const idOf = (i: number): Uint8Array => Uint8Array.from({ length: 16 }, (_, k) => (i * 16 + k) & 0xff);
    const frame = (i: number): Uint8Array =>
      encodeMsg(sub.sid, 'many', new TextEncoder().encode(`m${i}`), { msgId: idOf(i) });
    const all = (from: number, n: number): Uint8Array =>
      new Uint8Array(Array.from({ length: n }, (_, k) => [...frame(from + k)]).flat());
    server.last.send(all(0, 40));
    const split = all(40, 40);
    for (let o = 0; o < split.length; o += 7) server.last.send(split.subarray(o, o + 7));
    const got = [];
    for await (const m of sub) {
      got.push(m);
      if (got.length === 80) break;
    }
    got[0]!.payload.fill(0); // a message's bytes are its own: changing them touches no other message
    assert.deepEqual(
      got.slice(1).map((m) => m.string()),
      Array.from({ length: 79 }, (_, i) => `m${i + 1}`),
    );
    got.forEach((m, i) => assert.deepEqual(m.idBytes, idOf(i)));
  });

  it('max ends the subscription after N messages and tells the server', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    const sub = c.subscribe('t', { max: 2 });
    await sub.ready();
    const unsub = (await server.last.waitFor((f) => f.type === FrameType.UNSUB)) as ControlFrame;
    assert.deepEqual(unsub.body, { sid: sub.sid, max: 2 });
    for (let i = 0; i < 3; i++) c.publish('t', String(i));
    const seen: string[] = [];
    for await (const m of sub) seen.push(m.string());
    assert.deepEqual(seen, ['0', '1']);
    assert.equal(sub.isActive, false);
  });

  it('breaking out of a for-await loop unsubscribes', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    const sub = c.subscribe('t');
    await sub.ready();
    c.publish('t', 'a');
    for await (const _ of sub) break;
    await server.last.waitFor((f) => f.type === FrameType.UNSUB && f.body['sid'] === sub.sid);
    assert.equal(sub.isActive, false);
  });

  it('a throwing callback is reported on the error event, delivery continues', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    const errors = record(c, 'error');
    let n = 0;
    const sub = c.subscribe('t', {
      callback: () => {
        n++;
        throw new Error('boom');
      },
    });
    await sub.ready();
    c.publish('t', '1');
    c.publish('t', '2');
    await c.flush();
    await tick();
    assert.equal(n, 2);
    assert.equal(errors.length, 2);
    assert.match(errors[0]!.message, /boom/);
  });
});

describe('client request/reply', () => {
  it('uses one wildcard inbox for all requests, sets the request flag and resolves with the reply', async () => {
    const server = new FakeServer();
    server.responders.set('svc.echo', (f) => ({ payload: `re:${text(f.payload)}` }));
    const c = await connectFake(server);
    const [a, b] = await Promise.all([c.request('svc.echo', 'a'), c.request('svc.echo', 'b')]);
    assert.equal(a.string(), 're:a');
    assert.equal(b.string(), 're:b');
    const subs = server.last.frames.filter((f) => f.type === FrameType.SUB) as ControlFrame[];
    assert.equal(subs.length, 1);
    const pattern = subs[0]!.body['pattern'] as string;
    assert.match(pattern, /^_INBOX\.[0-9A-Za-z]{22}\.\*$/);
    const reqs = server.last.pubs();
    assert.equal(reqs.length, 2);
    for (const r of reqs) {
      assert.equal(r.flags & PUB_FLAG_REQUEST, PUB_FLAG_REQUEST);
      assert.ok(matches(pattern, r.reply));
    }
    assert.notEqual(reqs[0]!.reply, reqs[1]!.reply);
  });

  it('rejects with NoRespondersError on a no_responders status', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    await assert.rejects(c.request('nobody.home', 'x'), (err: unknown) => {
      assert.ok(err instanceof NoRespondersError);
      assert.equal(err.code, 'NO_RESPONDERS');
      assert.match(err.message, /no responders for 'nobody.home'/);
      return true;
    });
  });

  it('rejects with the typed responder error carried in meta.error', async () => {
    const server = new FakeServer();
    server.responders.set('svc.fail', () => ({
      meta: { error: { code: 'NOT_FOUND', message: 'no such order' } },
    }));
    const c = await connectFake(server);
    await assert.rejects(c.request('svc.fail', 'x'), (err: unknown) => {
      assert.ok(err instanceof NotFoundError);
      assert.equal(err.message, 'no such order');
      return true;
    });
  });

  it('rejects with TimeoutError when no reply arrives', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    const responder = c.subscribe('svc.slow'); // takes the request, never answers
    await responder.ready();
    await assert.rejects(c.request('svc.slow', 'x', { timeoutMs: 30 }), (err: unknown) => {
      assert.ok(err instanceof TimeoutError);
      assert.equal(err.code, 'TIMEOUT');
      return true;
    });
  });

  it('Message.respond and respondError publish to the reply topic', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    const svc = c.subscribe('svc.*', {
      callback: (m) => {
        if (m.topic === 'svc.ok') m.respond(`ok:${m.string()}`);
        else m.respondError('BAD_REQUEST', 'nope');
      },
    });
    await svc.ready();
    assert.equal((await c.request('svc.ok', 'q', { correlationId: 'c9' })).string(), 'ok:q');
    const answer = server.last.pubs().find((p) => p.topic.startsWith('_INBOX.'))!;
    assert.equal(answer.meta?.correlation_id, 'c9');
    await assert.rejects(c.request('svc.bad', 'q'), { code: 'BAD_REQUEST', message: 'nope' });
  });
});

describe('client heartbeats', () => {
  it('answers a server PING with PONG', async () => {
    const server = new FakeServer();
    await connectFake(server);
    const conn = server.last;
    conn.send(encodePing());
    await conn.waitFor((f) => f.type === FrameType.PONG);
  });

  it('PINGs after silence and treats two missed PONGs as a dead connection', async () => {
    const server = new FakeServer();
    const c = await connectFake(server, { pingIntervalMs: 15 });
    const disconnects = record(c, 'disconnect');
    const first = server.last;
    server.silent = true;
    const reconnected = c.next('reconnect');
    // The replacement connection answers normally.
    void c.next('disconnect').then(() => (server.silent = false));
    await reconnected;
    const pings = first.frames.filter((f) => f.type === FrameType.PING).length;
    assert.equal(pings, 2);
    assert.equal(disconnects[0]!.error.code, 'HEARTBEAT_TIMEOUT');
    assert.equal(server.conns.length, 2);
  });
});

describe('client reconnect', () => {
  it('reconnects with exponential backoff, re-sends HELLO and every SUB with the same sid', async () => {
    const server = new FakeServer();
    const c = await connectFake(server, { reconnectBackoff: { initialMs: 5, maxMs: 20, jitter: 0 } });
    const sub = c.subscribe('orders.*', { queue: 'workers' });
    const cb: string[] = [];
    const sub2 = c.subscribe('x', { callback: (m) => void cb.push(m.string()) });
    await Promise.all([sub.ready(), sub2.ready()]);
    const attempts = record(c, 'reconnecting');

    server.refuse = true;
    server.last.end.destroy(new Error('network down'));
    await c.next('disconnect');
    assert.equal(c.isReconnecting, true);
    // Let three attempts fail, then come back.
    while (attempts.length < 4) await c.next('reconnecting');
    server.refuse = false;
    await c.next('reconnect');

    assert.deepEqual(
      attempts.slice(0, 4).map((a) => a.delayMs),
      [5, 10, 20, 20],
    );
    assert.match(attempts[1]!.lastError!.message, /ECONNREFUSED/);
    const conn2 = server.last;
    const hello = await conn2.waitFor((f) => f.type === FrameType.HELLO);
    assert.ok(hello);
    await sub.ready();
    assert.deepEqual(conn2.subs.get(sub.sid), { pattern: 'orders.*', queue: 'workers' });
    assert.deepEqual(conn2.subs.get(sub2.sid), { pattern: 'x', queue: undefined });

    c.publish('orders.new', 'after');
    c.publish('x', 'cb-after');
    const next = await sub[Symbol.asyncIterator]().next();
    assert.equal(next.value!.string(), 'after');
    await c.flush();
    assert.deepEqual(cb, ['cb-after']);
  });

  it('fails written confirms and requests with CONNECTION_CLOSED, keeps what was issued while disconnected', async () => {
    const server = new FakeServer();
    server.holdAnswers = true;
    const c = await connectFake(server);
    // A responder that takes the request and never answers.
    const silentResponder = c.subscribe('svc', { callback: () => {} });
    await silentResponder.ready();
    const written = c.publishConfirmed('x', '1');
    const req = c.request('svc', 'q');
    await c.flush();
    server.refuse = true;
    server.last.end.destroy();
    await assert.rejects(written, ConnectionClosedError);
    await assert.rejects(req, ConnectionClosedError);

    // Issued while reconnecting: held and sent after the handshake.
    c.publish('held.topic', 'held');
    server.holdAnswers = false;
    const held = c.publishConfirmed('held.confirm', 'h');
    server.refuse = false;
    await c.next('reconnect');
    assert.deepEqual(await held, {
      id: `m${server.last.pubs().find((p) => p.topic === 'held.confirm')!.reqId}`,
    });
    const topics = server.last.pubs().map((p) => p.topic);
    assert.deepEqual(topics, ['held.topic', 'held.confirm']);
  });

  it('bounds what it holds while reconnecting', async () => {
    const server = new FakeServer();
    const c = await connectFake(server, { reconnectBufferBytes: 200 });
    server.refuse = true;
    server.last.end.destroy();
    await c.next('disconnect');
    c.publish('a', new Uint8Array(100));
    assert.throws(() => c.publish('a', new Uint8Array(100)), ConnectionClosedError);
    await assert.rejects(c.publishConfirmed('a', new Uint8Array(100)), { code: 'CONNECTION_CLOSED' });
  });

  it('gives up after maxReconnectAttempts; iterators end with the reason', async () => {
    const server = new FakeServer();
    const c = await connectFake(server, { maxReconnectAttempts: 2 });
    const sub = c.subscribe('t');
    await sub.ready();
    server.refuse = true;
    server.last.end.destroy();
    const reason = await c.closed();
    assert.ok(reason instanceof ConnectionClosedError);
    assert.match(reason.message, /gave up after 2 reconnect attempts/);
    await assert.rejects(sub[Symbol.asyncIterator]().next(), ConnectionClosedError);
    assert.equal(server.conns.length, 1);
    assert.throws(() => c.publish('t', 'x'), ConnectionClosedError);
  });

  it('does not reconnect after a fatal AUTH error from the server', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    server.last.sendErr(0, { code: 'TOKEN_EXPIRED', message: 'token expired' });
    server.last.end.close();
    const reason = await c.closed();
    assert.ok(reason instanceof AuthError);
    assert.equal(reason.code, 'TOKEN_EXPIRED');
    assert.equal(server.conns.length, 1);
  });

  it('reconnects after a fatal but retryable ERR (e.g. SLOW_CONSUMER), reporting it as the reason', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    const disconnected = c.next('disconnect');
    server.last.sendErr(0, { code: 'SLOW_CONSUMER', message: 'too slow' });
    server.last.end.close();
    assert.equal((await disconnected).error.code, 'SLOW_CONSUMER');
    await c.next('reconnect');
    assert.equal(server.conns.length, 2);
  });

  it('drops and reconnects on bytes it cannot parse', async () => {
    const server = new FakeServer();
    const c = await connectFake(server);
    const disconnected = c.next('disconnect');
    server.last.send(new Uint8Array([0, 0, 0, 1, 0x7f]));
    assert.equal((await disconnected).error.code, 'UNKNOWN_FRAME_TYPE');
    await c.next('reconnect');
  });
});

describe('client drain and close', () => {
  it('drain unsubscribes, waits for outstanding confirms, then closes cleanly', async () => {
    const server = new FakeServer();
    server.holdAnswers = true;
    const c = await connectFake(server);
    const sub = c.subscribe('t');
    await sub.ready();
    const confirm = c.publishConfirmed('t', 'x');
    const drained = c.drain();
    await server.last.waitFor((f) => f.type === FrameType.UNSUB && f.body['sid'] === sub.sid);
    const pub = server.last.pubs()[0]!;
    assert.throws(() => c.subscribe('u'), ConnectionClosedError);
    // The message published before drain still reaches the iterator.
    server.last.send(encodeControl(FrameType.OK, pub.reqId, { id: 'late' }));
    await drained;
    assert.deepEqual(await confirm, { id: 'late' });
    assert.equal(await c.closed(), undefined);
    const seen: string[] = [];
    for await (const m of sub) seen.push(m.string());
    assert.deepEqual(seen, ['x']);
  });

  it('close rejects pending work with CONNECTION_CLOSED and still writes queued publishes', async () => {
    const server = new FakeServer();
    server.holdAnswers = true;
    const c = await connectFake(server);
    const conn = server.last;
    const pending = c.command('never');
    c.publish('last.words', 'bye');
    await c.close();
    await assert.rejects(pending, ConnectionClosedError);
    await conn.waitFor((f) => f.type === FrameType.PUB && f.topic === 'last.words');
    assert.equal(await c.closed(), undefined);
  });
});

describe('client options', () => {
  it('parses server URLs with tcp and port 8080 as defaults', () => {
    assert.equal(parseServerUrl('localhost').href, 'tcp://localhost:8080');
    assert.equal(parseServerUrl('10.0.0.1:4000').href, 'tcp://10.0.0.1:4000');
    assert.equal(parseServerUrl('tls://h').port, '8080');
    assert.equal(parseServerUrl('ws://h:9/v1/ws').pathname, '/v1/ws');
    assert.throws(() => parseServerUrl('tcp://bad host'), MessagingError);
  });

  it('backoff grows exponentially, is capped, and jitter stays within ±jitter', () => {
    const b = { initialMs: 100, maxMs: 1000, jitter: 0 };
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((n) => backoffDelay(b, n)),
      [100, 200, 400, 800, 1000, 1000],
    );
    const j = { initialMs: 100, maxMs: 1000, jitter: 0.5 };
    assert.equal(
      backoffDelay(j, 1, () => 0),
      50,
    );
    assert.equal(
      backoffDelay(j, 1, () => 1),
      150,
    );
  });
});
