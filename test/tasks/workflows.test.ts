/**
 * Workflows: chain (each result feeds the next), group (parallel, results collected in order), chord
 * (the callback receives every result of the group, in order), and a failing step failing the workflow
 * with the step named.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { TaskContext } from '../../src/worker/index.ts';
import { setup, sleep, uniqueQueue, until, type Env } from './helpers.ts';

describe('task workflows', () => {
  let env: Env;
  let queue: string;
  const calls: { name: string; args: unknown; previous: unknown }[] = [];
  before(async () => {
    env = await setup();
    queue = uniqueQueue('wf');
    await env.worker(
      {
        add: ([a, b]: [number, number]) => a + b,
        double: (n: number) => n * 2,
        // Finishes in reverse order of its argument, so completion order differs from declaration order.
        square: async (n: number) => {
          await sleep((5 - n) * 30);
          return n * n;
        },
        sum: (values: number[], ctx: TaskContext) => {
          calls.push({ name: 'sum', args: values, previous: ctx.previous });
          return values.reduce((x, y) => x + y, 0);
        },
        label: (args: { prefix: string }, ctx: TaskContext) => {
          calls.push({ name: 'label', args, previous: ctx.previous });
          return `${args.prefix}:${JSON.stringify(ctx.previous)}`;
        },
        boom: () => {
          throw new Error('step exploded');
        },
      },
      { queues: [queue], concurrency: 4 },
    );
  });
  after(async () => {
    await env.close();
  });

  it('chain: each result is passed to the next step', async () => {
    const t = env.conn.tasks;
    const h = await t.chain([
      t.sig('add', [1, 2], { queue }),
      t.sig('double', undefined, { queue }),
      t.sig('double', undefined, { queue }),
      // Array args: the previous result is prepended (Celery's partial signatures).
      t.sig('add', [100], { queue }),
    ]);
    assert.equal((await h.get()).kind, 'chain');
    assert.equal(await h.wait(10_000), 112);
    const rec = await h.get();
    assert.equal(rec.state, 'succeeded');
    assert.equal(rec.children?.length, 4);
    // Steps are ordinary tasks pointing back at the chain.
    const last = await t.get(rec.children![3]!);
    assert.deepEqual(last.args, [12, 100]);
    assert.deepEqual(last.parent, { id: h.id, index: 3 });
  });

  it('chain: a step with its own object args gets the previous result as ctx.previous', async () => {
    const t = env.conn.tasks;
    const h = await t.chain([t.sig('add', [2, 3], { queue }), t.sig('label', { prefix: 'got' }, { queue })]);
    assert.equal(await h.wait(10_000), 'got:5');
  });

  it('group: members run in parallel and the results come back in declaration order', async () => {
    const t = env.conn.tasks;
    const h = await t.group([1, 2, 3, 4].map((n) => t.sig('square', n, { queue })));
    assert.deepEqual(await h.wait(10_000), [1, 4, 9, 16]);
    const rec = await h.get();
    assert.equal(rec.kind, 'group');
    assert.deepEqual(rec.results, [1, 4, 9, 16]);
  });

  it('chord: the callback receives every result of the group, in order', async () => {
    const t = env.conn.tasks;
    calls.length = 0;
    const h = await t.chord(
      [1, 2, 3, 4].map((n) => t.sig('square', n, { queue })),
      t.sig('sum', undefined, { queue }),
    );
    assert.equal(await h.wait(10_000), 30);
    assert.deepEqual(calls, [{ name: 'sum', args: [1, 4, 9, 16], previous: undefined }]);
    const rec = await h.get();
    assert.equal(rec.children?.length, 5, 'four members and the callback');
  });

  it('a failing step fails the workflow, naming the step; later steps never run', async () => {
    const t = env.conn.tasks;
    calls.length = 0;
    const chain = await t.chain([
      t.sig('add', [1, 1], { queue }),
      t.sig('boom', null, { queue, maxRetries: 0 }),
      t.sig('label', { prefix: 'never' }, { queue }),
    ]);
    const rec = await t.waitInfo(chain.id, 10_000);
    assert.equal(rec.state, 'failed');
    assert.deepEqual(rec.error?.step, { index: 1, id: rec.children![1], name: 'boom' });
    assert.match(rec.error?.message ?? '', /chain step 1 \(boom\) failed: step exploded/);
    assert.ok(rec.error?.stack?.includes('step exploded'));
    assert.equal(rec.children?.length, 2, 'the third step was never created');
    await assert.rejects(chain.wait(1000), { code: 'TASK_FAILED' });

    const chord = await t.chord(
      [t.sig('square', 1, { queue }), t.sig('boom', null, { queue, maxRetries: 0 })],
      t.sig('sum', undefined, { queue }),
    );
    const c = await t.waitInfo(chord.id, 10_000);
    assert.equal(c.state, 'failed');
    assert.match(c.error?.message ?? '', /chord step 1 \(boom\) failed/);
    // The other member still finishes; the callback never runs.
    await until(async () => (await t.get(c.children![0]!)).state === 'succeeded', 10_000, 'the other member');
    assert.equal(calls.length, 0);
  });

  it('cancelling a workflow cancels its waiting children', async () => {
    const t = env.conn.tasks;
    const idle = uniqueQueue('wf-idle');
    const h = await t.group([t.sig('square', 1, { queue: idle }), t.sig('square', 2, { queue: idle })]);
    const cancelled = await h.cancel();
    assert.equal(cancelled.state, 'cancelled');
    for (const id of cancelled.children ?? []) assert.equal((await t.get(id)).state, 'cancelled');
    await assert.rejects(h.wait(1000), { code: 'TASK_CANCELLED' });
  });
});
