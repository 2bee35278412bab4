/**
 * The hostile-input battery against a running server: a fuzzer feeding 100,000 mutated and random frames
 * over a handful of connections (the server stays up, every frame is answered, memory stays flat);
 * oversized headers and payloads; slow-loris on the handshake and on HTTP; connection floods beyond
 * max_connections; and secrets that must never appear in logs, error bodies or --print-config.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { connect as netConnect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { formatConfig, loadConfig } from '../../src/config/index.ts';
import {
  encodeControl,
  encodePing,
  encodePub,
  FrameParser,
  FrameType,
  PUB_FLAG_REQUEST,
  type Frame,
} from '../../src/protocol/index.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { hsToken, rsaKeys, startCaptured, tempDir, type CapturedServer } from './helpers.ts';
import { seededRandom } from '../helpers/random.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const prng = seededRandom;

const OPS = [
  'queue.declare',
  'queue.delete',
  'queue.list',
  'queue.info',
  'queue.purge',
  'queue.pull',
  'queue.ack',
  'queue.nack',
  'dlq.list',
  'dlq.replay',
  'dlq.purge',
  'stream.declare',
  'stream.delete',
  'stream.list',
  'stream.info',
  'stream.read',
  'stream.commit',
  'task.get',
  'task.list',
  'task.stats',
  'nope',
  '',
  'queue.',
  '__proto__',
  'constructor',
  'x'.repeat(300),
];
const ARG_KEYS = [
  'name',
  'queue',
  'stream',
  'sid',
  'bindings',
  'max',
  'from',
  'prefetch',
  'delivery_id',
  'delivery_ids',
  'ids',
  'limit',
  'offset',
  'reader',
  'next_seq',
  'id',
  'max_length',
  'overflow',
  '__proto__',
];

class Fuzz {
  constructor(readonly rnd: () => number) {}
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  string(): string {
    const kind = this.int(6);
    if (kind === 0) return `fuzz.pub.${this.int(50)}`;
    if (kind === 1)
      return this.pick([
        '',
        'a..b',
        '*',
        '#',
        'a.*.#',
        ' ',
        'x'.repeat(400),
        '\u0000',
        '💥.🔥',
        'q1',
        'q2',
        's1',
      ]);
    const len = this.int(kind === 5 ? 300 : 20);
    let s = '';
    for (let i = 0; i < len; i++)
      s += String.fromCharCode(kind === 4 ? 0x20 + this.int(0x3000) : 0x20 + this.int(95));
    return s;
  }
  value(depth = 0): unknown {
    switch (this.int(depth > 2 ? 5 : 8)) {
      case 0:
        return null;
      case 1:
        return this.rnd() < 0.5;
      case 2:
        return this.pick([0, -1, 1, 2 ** 32, 2 ** 53, -(2 ** 31), 1.5, 1e308, this.int(100)]);
      case 3:
      case 4:
        return this.string();
      case 5:
        return Array.from({ length: this.int(5) }, () => this.value(depth + 1));
      default: {
        const o: Record<string, unknown> = {};
        for (let i = this.int(5); i > 0; i--) o[this.pick(ARG_KEYS)] = this.value(depth + 1);
        return o;
      }
    }
  }
  /** A well-framed frame with random content (non-fatal by design): reqId is always answered. */
  structured(reqId: number): Uint8Array {
    switch (this.int(4)) {
      case 0:
        return encodeControl(FrameType.SUB, reqId, {
          sid: this.pick([this.int(1000) + 1, -1, 0, 2 ** 33, 'x', null, 1.5]),
          // Patterns nobody publishes to: a fuzz subscription must not turn into a fan-out storm.
          pattern: this.rnd() < 0.3 ? `fuzz.sub.${this.int(100)}` : this.value(),
          ...(this.rnd() < 0.3 ? { queue: this.value() } : {}),
        });
      case 1:
        return encodeControl(FrameType.UNSUB, reqId, { sid: this.value(), max: this.value() });
      case 2: {
        const args = this.value() as Record<string, unknown> | null;
        const body = args && typeof args === 'object' && !Array.isArray(args) ? args : {};
        if (typeof body.bindings === 'string' || Array.isArray(body.bindings))
          body.bindings = [`fuzz.bind.${this.int(9)}`];
        return encodeControl(FrameType.CMD, reqId, { ...body, op: this.pick(OPS) });
      }
      default: {
        const meta = this.rnd() < 0.4 ? (this.value(1) as Record<string, unknown>) : undefined;
        const size = this.rnd() < 0.02 ? 5000 : this.int(64);
        return encodePub(reqId, this.string(), new Uint8Array(size), {
          ...(meta && typeof meta === 'object' && !Array.isArray(meta)
            ? { meta: { ...meta, queue: undefined } }
            : {}),
          ...(this.rnd() < 0.2 ? { reply: `fuzz.reply.${this.int(9)}`, flags: PUB_FLAG_REQUEST } : {}),
        });
      }
    }
  }
  /** A valid frame mutated at the byte level, re-framed so that it is complete (never half a frame). */
  mutated(reqId: number, maxFrame: number): Uint8Array {
    const frame =
      this.rnd() < 0.5 ? this.structured(reqId) : encodeControl(FrameType.CMD, reqId, { op: 'queue.list' });
    let body = Buffer.from(frame.subarray(4));
    switch (this.int(7)) {
      case 0:
        for (let i = 1 + this.int(3); i > 0; i--) body[this.int(body.length)] = this.int(256);
        break;
      case 1:
        body[0] = this.int(256);
        break;
      case 2:
        body = body.subarray(0, Math.max(1, body.length - 1 - this.int(body.length)));
        break;
      case 3:
        body = Buffer.concat([
          body,
          Buffer.from(Array.from({ length: 1 + this.int(40) }, () => this.int(256))),
        ]);
        break;
      case 4:
        body = Buffer.from(Array.from({ length: 1 + this.int(80) }, () => this.int(256)));
        break;
      case 5:
        return Uint8Array.of(0, 0, 0, 0);
      default: {
        const out = Buffer.alloc(5);
        out.writeUInt32BE(maxFrame + 1 + this.int(1000));
        out[4] = FrameType.PUB;
        return out;
      }
    }
    const out = Buffer.alloc(4 + body.length);
    out.writeUInt32BE(body.length);
    body.copy(out, 4);
    return out;
  }
}

/** A raw connection that only counts what comes back (the fuzzer sends far too much to keep frames). */
class Counter {
  readonly answered = new Map<number, number>();
  errors0 = 0;
  pongs = 0;
  closed = false;
  lastFatal = '';
  private wake: (() => void) | undefined;
  private readonly parser = new FrameParser(64 * 1024 * 1024, (f: Frame) => {
    if (f.type === FrameType.WELCOME) this.answered.set(f.reqId, 1);
    else if (f.type === FrameType.OK || f.type === FrameType.ERR) {
      if (f.reqId === 0 && f.type === FrameType.ERR) {
        this.errors0++;
        this.lastFatal = String(f.body.code);
      } else this.answered.set(f.reqId, (this.answered.get(f.reqId) ?? 0) + 1);
    } else if (f.type === FrameType.PONG) this.pongs++;
    else if (f.type === FrameType.PING) this.socket.write(Uint8Array.of(0, 0, 0, 1, FrameType.PONG));
    this.wake?.();
  });

  private constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => this.parser.push(d));
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => {});
  }

  static async open(port: number): Promise<Counter> {
    const socket = netConnect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new Counter(socket);
    socket.write(encodeControl(FrameType.HELLO, 1, { version: 1 }));
    await c.until(() => c.answered.has(1) || c.closed, 5000);
    return c;
  }

  async until(done: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('fuzz: timed out waiting for the server');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
}

const welcomeAnswered = (c: Counter): boolean => c.answered.has(1) || c.closed;

describe('fuzzer: 100,000 mutated and random frames', () => {
  let ts: CapturedServer;
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
  before(async () => {
    ts = await startCaptured(
      { 'message_bus.max_payload_bytes': '4096', 'network.max_pending_bytes': '16777216' },
      { level: 'fatal' },
    );
  });
  after(() => ts.close());

  it(`stays up, answers every frame and keeps memory flat (seed ${seed})`, async () => {
    const started = Date.now();
    const cpuStart = process.cpuUsage();
    const maxFrame = 4096 + 64 * 1024;
    const round = async (
      workers: number,
      structured: number,
      mutated: number,
      seedOffset: number,
    ): Promise<void> => {
      await Promise.all(
        Array.from({ length: workers }, async (_, w) => {
          const fuzz = new Fuzz(prng(seed + seedOffset + w));
          // Structured frames: pipelined in batches, each reqId must be answered exactly once.
          const c = await Counter.open(ts.port);
          assert.ok(welcomeAnswered(c));
          let reqId = 2;
          for (let done = 0; done < structured;) {
            const batch = Math.min(500, structured - done);
            const first = reqId;
            const chunks: Uint8Array[] = [];
            for (let i = 0; i < batch; i++) chunks.push(fuzz.structured(reqId++));
            c.socket.write(Buffer.concat(chunks));
            await c.until(() => c.closed || c.answered.size >= reqId - 1, 20_000);
            assert.equal(
              c.closed,
              false,
              `a structured frame closed the connection (${c.lastFatal}); seed ${seed}`,
            );
            for (let id = first; id < reqId; id++)
              assert.equal(c.answered.get(id), 1, `reqId ${id} answered once`);
            done += batch;
          }
          c.socket.destroy();
          // Byte-level mutations: each is followed by a PING; the answer is a PONG (the connection
          // survived) or an ERR then close (a fatal protocol error). Never silence.
          let conn = await Counter.open(ts.port);
          for (let i = 0; i < mutated; i++) {
            if (conn.closed) conn = await Counter.open(ts.port);
            const pongs = conn.pongs;
            const fatal = conn.errors0;
            conn.socket.write(Buffer.concat([fuzz.mutated(2 + i, maxFrame), encodePing()]));
            await conn.until(() => conn.pongs > pongs || conn.closed, 10_000);
            if (conn.closed)
              assert.ok(conn.errors0 > fatal, `closed without an ERR frame; seed ${seed} case ${i}`);
          }
          conn.socket.destroy();
        }),
      );
    };
    // Warm-up (JIT, pools, caches), then the measured rounds: 100,000 cases in all.
    await round(4, 2_000, 500, 0);
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    await round(8, 8_000, 1_500, 100);
    await round(8, 1_500, 250, 200);
    await new Promise((r) => setTimeout(r, 200));
    gc();
    const heapAfter = process.memoryUsage().heapUsed;
    const grown = (heapAfter - heapBefore) / 1024 / 1024;
    console.log(
      `fuzz: 100,000 cases in ${Date.now() - started} ms (${Math.round(cpuMs(cpuStart))} ms CPU); heap ${(heapBefore / 1048576).toFixed(1)} → ${(heapAfter / 1048576).toFixed(1)} MiB`,
    );
    assert.ok(grown < 32, `heap grew by ${grown.toFixed(1)} MiB`);
    // Every fuzz connection is gone: no session leaked.
    await new Promise((r) => setTimeout(r, 100));
    const active = ts.server.metrics.activeConnections();
    assert.equal(
      Object.values(active).reduce((a, b) => a + b, 0),
      0,
      JSON.stringify(active),
    );
    // And the server still serves.
    const a = await RawClient.ready(ts.port);
    a.write(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: 'alive.after.fuzz' }));
    await a.next((f) => f.type === FrameType.OK);
    a.write(encodePub(0, 'alive.after.fuzz', new Uint8Array(3)));
    await a.next((f) => f.type === FrameType.MSG);
    a.close();
    // CPU time, not wall time: on a shared machine the wall clock measures the neighbours too.
    assert.ok(cpuMs(cpuStart) < 60_000, 'the battery runs in well under a minute of CPU');
  });
});

describe('oversized input, slow clients and floods', () => {
  let ts: CapturedServer;
  before(async () => {
    ts = await startCaptured({
      'message_bus.max_payload_bytes': '1024',
      'network.connection_timeout_ms': '500',
      'network.max_connections': '20',
    });
  });
  after(() => ts.close());

  it('oversized HTTP headers get 431, oversized bodies 413, oversized frames FRAME_TOO_LARGE', async () => {
    const big = await fetch(`http://127.0.0.1:${ts.port}/v1/queues`, {
      headers: { 'x-big': 'x'.repeat(64 * 1024) },
    }).catch(() => undefined);
    assert.ok(big === undefined || big.status === 431, `status ${big?.status}`);
    const body = await fetch(`http://127.0.0.1:${ts.port}/v1/publish`, {
      method: 'POST',
      body: JSON.stringify({ topic: 'a.b', payload: 'x'.repeat(200_000) }),
    });
    assert.equal(body.status, 413);
    const c = await RawClient.ready(ts.port);
    c.write(encodePub(3, 'big.one', new Uint8Array(4096)));
    assert.equal((await c.error()).code, 'PAYLOAD_TOO_LARGE');
    c.write(Uint8Array.of(0x00, 0x10, 0x00, 0x00, FrameType.PUB));
    assert.equal((await c.error()).code, 'FRAME_TOO_LARGE');
    await c.waitClosed();
  });

  it('slow-loris on the native handshake: cut at connection_timeout_ms', async () => {
    const c = await RawClient.connect(ts.port);
    const hello = encodeControl(FrameType.HELLO, 1, { version: 1 });
    const started = Date.now();
    let i = 0;
    const drip = setInterval(() => {
      if (i < hello.length && !c.closed) c.write(hello.subarray(i, ++i));
    }, 100);
    await c.waitClosed(5000);
    clearInterval(drip);
    assert.ok(Date.now() - started < 2000);
    const silent = await RawClient.connect(ts.port);
    await silent.waitClosed(3000);
  });

  it('slow-loris on HTTP headers: cut within a couple of seconds', async () => {
    const s = netConnect(ts.port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    let closed = false;
    s.on('close', () => (closed = true));
    s.on('error', () => {});
    s.write('GET /v1/queues HTTP/1.1\r\nHost: x\r\n');
    const started = Date.now();
    const drip = setInterval(() => !closed && s.write('X-a: b\r\n'), 200);
    while (!closed && Date.now() - started < 8000) await new Promise((r) => setTimeout(r, 50));
    clearInterval(drip);
    assert.ok(closed, 'a client that never finishes its headers is cut');
    assert.ok(Date.now() - started < 4000, `cut after ${Date.now() - started} ms`);
  });

  it('a flood beyond max_connections is refused with TOO_MANY_CONNECTIONS, then service resumes', async () => {
    const clients = await Promise.all(Array.from({ length: 60 }, () => RawClient.connect(ts.port)));
    for (const c of clients) c.write(encodeControl(FrameType.HELLO, 1, { version: 1 }));
    let welcomed = 0;
    let refused = 0;
    await Promise.all(
      clients.map(async (c) => {
        const f = await c.next((x) => x.type === FrameType.WELCOME || x.type === FrameType.ERR);
        if (f.type === FrameType.WELCOME) welcomed++;
        else if (f.type === FrameType.ERR && f.body.code === 'TOO_MANY_CONNECTIONS') refused++;
      }),
    );
    assert.ok(welcomed <= 20, `${welcomed} admitted`);
    assert.equal(welcomed + refused, 60);
    const http = await fetch(`http://127.0.0.1:${ts.port}/v1/queues`).catch(() => undefined);
    assert.ok(http === undefined || http.status === 503);
    for (const c of clients) c.close();
    await new Promise((r) => setTimeout(r, 200));
    const after = await RawClient.ready(ts.port);
    after.close();
  });
});

describe('secrets never leak', () => {
  it('not in logs (trace level), error bodies, the audit log or the printed config', async () => {
    const dir = tempDir('secrets');
    const keys = rsaKeys(dir);
    const JWT_SECRET = `jwt-${'s3cr3t'.repeat(8)}`;
    const API_KEY = `api-${'k3y'.repeat(12)}`;
    const DB_PASSWORD = 'db-pa55word-never-shown';
    const env = { JWT_SECRET, API_KEY, DB_PASSWORD };
    const ts = await startCaptured(
      {
        'security.enable_auth': 'true',
        'security.jwt_secret': '${JWT_SECRET}',
        'security.api_key': '${API_KEY}',
        'database.password': '${DB_PASSWORD}',
        'audit.enabled': 'true',
        'audit.log_file': '',
      },
      { level: 'trace', env },
    );
    const bodies: string[] = [];
    try {
      const url = `http://127.0.0.1:${ts.port}`;
      const calls: Array<[string, RequestInit]> = [
        [
          '/v1/publish',
          { method: 'POST', body: '{"topic":"a.b"}', headers: { authorization: `Bearer ${API_KEY}` } },
        ],
        [
          '/v1/publish',
          { method: 'POST', body: '{"topic":"a.b"}', headers: { authorization: `Bearer ${JWT_SECRET}` } },
        ],
        [
          '/v1/auth/token',
          { method: 'POST', body: '{"subject":"x"}', headers: { authorization: `Bearer ${JWT_SECRET}` } },
        ],
        [
          '/v1/auth/token',
          { method: 'POST', body: '{"subject":"x"}', headers: { authorization: `Bearer ${API_KEY}` } },
        ],
        ['/v1/auth/token', { method: 'POST', body: JSON.stringify({ refresh_token: JWT_SECRET }) }],
      ];
      for (const [path, init] of calls) bodies.push(await (await fetch(`${url}${path}`, init)).text());
      for (const h of [
        { authorization: `Bearer ${JWT_SECRET}` } as Record<string, string>,
        { 'x-api-key': API_KEY.slice(0, -1) },
        { 'x-api-key': API_KEY },
      ]) {
        bodies.push(await (await fetch(`http://127.0.0.1:${ts.adminPort}/v1/x`, { headers: h })).text());
      }
      for (const token of [
        JWT_SECRET,
        API_KEY,
        await hsToken({ sub: 'x' }, { secret: 'wrong-wrong-wrong-wrong-wrong-wrong' }),
        await hsToken({ sub: 'ok' }, { secret: JWT_SECRET }),
      ]) {
        const c = await RawClient.connect(ts.port);
        c.write(encodeControl(FrameType.HELLO, 1, { version: 1, token }));
        const f = await c.next((x) => x.type === FrameType.WELCOME || x.type === FrameType.ERR);
        bodies.push(JSON.stringify(f));
        c.close();
      }
    } finally {
      await ts.close();
    }
    const logs = ts.logs();
    assert.ok(logs.length > 1000, 'trace logging produced output');
    for (const secret of [JWT_SECRET, API_KEY, DB_PASSWORD, keys.privatePem.split('\n')[1]!]) {
      assert.ok(!logs.includes(secret), `a secret is in the server log`);
      for (const b of bodies) assert.ok(!b.includes(secret), `a secret is in an error body: ${b}`);
    }
    const { config } = loadConfig({
      env,
      overrides: {
        'security.jwt_secret': '${JWT_SECRET}',
        'security.api_key': '${API_KEY}',
        'database.password': '${DB_PASSWORD}',
      },
    });
    const printed = formatConfig(config);
    for (const secret of [JWT_SECRET, API_KEY, DB_PASSWORD]) assert.ok(!printed.includes(secret));
    const child = spawnSync(
      process.execPath,
      [new URL('../../bin/messaging_server.js', import.meta.url).pathname, '--print-config'],
      {
        env: { PATH: process.env.PATH ?? '', ...env },
        encoding: 'utf8',
      },
    );
    assert.equal(child.status, 0, child.stderr);
    assert.match(child.stdout, /jwt_secret = \*+/);
    for (const secret of [JWT_SECRET, API_KEY, DB_PASSWORD])
      assert.ok(!child.stdout.includes(secret) && !child.stderr.includes(secret));
  });
});
