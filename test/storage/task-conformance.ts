/**
 * The task cases of the storage conformance suite (run by `runStorageConformance` for every engine):
 * records, compare-and-set transitions, claims in priority order, housekeeping by the injected clock, and
 * the exactly-once schedule tick. Only the `Storage` interface is used; time never passes for real.
 */
import assert from 'node:assert/strict';
import type { Storage, TaskRecord } from '../../src/storage/index.ts';

type Setup = () => Promise<{ s: Storage; clock: { t: number; advance(ms: number): void } }>;
type Test = (title: string, fn: () => Promise<void>) => void;

let n = 0;

export function task(extra: Partial<TaskRecord> = {}, now = 1_700_000_000_000): TaskRecord {
  return {
    id: `t${String(++n).padStart(6, '0')}`,
    kind: 'task',
    name: 'work',
    args: { n },
    queue: 'default',
    priority: 2,
    state: 'queued',
    created_at: now,
    updated_at: now,
    max_retries: 3,
    retry: { delay_ms: 1000, backoff: 2, max_delay_ms: 60_000, jitter: 0 },
    result_ttl_ms: 60_000,
    attempts: 0,
    ...extra,
  };
}

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.equal((err as { code?: string }).code, code, `expected ${code}, got ${String(err)}`);
    return true;
  });
}

const ALL = [{ queue: 'default' }];

export function taskConformanceCases(test: Test, setup: Setup): void {
  test('tasks: submit stores records; a known id or idempotency key returns the existing one', async () => {
    const { s } = await setup();
    const a = task({ idempotency_key: 'k1' });
    const [r1] = await s.submitTasks([a]);
    assert.equal(r1!.created, true);
    assert.deepEqual(await s.getTask(a.id), a);
    const [again] = await s.submitTasks([{ ...a }]);
    assert.equal(again!.created, false);
    const [byKey] = await s.submitTasks([task({ idempotency_key: 'k1' })]);
    assert.deepEqual([byKey!.created, byKey!.task.id], [false, a.id]);
    const twice = await s.submitTasks([task({ idempotency_key: 'k2' }), task({ idempotency_key: 'k2' })]);
    assert.deepEqual(
      twice.map((r) => r.created),
      [true, false],
    );
    assert.equal(twice[1]!.task.id, twice[0]!.task.id);
    assert.equal(await s.getTask('nope'), undefined);
    assert.deepEqual(
      (await s.getTasks([a.id, 'nope'])).map((t) => t?.id),
      [a.id, undefined],
    );
    await rejects(s.submitTasks([task({ state: 'succeeded' })]), 'BAD_REQUEST');
  });

  test('tasks: claims serve higher priority first, FIFO within a priority, only the names asked for', async () => {
    const { s } = await setup();
    const low = task({ priority: 1 });
    const hi1 = task({ priority: 4 });
    const hi2 = task({ priority: 4 });
    const other = task({ name: 'other', priority: 5 });
    const elsewhere = task({ queue: 'emails', priority: 5 });
    await s.submitTasks([low, hi1, hi2, other, elsewhere]);
    const first = await s.claimTasks([{ queue: 'default', exclude: ['other'] }], 'w1', 2, 10_000);
    assert.deepEqual(
      first.claimed.map((t) => t.id),
      [hi1.id, hi2.id],
    );
    assert.equal(first.claimed[0]!.state, 'running');
    assert.equal(first.claimed[0]!.worker, 'w1');
    assert.equal(first.claimed[0]!.attempts, 1);
    const rest = await s.claimTasks([{ queue: 'default', names: ['work'] }], 'w1', 10, 10_000);
    assert.deepEqual(
      rest.claimed.map((t) => t.id),
      [low.id],
    );
    const both = await s.claimTasks([{ queue: 'default' }, { queue: 'emails' }], 'w2', 10, 10_000);
    assert.deepEqual(both.claimed.map((t) => t.id).sort(), [other.id, elsewhere.id].sort());
    assert.deepEqual((await s.claimTasks(ALL, 'w2', 10, 10_000)).claimed, []);
    const counts = await s.taskCounts();
    assert.equal(counts.queues['default']!.running, 4);
    assert.equal(counts.names['work']!.running, 4);
  });

  test('tasks: a task past its expiry is never claimed: it becomes expired', async () => {
    const { s, clock } = await setup();
    const t = task({ expires: clock.t + 100 });
    await s.submitTasks([t]);
    clock.advance(100);
    const r = await s.claimTasks(ALL, 'w', 5, 1000);
    assert.deepEqual(r.claimed, []);
    assert.deepEqual(
      r.expired.map((x) => x.id),
      [t.id],
    );
    assert.equal((await s.getTask(t.id))!.state, 'expired');
  });

  test('tasks: updateTasks is compare-and-set on state and holder, checked against the table', async () => {
    const { s } = await setup();
    const t = task();
    await s.submitTasks([t]);
    const [claimed] = (await s.claimTasks(ALL, 'w1', 1, 10_000)).claimed;
    assert.ok(claimed);
    const wrongHolder = await s.updateTasks([
      { id: t.id, from: ['running'], to: 'succeeded', holder: { worker: 'w2', attempt: 1 } },
    ]);
    assert.deepEqual([wrongHolder[0]!.ok, !wrongHolder[0]!.ok && wrongHolder[0]!.reason], [false, 'holder']);
    const [done] = await s.updateTasks([
      {
        id: t.id,
        from: ['running'],
        to: 'succeeded',
        set: { result: 42 },
        holder: { worker: 'w1', attempt: 1 },
      },
    ]);
    assert.ok(done?.ok);
    const rec = done.task;
    assert.equal(rec.state, 'succeeded');
    assert.equal(rec.result, 42);
    assert.equal(rec.worker, undefined);
    assert.equal(typeof rec.finished_at, 'number');
    assert.equal(rec.delete_at, rec.finished_at! + t.result_ttl_ms);
    const [late] = await s.updateTasks([{ id: t.id, from: ['running'], to: 'failed' }]);
    assert.deepEqual([late!.ok, !late!.ok && late!.reason], [false, 'state']);
    // A change the table does not allow is refused whatever the caller expected.
    await rejects(s.updateTasks([{ id: t.id, from: ['succeeded'], to: 'queued' }]), 'TASK_CONFLICT');
    const [missing] = await s.updateTasks([{ id: 'nope', from: ['queued'], to: 'cancelled' }]);
    assert.equal(missing!.ok, false);
    // atomic: one refusal applies nothing.
    const a = task();
    await s.submitTasks([a]);
    await rejects(
      s.updateTasks(
        [
          { id: a.id, from: ['queued'], to: 'cancelled' },
          { id: t.id, from: ['queued'], to: 'cancelled' },
        ],
        { atomic: true },
      ),
      'TASK_CONFLICT',
    );
    assert.equal((await s.getTask(a.id))!.state, 'queued');
    // New records ride along in the same step.
    const child = task();
    await s.updateTasks([{ id: a.id, from: ['queued'], to: 'cancelled' }], { add: [child] });
    assert.equal((await s.getTask(child.id))!.state, 'queued');
  });

  test('tasks: group results are collected by index without losing any', async () => {
    const { s } = await setup();
    const g = task({ kind: 'group', state: 'running', results: [null, null, null], remaining: 3 });
    await s.submitTasks([g]);
    await Promise.all(
      [2, 0, 1].map((i) =>
        s.updateTasks([{ id: g.id, from: ['running'], set: { collect: { index: i, value: `r${i}` } } }]),
      ),
    );
    const rec = (await s.getTask(g.id))!;
    assert.deepEqual(rec.results, ['r0', 'r1', 'r2']);
    assert.equal(rec.remaining, 0);
    assert.equal(rec.state, 'running');
  });

  test('tasks: ETAs and retry delays come due by the clock; expiry wins over a later due time', async () => {
    const { s, clock } = await setup();
    const later = task({ state: 'pending', eta: clock.t + 500 });
    const doomed = task({ state: 'pending', eta: clock.t + 500, expires: clock.t + 300 });
    await s.submitTasks([later, doomed]);
    let tick = await s.tickTasks();
    assert.deepEqual([tick.queued.length, tick.expired.length], [0, 0]);
    assert.equal(tick.next_due_at, clock.t + 300);
    assert.deepEqual((await s.claimTasks(ALL, 'w', 5, 1000)).claimed, []);
    clock.advance(300);
    tick = await s.tickTasks();
    assert.deepEqual(
      tick.expired.map((t) => t.id),
      [doomed.id],
    );
    clock.advance(200);
    tick = await s.tickTasks();
    assert.deepEqual(
      tick.queued.map((t) => t.id),
      [later.id],
    );
    const rec = (await s.getTask(later.id))!;
    assert.equal(rec.state, 'queued');
    assert.equal(rec.eta, later.eta, 'the due time it had is kept');
    assert.equal(rec.queued_at, clock.t);
    // A failed attempt waits in `retrying` until its delay passed.
    await s.claimTasks(ALL, 'w', 1, 10_000);
    await s.updateTasks([{ id: later.id, from: ['running'], to: 'retrying', set: { eta: clock.t + 1000 } }]);
    clock.advance(999);
    assert.equal((await s.tickTasks()).queued.length, 0);
    clock.advance(1);
    assert.equal((await s.tickTasks()).queued.length, 1);
  });

  test('tasks: a lock that runs out stalls the task; heartbeats keep it; lost tasks are reported', async () => {
    const { s, clock } = await setup();
    const a = task();
    const b = task();
    await s.submitTasks([a, b]);
    await s.claimTasks(ALL, 'w1', 2, 1000);
    clock.advance(800);
    const hb = await s.renewTaskLocks('w1', [a.id, 'gone'], 1000);
    assert.deepEqual(hb, { held: [a.id], lost: ['gone'] });
    clock.advance(300);
    const tick = await s.tickTasks((t) => ({
      to: 'retrying',
      set: { eta: clock.t + 50, error: { name: 'WorkerLostError', message: `lock of ${t.worker} ran out` } },
    }));
    assert.deepEqual(
      tick.stalled.map((t) => t.id),
      [b.id],
    );
    const rec = (await s.getTask(b.id))!;
    assert.deepEqual([rec.state, rec.worker, rec.error?.name], ['retrying', undefined, 'WorkerLostError']);
    assert.equal((await s.getTask(a.id))!.state, 'running');
    assert.deepEqual((await s.renewTaskLocks('w1', [b.id], 1000)).lost, [b.id]);
    assert.equal(await s.setTaskProgress(a.id, 'w1', 1, { value: 0.5, message: 'half', at: clock.t }), true);
    assert.deepEqual((await s.getTask(a.id))!.progress, { value: 0.5, message: 'half', at: clock.t });
    assert.equal(await s.setTaskProgress(a.id, 'w2', 1, { value: 0.6, at: clock.t }), false);
  });

  test('tasks: finished records go after their result TTL; listTasks filters newest first', async () => {
    const { s, clock } = await setup();
    const a = task({ result_ttl_ms: 1000, tags: ['x'] });
    const b = task({ result_ttl_ms: 1000 });
    await s.submitTasks([a, b]);
    await s.updateTasks([{ id: a.id, from: ['queued'], to: 'cancelled' }]);
    assert.deepEqual(
      (await s.listTasks({ state: 'cancelled' })).map((t) => t.id),
      [a.id],
    );
    assert.deepEqual(
      (await s.listTasks({ tag: 'x' })).map((t) => t.id),
      [a.id],
    );
    assert.deepEqual(
      (await s.listTasks()).map((t) => t.id),
      [b.id, a.id],
    );
    clock.advance(999);
    assert.equal((await s.tickTasks()).removed, 0);
    clock.advance(1);
    assert.equal((await s.tickTasks()).removed, 1);
    assert.equal(await s.getTask(a.id), undefined);
    assert.equal((await s.taskCounts()).queues['default']!.cancelled, 0);
  });

  test('tasks: a schedule tick is claimed exactly once, with its task, however many claim it', async () => {
    const { s, clock } = await setup();
    await s.putSchedule({
      id: 'nightly',
      task: { name: 'report' },
      cron: '0 3 * * *',
      enabled: true,
      created_at: clock.t,
      anchor: clock.t,
      last_tick: 0,
      runs: 0,
    });
    const tick = clock.t + 60_000;
    const wins = await Promise.all(
      Array.from({ length: 5 }, () =>
        s.claimScheduleTick('nightly', tick, task({ name: 'report', schedule: { id: 'nightly', tick } })),
      ),
    );
    assert.equal(wins.filter(Boolean).length, 1);
    assert.equal(await s.claimScheduleTick('nightly', tick - 1, task()), false);
    const sched = (await s.getSchedule('nightly'))!;
    assert.deepEqual([sched.last_tick, sched.runs], [tick, 1]);
    assert.equal((await s.listTasks({ name: 'report' })).length, 1);
    assert.equal((await s.listTasks({ name: 'report' }))[0]!.id, sched.last_task_id);
    assert.deepEqual(
      (await s.listSchedules()).map((x) => x.id),
      ['nightly'],
    );
    await s.putSchedule({ ...sched, enabled: false });
    assert.equal((await s.getSchedule('nightly'))!.enabled, false);
    await s.deleteSchedule('nightly');
    assert.equal(await s.getSchedule('nightly'), undefined);
    await rejects(s.deleteSchedule('nightly'), 'NOT_FOUND');
    await rejects(s.claimScheduleTick('nightly', tick + 1, task()), 'NOT_FOUND');
  });
}
