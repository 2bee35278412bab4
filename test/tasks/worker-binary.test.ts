/**
 * The `messaging_worker` binary as a real child process: handlers from a module, the CPU pool in
 * worker_threads (a timed-out CPU-bound handler is stopped), separate pools, graceful shutdown on SIGTERM
 * (finish, or hand back past the deadline; exit 0), and `kill -9` mid-task (another worker runs the task
 * once the dead worker's lock runs out).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setup, uniqueQueue, until, type Env } from './helpers.ts';
import { connect } from '../../src/client/index.ts';
import { hsToken, SECRET, startCaptured } from '../security/helpers.ts';

const BIN = new URL('../../bin/messaging_worker.js', import.meta.url).pathname;
const HANDLERS = new URL('./fixtures/handlers.js', import.meta.url).pathname;

interface Child {
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
  ready: Promise<void>;
  id(): string;
}

const children: Child[] = [];

function startWorker(url: string, args: string[], env: Record<string, string> = {}): Child {
  const child = spawn(process.execPath, [BIN, '--tasks', HANDLERS, ...args], {
    env: { PATH: process.env.PATH ?? '', MESSAGING_URL: url, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  const onData = (d: Buffer): void => {
    out += d.toString();
    if (out.includes('messaging_worker ready')) readyResolve();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code, signal) => {
      if (signal) out += `\n[killed by ${signal}]`;
      resolve(code);
    }),
  );
  const c: Child = {
    child,
    output: () => out,
    exited,
    ready: Promise.race([
      ready,
      exited.then((code) => {
        throw new Error(`messaging_worker exited (${code}) before it was ready:\n${out}`);
      }),
    ]),
    id: () => /"worker":"([^"]+)"/.exec(out)?.[1] ?? '',
  };
  children.push(c);
  return c;
}

describe('messaging_worker binary', () => {
  let env: Env;
  let dir: string;
  before(async () => {
    env = await setup();
    dir = mkdtempSync(join(tmpdir(), 'worker-bin-'));
  });
  after(async () => {
    for (const c of children)
      if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await Promise.all(children.map((c) => c.exited));
    await env.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs the handlers of a module; CPU handlers run in worker threads and are stopped on timeout', async () => {
    const queue = uniqueQueue('bin');
    const w = startWorker(env.server.url, [
      '--queues',
      `${queue},other`,
      '--concurrency',
      '2',
      '--pool',
      'cpu=1',
    ]);
    await w.ready;
    // bulk declares the batch pool; without --config it takes the realtime size.
    assert.match(w.output(), /"pools":\{"realtime":2,"batch":2,"cpu":1\}/);
    const t = env.conn.tasks;
    assert.deepEqual(await (await t.submit('echo', { hello: 'world' }, { queue })).wait(10_000), {
      hello: 'world',
    });
    const main = (await (await t.submit('whoami', null, { queue })).wait(10_000)) as { threadId: number };
    assert.equal(main.threadId, 0, 'plain handlers run on the main thread');
    const cpu = (await (await t.submit('crunch', { n: 1000 }, { queue })).wait(20_000)) as {
      threadId: number;
    };
    assert.ok(cpu.threadId > 0, 'cpu handlers run in a worker thread');
    const spin = await t.waitInfo(
      (await t.submit('spin', null, { queue, timeoutMs: 300, maxRetries: 0 })).id,
      20_000,
    );
    assert.equal(spin.state, 'failed');
    assert.equal(spin.error?.name, 'TimeoutError');
    // The stuck thread was replaced: the pool still works.
    const again = (await (await t.submit('crunch', { n: 10 }, { queue })).wait(20_000)) as {
      threadId: number;
    };
    assert.ok(again.threadId > 0);
    w.child.kill('SIGTERM');
    assert.equal(await w.exited, 0, w.output());
  });

  it('sizes its pools from WORKER_THREADS, or from [thread_pool] with --config', async () => {
    const a = startWorker(env.server.url, ['--queues', uniqueQueue('env')], { WORKER_THREADS: '3' });
    await a.ready;
    assert.match(a.output(), /"pools":\{"realtime":3,"batch":3,"cpu":\d+\}/);
    a.child.kill('SIGTERM');
    assert.equal(await a.exited, 0, a.output());
    const ini = join(dir, 'worker.ini');
    writeFileSync(ini, '[thread_pool]\nrealtime_threads = 5\nbatch_threads = 2\nbackground_threads = 1\n');
    const b = startWorker(env.server.url, [
      '--queues',
      uniqueQueue('cfg'),
      '--config',
      ini,
      '--pool',
      'cpu=1',
    ]);
    await b.ready;
    assert.match(b.output(), /"pools":\{"realtime":5,"batch":2,"cpu":1\}/);
    b.child.kill('SIGTERM');
    assert.equal(await b.exited, 0, b.output());
  });

  it('keeps pools apart: a busy batch pool does not hold up realtime tasks', async () => {
    const queue = uniqueQueue('pools');
    const w = startWorker(env.server.url, [
      '--queues',
      queue,
      '--concurrency',
      '2',
      '--pool',
      'batch=1',
      '--prefetch',
      '0',
    ]);
    await w.ready;
    const t = env.conn.tasks;
    const bulk = await Promise.all([1, 2].map(() => t.submit('bulk', { ms: 1500 }, { queue })));
    await until(
      async () => (await bulk[0]!.get()).state === 'running',
      10_000,
      'the first bulk task to start',
    );
    const quick = await t.submit('echo', 'fast', { queue });
    assert.equal(await quick.wait(10_000), 'fast');
    const q = await quick.get();
    const b2 = await bulk[1]!.get();
    assert.ok(
      b2.state === 'queued' || q.finished_at! < (b2.started_at ?? Infinity),
      'realtime ran while batch was busy',
    );
    assert.deepEqual(await Promise.all(bulk.map((h) => h.wait(20_000))), ['bulk done', 'bulk done']);
    w.child.kill('SIGTERM');
    assert.equal(await w.exited, 0, w.output());
  });

  it('SIGTERM: running tasks finish, then the worker exits 0', async () => {
    const queue = uniqueQueue('term');
    const w = startWorker(env.server.url, ['--queues', queue, '--concurrency', '1']);
    await w.ready;
    const h = await env.conn.tasks.submit('slow', { ms: 700 }, { queue });
    await until(async () => (await h.get()).state === 'running', 10_000, 'the task to start');
    w.child.kill('SIGTERM');
    assert.equal(await w.exited, 0, w.output());
    const t = await env.conn.tasks.get(h.id);
    assert.equal(t.state, 'succeeded');
    assert.match(w.output(), /shutdown complete.*"finished":1,"handedBack":0/);
  });

  it('SIGTERM past the deadline: the unfinished task is handed back, queued again, its attempt not counted', async () => {
    const queue = uniqueQueue('handback');
    const w = startWorker(env.server.url, [
      '--queues',
      queue,
      '--concurrency',
      '1',
      '--shutdown-timeout',
      '300',
    ]);
    await w.ready;
    const h = await env.conn.tasks.submit('slow', { ms: 60_000 }, { queue });
    await until(async () => (await h.get()).state === 'running', 10_000, 'the task to start');
    w.child.kill('SIGTERM');
    assert.equal(await w.exited, 0, w.output());
    const t = await env.conn.tasks.get(h.id);
    assert.deepEqual([t.state, t.attempts, t.worker], ['queued', 0, undefined]);
    assert.match(w.output(), /"handedBack":1/);
    await env.conn.tasks.cancel(h.id);
  });

  it('kill -9 mid-task: another worker runs the task after the lock expires', async () => {
    const queue = uniqueQueue('kill9');
    const marker = join(dir, 'started');
    const a = startWorker(env.server.url, ['--queues', queue, '--concurrency', '1', '--lock-ms', '1000']);
    await a.ready;
    const h = await env.conn.tasks.submit(
      'slow',
      { ms: 60_000, marker, quickOnRetry: true },
      { queue, retryDelayMs: 50 },
    );
    await until(() => existsSync(marker), 10_000, 'worker A to start the task');
    const running = await h.get();
    assert.equal(running.worker, a.id());
    a.child.kill('SIGKILL');
    await a.exited;
    const b = startWorker(env.server.url, ['--queues', queue, '--concurrency', '1', '--lock-ms', '1000']);
    await b.ready;
    const result = (await h.wait(20_000)) as { pid: number; retried: boolean };
    assert.deepEqual(result, { pid: b.child.pid, retried: true }, 'worker B ran it again');
    const t = await h.get();
    assert.equal(t.attempts, 2);
    b.child.kill('SIGTERM');
    assert.equal(await b.exited, 0, b.output());
  });

  it('--token-file: authenticates with the token in a file, read again on every connect', async () => {
    const ts = await startCaptured({ 'security.enable_auth': 'true', 'security.jwt_secret': SECRET });
    const url = `tcp://127.0.0.1:${ts.port}`;
    const admin = await connect({ servers: url, token: await hsToken({ sub: 'admin' }), reconnect: false });
    try {
      const queue = uniqueQueue('tok');
      const tokenFile = join(dir, 'token');
      writeFileSync(tokenFile, `${await hsToken({ sub: 'worker' })}\n`, { mode: 0o600 });
      const w = startWorker(url, ['--queues', queue, '--concurrency', '1'], {
        MESSAGING_TOKEN_FILE: tokenFile,
      });
      await w.ready;
      const h = await admin.tasks.submit('echo', { via: 'token file' }, { queue });
      assert.deepEqual(await h.wait(10_000), { via: 'token file' });
      w.child.kill('SIGTERM');
      assert.equal(await w.exited, 0, w.output());
      // A bad token in the file is refused with the server's reason, and the worker stops.
      writeFileSync(tokenFile, 'not-a-jwt');
      const bad = startWorker(url, ['--queues', queue], { MESSAGING_TOKEN_FILE: tokenFile });
      bad.ready.catch(() => undefined); // it never gets ready: that is the point
      assert.notEqual(await bad.exited, 0);
      assert.match(bad.output(), /AUTH_FAILED|token/i);
    } finally {
      await admin.close();
      await ts.close();
    }
  });
});
