/**
 * The task rules of `task-engine.ts` as pure functions over records, for the `postgres` engine (which
 * keeps whole records as jsonb and cannot use the in-memory table). Same checks, same transition table
 * (`canTransition`), same implied fields; keep the two in step.
 */
import { MessagingError } from '../../protocol/errors.ts';
import {
  canTransition,
  INITIAL_TASK_STATES,
  isTerminal,
  type TaskPatch,
  type TaskRecord,
  type TaskState,
} from '../task-types.ts';

export function conflict(message: string, details?: Record<string, unknown>): MessagingError {
  return new MessagingError('TASK_CONFLICT', message, details ? { details } : undefined);
}

/** What a new record must satisfy (`checkRecord` of the shared engine). */
export function checkTaskRecord(r: TaskRecord): void {
  const bad = (why: string): never => {
    throw new MessagingError('BAD_REQUEST', `task ${String(r?.id)}: ${why}`);
  };
  if (!r || typeof r !== 'object') bad('not a record');
  if (typeof r.id !== 'string' || r.id.length === 0 || r.id.length > 128) bad('id must be 1-128 characters');
  if (typeof r.name !== 'string' || r.name.length === 0) bad('name must be a non-empty string');
  if (typeof r.queue !== 'string' || r.queue.length === 0) bad('queue must be a non-empty string');
  if (!INITIAL_TASK_STATES.includes(r.state)) bad(`cannot be created in state ${String(r.state)}`);
  if (!Number.isInteger(r.priority) || r.priority < 0 || r.priority > 5) bad('priority must be 0-5');
}

/** A changed record, and whether it (re-)entered the ready order (a fresh FIFO position). */
export interface Changed {
  rec: TaskRecord;
  requeued: boolean;
}

/**
 * The one transition: `rec` moved to `to` (or kept in its state) with the caller's `set` and the fields
 * the new state implies. Throws TASK_CONFLICT for a change the table does not allow.
 */
export function transition(
  rec: TaskRecord,
  to: TaskState | undefined,
  set: TaskPatch | undefined,
  now: number,
): Changed {
  const from = rec.state;
  const fact: Record<string, unknown> = { updated_at: now };
  let unset: string[] = [];
  if (set) {
    for (const key in set) {
      if (key === 'state' || key === 'eta_in_ms' || key === 'id' || key === 'unset') continue;
      const value = (set as Record<string, unknown>)[key];
      if (value !== undefined) fact[key] = value;
    }
    if (set.unset) unset = [...set.unset];
    if (set.eta_in_ms !== undefined) fact.eta = now + set.eta_in_ms;
  }
  if (to !== undefined && to !== from) {
    if (!canTransition(from, to)) {
      throw conflict(`task ${rec.id} cannot go from ${from} to ${to}`, { id: rec.id, state: from });
    }
    fact.state = to;
    // `eta` stays as the last due time (it only matters while pending or retrying).
    if (to === 'queued') fact.queued_at = now;
    else if (to === 'retrying' || to === 'pending') {
      if (typeof fact.eta !== 'number') fact.eta = now;
    } else if (isTerminal(to)) {
      fact.finished_at = now;
      fact.delete_at = now + rec.result_ttl_ms;
    }
    // Leaving `running` releases the lock (unless the caller sets those fields itself).
    if (from === 'running' && fact.worker === undefined && fact.lock_until === undefined)
      unset.push('worker', 'lock_until');
  }
  return apply(rec, fact, unset);
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
