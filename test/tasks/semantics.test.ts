/**
 * Task semantics, one by one, against a real server with in-process workers: retries and backoff,
 * timeouts, expiry, ETAs, priorities, cancellation (queued and running), a missing handler, and the
 * errors that steer a task. Time bounds are lower bounds only (nothing runs early); upper bounds are
 * generous waits.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TaskContext } from '../../src/worker/index.ts';
import { RetryLaterError, UnrecoverableError } from '../../src/worker/index.ts';
import { collectEvents, setup, sleep, uniqueQueue, until, type Env } from './helpers.ts';

describe('task semantics', () => {
  let env: Env;
  before(async () => {
    env = await setup();
  });
  after(async () => {
    await env.close();
  });

  it('max_retries = N gives exactly N+1 attempts, with growing gaps', async () => {
    const queue = uniqueQueue('retry');
    const starts: number[] = [];
    const events = await collectEvents(env.conn, 'tasks.task.retrying');
    await env.worker(
      {
        flaky: () => {
          starts.push(Date.now());
          throw new Error(`boom ${starts.length}`);
        },
      },
      { queues: [queue] },
    );
    const h = await env.conn.tasks.submit('flaky', null, {
      queue,
      maxRetries: 3,
      retryDelayMs: 100,
      retryBackoff: 2,
      retryJitter: 0,
    });
    const t = await env.conn.tasks.waitInfo(h.id, 20_000);
    assert.equal(t.state, 'failed');
    assert.equal(t.attempts, 4);
    assert.equal(starts.length, 4);
    assert.equal(t.error?.message, 'boom 4');
    assert.ok(t.error?.stack?.includes('boom 4'), 'the error keeps its stack');
    // The delays chosen grow (100, 200, 400 ms) and no attempt started before its delay passed.
    await until(() => events.length === 3, 5000, 'three retrying events');
    const delays = events.map((e) => Number(e['eta']) - Number(e['at']));
    assert.deepEqual(delays, [100, 200, 400]);
    const gaps = starts.slice(1).map((s, i) => s - starts[i]!);
    gaps.forEach((g, i) =>
      assert.ok(g >= delays[i]! - 5, `gap ${i} of ${g} ms is shorter than ${delays[i]} ms`),
    );
  });

  it('a timed-out attempt counts as a failed attempt, and its handler is aborted', async () => {
    const queue = uniqueQueue('timeout');
    const reasons: string[] = [];
    await env.worker(
      {
        slow: (_a: unknown, ctx: TaskContext) =>
          new Promise((_resolve, reject) => {
            ctx.signal.addEventListener('abort', () => {
              reasons.push((ctx.signal.reason as Error).name);
              reject(ctx.signal.reason as Error);
            });
          }),
      },
      { queues: [queue] },
    );
    const h = await env.conn.tasks.submit('slow', null, {
      queue,
      timeoutMs: 150,
      maxRetries: 1,
      retryDelayMs: 10,
    });
    const t = await env.conn.tasks.waitInfo(h.id, 20_000);
    assert.equal(t.state, 'failed');
    assert.equal(t.attempts, 2);
    assert.equal(t.error?.name, 'TimeoutError');
    assert.match(t.error?.message ?? '', /timeout of 150 ms/);
    assert.deepEqual(reasons, ['TimeoutError', 'TimeoutError']);
  });

  it('an expired task never runs and ends expired', async () => {
    const queue = uniqueQueue('expire');
    let ran = 0;
    // Nobody serves the queue while the task is queued; it expires there.
    const queued = await env.conn.tasks.submit('never', null, { queue, expiresInMs: 200 });
    // This one is due only after its expiry.
    const late = await env.conn.tasks.submit('never', null, { queue, countdownMs: 5000, expiresInMs: 300 });
    const a = await env.conn.tasks.waitInfo(queued.id, 10_000);
    const b = await env.conn.tasks.waitInfo(late.id, 10_000);
    assert.equal(a.state, 'expired');
    assert.equal(b.state, 'expired');
    await env.worker({ never: () => void ran++, sentinel: () => 'ok' }, { queues: [queue] });
    const s = await env.conn.tasks.submit('sentinel', null, { queue });
    assert.equal(await s.wait(10_000), 'ok');
    assert.equal(ran, 0);
    assert.equal(a.attempts, 0);
    assert.ok(b.finished_at! < b.created_at + 5000, 'expired at its expiry, not at its ETA');
  });

  it('a task with an ETA is not run early', async () => {
    const queue = uniqueQueue('eta');
    const seen: number[] = [];
    await env.worker({ at: () => void seen.push(Date.now()) }, { queues: [queue] });
    const h = await env.conn.tasks.submitLater('at', null, 400, { queue });
    assert.equal(h.info.state, 'pending');
    const eta = h.info.eta!;
    const t = await env.conn.tasks.waitInfo(h.id, 10_000);
    assert.equal(t.state, 'succeeded');
    assert.ok(seen[0]! >= eta, `ran ${eta - seen[0]!} ms early`);
    assert.ok(t.started_at! >= eta);
    const at = new Date(Date.now() + 300);
    const h2 = await env.conn.tasks.submitLater('at', null, at, { queue });
    await h2.wait(10_000);
    assert.ok(seen[1]! >= at.getTime());
  });

  it('higher priorities are served first, FIFO within a priority', async () => {
    const queue = uniqueQueue('prio');
    const order: string[] = [];
    const plan: [string, number][] = [
      ['low-1', 1],
      ['normal-1', 2],
      ['critical-1', 5],
      ['low-2', 1],
      ['high-1', 3],
      ['critical-2', 5],
      ['normal-2', 2],
    ];
    const handles = [];
    for (const [label, priority] of plan)
      handles.push(await env.conn.tasks.submit('p', label, { queue, priority }));
    await env.worker(
      { p: (label: string) => void order.push(label) },
      { queues: [queue], concurrency: 1, prefetch: 0 },
    );
    await Promise.all(handles.map((h) => h.wait(10_000)));
    assert.deepEqual(order, ['critical-1', 'critical-2', 'high-1', 'normal-1', 'normal-2', 'low-1', 'low-2']);
  });

  it('cancelling a queued task prevents it from running', async () => {
    const queue = uniqueQueue('cancelq');
    let ran = 0;
    const h = await env.conn.tasks.submit('c', null, { queue });
    const cancelled = await h.cancel();
    assert.equal(cancelled.state, 'cancelled');
    await assert.rejects(h.cancel(), { code: 'TASK_CONFLICT' });
    await assert.rejects(h.wait(1000), { code: 'TASK_CANCELLED', name: 'TaskCancelledError' });
    await env.worker({ c: () => void ran++, sentinel: () => 'done' }, { queues: [queue] });
    assert.equal(await (await env.conn.tasks.submit('sentinel', null, { queue })).wait(10_000), 'done');
    assert.equal(ran, 0);
  });

  it('cancelling a running task aborts its handler through ctx.signal', async () => {
    const queue = uniqueQueue('cancelr');
    let reason: unknown;
    let started = false;
    await env.worker(
      {
        long: (_a: unknown, ctx: TaskContext) =>
          new Promise((_resolve, reject) => {
            started = true;
            ctx.signal.addEventListener('abort', () => {
              reason = ctx.signal.reason;
              reject(ctx.signal.reason as Error);
            });
          }),
      },
      { queues: [queue] },
    );
    const h = await env.conn.tasks.submit('long', null, { queue });
    await until(() => started, 10_000, 'the handler to start');
    const t = await h.cancel();
    assert.equal(t.state, 'cancelled');
    await until(() => reason !== undefined, 10_000, 'the abort to reach the handler');
    assert.equal((reason as Error).name, 'TaskCancelled');
    const final = await env.conn.tasks.get(h.id);
    assert.equal(final.state, 'cancelled');
    assert.equal(final.attempts, 1);
  });

  it('a task without a handler fails clearly, without retries', async () => {
    const queue = uniqueQueue('missing');
    await env.worker({ known: () => 1 }, { queues: [queue] });
    const h = await env.conn.tasks.submit('unknown.task', null, { queue, maxRetries: 5 });
    const t = await env.conn.tasks.waitInfo(h.id, 10_000);
    assert.equal(t.state, 'failed');
    assert.equal(t.attempts, 1);
    assert.equal(t.error?.name, 'HandlerNotFoundError');
    assert.match(t.error?.message ?? '', /no handler for task "unknown\.task".*it has: known/);
    await assert.rejects(h.wait(1000), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'TASK_FAILED');
      assert.match(err.message, /HandlerNotFoundError/);
      return true;
    });
  });

  it('UnrecoverableError fails at once; RetryLaterError retries after exactly its delay', async () => {
    const queue = uniqueQueue('steer');
    const later: number[] = [];
    await env.worker(
      {
        bad: () => {
          throw new UnrecoverableError('bad input');
        },
        // Recognised by name as well: a handlers module need not import our classes.
        bad2: () => {
          throw Object.assign(new Error('also bad'), { name: 'UnrecoverableError' });
        },
        later: () => {
          later.push(Date.now());
          if (later.length === 1) throw new RetryLaterError(300);
          return 'second time lucky';
        },
      },
      { queues: [queue] },
    );
    for (const name of ['bad', 'bad2']) {
      const t = await env.conn.tasks.waitInfo(
        (await env.conn.tasks.submit(name, null, { queue, maxRetries: 5 })).id,
        10_000,
      );
      assert.deepEqual([t.state, t.attempts, t.error?.name], ['failed', 1, 'UnrecoverableError']);
    }
    const h = await env.conn.tasks.submit('later', null, { queue, retryDelayMs: 60_000 });
    assert.equal(await h.wait(10_000), 'second time lucky');
    assert.ok(later[1]! - later[0]! >= 295, `retried after ${later[1]! - later[0]!} ms`);
  });

  it('progress is visible while running; results expire after their TTL', async () => {
    const queue = uniqueQueue('progress');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    await env.worker(
      {
        resize: async (_a: unknown, ctx: TaskContext) => {
          ctx.progress(0.4, 'resizing');
          await gate;
          return 'done';
        },
      },
      { queues: [queue] },
    );
    const h = await env.conn.tasks.submit('resize', null, { queue, resultTtlMs: 300 });
    const running = await until(
      async () => {
        const t = await h.get();
        return t.progress?.value === 0.4 ? t : undefined;
      },
      10_000,
      'progress to show',
    );
    assert.equal(running.state, 'running');
    assert.equal(running.progress?.message, 'resizing');
    release();
    assert.equal(await h.wait(10_000), 'done');
    await until(
      () =>
        h.get().then(
          () => false,
          (err: { code?: string }) => err.code === 'NOT_FOUND',
        ),
      10_000,
      'the result to expire',
    );
    await sleep(0);
  });

  it('submits of one tick travel together, each with its own outcome; drain sends them first', async () => {
    const queue = uniqueQueue('batch');
    const c = await env.connection();
    const results = await Promise.allSettled([
      c.tasks.submit('ok', 1, { queue }),
      c.tasks.submit('ok', 2, { queue, maxRetries: -1 }),
      c.tasks.submit('ok', 3, { queue }),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.equal((results[1] as PromiseRejectedResult).reason.code, 'BAD_REQUEST');
    const last = c.tasks.submit('ok', 4, { queue });
    await c.drain();
    const id = (await last).id;
    assert.deepEqual((await env.conn.tasks.get(id)).args, 4);
  });

  it('an idempotency key returns the first task instead of a second one', async () => {
    const queue = uniqueQueue('idem');
    const a = await env.conn.tasks.submit('x', 1, { queue, idempotencyKey: 'order-42' });
    const b = await env.conn.tasks.submit('x', 2, { queue, idempotencyKey: 'order-42' });
    assert.equal(b.id, a.id);
    assert.equal(b.info.created, false);
    assert.equal((await b.get()).args, 1);
  });
});
