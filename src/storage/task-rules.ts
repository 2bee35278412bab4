/**
 * The task rules every engine applies, as pure functions over records: what a new record must satisfy,
 * and the one transition — the fields a change implies on top of the caller's patch, checked against
 * `TASK_TRANSITIONS`. The memory and file engines journal the resulting fact; the PostgreSQL engine
 * applies it to the stored record in its transaction.
 */
import { MessagingError } from '../protocol/errors.ts';
import type { TaskSetFact } from './internal/records.ts';
import {
  canTransition,
  INITIAL_TASK_STATES,
  isTerminal,
  type TaskPatch,
  type TaskRecord,
  type TaskState,
} from './task-types.ts';

export function conflict(message: string, details?: Record<string, unknown>): MessagingError {
  return new MessagingError('TASK_CONFLICT', message, details ? { details } : undefined);
}

/** What a new record must satisfy; BAD_REQUEST naming the field otherwise. */
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

/**
 * The one transition function: `rec` moved to `to` (or kept in its state) with the caller's `set` — the
 * fact to apply, with the fields the new state implies. Throws TASK_CONFLICT for a change the table
 * does not allow.
 */
export function transitionFact(
  rec: TaskRecord,
  to: TaskState | undefined,
  set: TaskPatch | undefined,
  now: number,
): TaskSetFact {
  const from = rec.state;
  // Built field by field (no spread, no delete): facts are hot, and JSON-encoded for the journal.
  const fact: TaskSetFact = { id: rec.id, updated_at: now };
  if (set) {
    const f = fact as Record<string, unknown>;
    for (const key in set) {
      if (key === 'state' || key === 'eta_in_ms' || key === 'id') continue;
      const value = (set as Record<string, unknown>)[key];
      if (value !== undefined) f[key] = value;
    }
    if (set.eta_in_ms !== undefined) fact.eta = now + set.eta_in_ms;
  }
  if (to === undefined || to === from) return fact;
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
  if (from === 'running' && fact.worker === undefined && fact.lock_until === undefined) {
    fact.unset = fact.unset ? [...fact.unset, 'worker', 'lock_until'] : ['worker', 'lock_until'];
  }
  return fact;
}
