/**
 * Results and monitoring: events on the bus (names and payloads), stats per queue and per task name with
 * workers and their heartbeats, per-task metrics on /metrics, and the REST front door.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TaskContext } from '../../src/worker/index.ts';
import { collectEvents, setup, uniqueQueue, until, type Env } from './helpers.ts';

describe('task monitoring', () => {
  let env: Env;
  before(async () => {
    env = await setup();
  });
  after(async () => {
    await env.close();
  });

  it('publishes task and worker events on the bus', async () => {
    const queue = uniqueQueue('events');
    const events = await collectEvents(env.conn);
    const worker = await env.worker(
      {
        job: async (_a: unknown, ctx: TaskContext) => {
          ctx.progress(0.5, 'half way');
          await new Promise((r) => setTimeout(r, 150));
          return { ok: true };
        },
        fail: () => {
          throw new Error('nope');
        },
      },
      { queues: [queue] },
    );
    const h = await env.conn.tasks.submit('job', { n: 1 }, { queue });
    await h.wait(10_000);
    const f = await env.conn.tasks.submit('fail', null, { queue, maxRetries: 1, retryDelayMs: 10 });
    await env.conn.tasks.waitInfo(f.id, 10_000);
    await worker.close();
    await until(() => events.some((e) => e['event'] === 'worker.offline'), 10_000, 'worker.offline');
    const of = (id: string) => events.filter((e) => e['id'] === id).map((e) => e['event']);
    assert.deepEqual(of(h.id), ['task.queued', 'task.started', 'task.progress', 'task.succeeded']);
    assert.deepEqual(of(f.id), [
      'task.queued',
      'task.started',
      'task.retrying',
      'task.queued',
      'task.started',
      'task.failed',
    ]);
    const done = events.find((e) => e['id'] === h.id && e['event'] === 'task.succeeded')!;
    assert.deepEqual(done['result'], { ok: true });
    assert.equal(done['name'], 'job');
    assert.equal(done['queue'], queue);
    assert.equal(done['attempt'], 1);
    const progress = events.find((e) => e['event'] === 'task.progress')!;
    assert.deepEqual(
      {
        value: (progress['progress'] as { value: number }).value,
        message: (progress['progress'] as { message: string }).message,
      },
      { value: 0.5, message: 'half way' },
    );
    const failed = events.find((e) => e['id'] === f.id && e['event'] === 'task.failed')!;
    assert.equal((failed['error'] as { message: string }).message, 'nope');
    const online = events.find((e) => e['event'] === 'worker.online' && e['worker'] === worker.id)!;
    assert.deepEqual(online['queues'], [queue]);
    assert.deepEqual(online['pools'], ['realtime']);
  });

  it('reports stats per queue and per task name, with workers and their last heartbeat', async () => {
    const queue = uniqueQueue('stats');
    const w = await env.worker({ s: () => 1 }, { queues: [queue], lockMs: 3000 });
    const hs = await Promise.all([1, 2, 3].map(() => env.conn.tasks.submit('s', null, { queue })));
    await Promise.all(hs.map((h) => h.wait(10_000)));
    await env.conn.tasks.submit('s', null, { queue: `${queue}-idle` });
    const stats = (await env.conn.tasks.stats()) as {
      queues: Record<
        string,
        { counts: Record<string, number>; throughput_per_s: number; wait: { count: number } }
      >;
      names: Record<string, { counts: Record<string, number> }>;
      workers: { worker: string; queues: string[]; last_heartbeat: number }[];
    };
    assert.equal(stats.queues[queue]!.counts['succeeded'], 3);
    assert.equal(stats.queues[`${queue}-idle`]!.counts['queued'], 1);
    assert.ok(stats.queues[queue]!.throughput_per_s > 0);
    assert.equal(stats.queues[queue]!.wait.count, 3);
    assert.ok(stats.names['s']!.counts['succeeded']! >= 3);
    const me = stats.workers.find((x) => x.worker === w.id)!;
    assert.deepEqual(me.queues, [queue]);
    assert.ok(Date.now() - me.last_heartbeat < 60_000);
  });

  it('counts processed and failed tasks by task name on /metrics', async () => {
    const queue = uniqueQueue('metrics');
    await env.worker(
      { 'metric.ok': () => 1, 'metric.bad': () => Promise.reject(new Error('x')) },
      { queues: [queue] },
    );
    await (await env.conn.tasks.submit('metric.ok', null, { queue })).wait(10_000);
    await env.conn.tasks.waitInfo(
      (await env.conn.tasks.submit('metric.bad', null, { queue, maxRetries: 0 })).id,
      10_000,
    );
    const text = await until(
      async () => {
        const body = await (await fetch(`${env.server.adminUrl}/metrics`)).text();
        return body.includes('queue="metric.bad"') ? body : undefined;
      },
      10_000,
      'metrics to show the tasks',
    );
    assert.match(text, /messaging_messages_processed_total\{kind="task",queue="metric\.ok"\} 1/);
    assert.match(text, /messaging_messages_failed_total\{kind="task",queue="metric\.bad"\} 1/);
    assert.match(
      text,
      /messaging_message_processing_duration_seconds_count\{kind="task",queue="metric\.ok"\} 1/,
    );
  });

  it('REST: POST /v1/tasks, GET /v1/tasks/{id}, DELETE /v1/tasks/{id}', async () => {
    const queue = uniqueQueue('rest');
    const base = env.server.httpUrl;
    const res = await fetch(`${base}/v1/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'rest.job',
        args: { a: 1 },
        queue,
        priority: 'high',
        countdown_ms: 60_000,
      }),
    });
    assert.equal(res.status, 201);
    const created = (await res.json()) as { id: string; state: string; priority: number };
    assert.deepEqual([created.state, created.priority], ['pending', 3]);
    const got = (await (await fetch(`${base}/v1/tasks/${created.id}`)).json()) as { args: unknown };
    assert.deepEqual(got.args, { a: 1 });
    const del = await fetch(`${base}/v1/tasks/${created.id}`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    assert.equal(((await del.json()) as { state: string }).state, 'cancelled');
    const again = await fetch(`${base}/v1/tasks/${created.id}`, { method: 'DELETE' });
    assert.equal(again.status, 409);
    assert.equal(((await again.json()) as { code: string }).code, 'TASK_CONFLICT');
    assert.equal((await fetch(`${base}/v1/tasks/nope`)).status, 404);
    const bad = await fetch(`${base}/v1/tasks`, { method: 'POST', body: JSON.stringify({ args: 1 }) });
    assert.equal(bad.status, 400);

    await env.worker({ 'rest.job': (a: { a: number }) => a.a + 1 }, { queues: [queue] });
    const run = (await (
      await fetch(`${base}/v1/tasks`, {
        method: 'POST',
        body: JSON.stringify({ name: 'rest.job', args: { a: 41 }, queue }),
      })
    ).json()) as { id: string };
    const waited = (await (await fetch(`${base}/v1/tasks/${run.id}/wait?timeout_ms=10000`)).json()) as {
      done: boolean;
      task: { result: number };
    };
    assert.deepEqual([waited.done, waited.task.result], [true, 42]);
    const list = (await (await fetch(`${base}/v1/tasks?queue=${queue}&state=succeeded`)).json()) as {
      tasks: { id: string }[];
    };
    assert.deepEqual(
      list.tasks.map((t) => t.id),
      [run.id],
    );
    const stats = (await (await fetch(`${base}/v1/tasks/stats`)).json()) as {
      queues: Record<string, unknown>;
    };
    assert.ok(stats.queues[queue]);
  });
});
