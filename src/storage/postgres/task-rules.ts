/**
 * The shared task rules (`../task-rules.ts`) applied to whole records, for the `postgres` engine, which
 * keeps each record as jsonb and rewrites it in the transaction that changes it.
 */
import { transitionFact } from '../task-rules.ts';
import type { TaskPatch, TaskRecord, TaskState } from '../task-types.ts';

/** A changed record, and whether it (re-)entered the ready order (a fresh FIFO position). */
export interface Changed {
  rec: TaskRecord;
  requeued: boolean;
}

/**
 * The one transition (`transitionFact` of the shared task rules) applied to a stored record: the new
 * record, and whether it (re-)entered the ready order.
 */
export function transition(
  rec: TaskRecord,
  to: TaskState | undefined,
  set: TaskPatch | undefined,
  now: number,
): Changed {
  const { unset, ...fact } = transitionFact(rec, to, set, now);
  return apply(rec, fact, unset ?? []);
}

/** `setFields` of the task table: copy on write, `collect` counted as one member result. */
function apply(rec: TaskRecord, fact: Record<string, unknown>, unset: readonly string[]): Changed {
  const next = { ...rec } as Record<string, unknown>;
  for (const key in fact) {
    if (key === 'collect') continue;
    next[key] = fact[key];
  }
  for (const key of unset) delete next[key];
  const out = next as unknown as TaskRecord;
  const collect = fact.collect as TaskPatch['collect'];
  if (collect) {
    const results = [...(out.results ?? [])];
    results[collect.index] = collect.value;
    out.results = results;
    out.remaining = (out.remaining ?? 0) - 1;
  }
  const requeued = out.state === 'queued' && (rec.state !== 'queued' || fact.priority !== undefined);
  return { rec: out, requeued };
}
