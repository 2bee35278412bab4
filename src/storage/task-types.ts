/**
 * The storage contract in task terms: the task record, its states, and the one transition table every
 * state change is checked against. The storage keeps task records and performs every change of state as
 * one atomic operation (one journal record), the way BullMQ's Lua scripts do in Redis; the task service
 * (`src/tasks/`) decides *which* change to ask for (retry delays, workflow steps), never writes state
 * itself.
 *
 * Field names are snake_case: records travel to clients unchanged.
 */

/** The message priority scale (`lowest` 0 … `critical` 5); declared here so this module imports nothing. */
export type TaskPriority = 0 | 1 | 2 | 3 | 4 | 5;

export type TaskState =
  'pending' | 'queued' | 'running' | 'succeeded' | 'failed' | 'retrying' | 'cancelled' | 'expired';

export const TASK_STATES: readonly TaskState[] = [
  'pending',
  'queued',
  'running',
  'succeeded',
  'failed',
  'retrying',
  'cancelled',
  'expired',
];

/**
 * Every legal change of state. `pending` (waiting for its ETA) and `retrying` (waiting for its retry
 * delay) become `queued` when due; a worker's claim makes a queued task `running`; a running task ends,
 * waits for another attempt (`retrying`), or is handed back (`queued`, the attempt not counted) when its
 * worker shuts down before finishing it. Terminal states have no way out. Workflow records (chain, group,
 * chord) are created `running` and end like a task.
 */
export const TASK_TRANSITIONS: Readonly<Record<TaskState, readonly TaskState[]>> = {
  pending: ['queued', 'cancelled', 'expired'],
  queued: ['running', 'cancelled', 'expired'],
  running: ['succeeded', 'failed', 'retrying', 'cancelled', 'queued'],
  retrying: ['queued', 'cancelled', 'expired'],
  succeeded: [],
  failed: [],
  cancelled: [],
  expired: [],
};

/** States a task is created in: `pending` (has an ETA), `queued`, or `running` (workflow records only). */
export const INITIAL_TASK_STATES: readonly TaskState[] = ['pending', 'queued', 'running'];

export function isTerminal(state: TaskState): boolean {
  return TASK_TRANSITIONS[state].length === 0;
}

export function canTransition(from: TaskState, to: TaskState): boolean {
  return TASK_TRANSITIONS[from].includes(to);
}

/** Waiting for a due time (ETA or retry delay). */
export function isWaiting(state: TaskState): boolean {
  return state === 'pending' || state === 'queued' || state === 'retrying';
}

export type TaskKind = 'task' | 'chain' | 'group' | 'chord';

/** Delay before attempt n+1 = min(max_delay_ms, delay_ms × backoff^(n−1)), then minus up to `jitter` of it. */
export interface RetryPolicy {
  delay_ms: number;
  backoff: number;
  max_delay_ms: number;
  /** 0–1: the fraction of the delay that is randomised away (0 = exact delays). */
  jitter: number;
}

export interface TaskError {
  /** `Error.name` of what the handler threw, e.g. `TypeError`, `TimeoutError`, `WorkerLostError`. */
  name: string;
  message: string;
  stack?: string;
  /** Set on a failed workflow: the step that failed. */
  step?: { index: number; id: string; name: string };
}

export interface TaskProgress {
  /** 0–1. */
  value: number;
  message?: string;
  at: number;
}

/** A task to create later: a workflow step, a chord callback, a schedule's template. */
export interface TaskTemplate {
  name: string;
  args?: unknown;
  queue?: string;
  priority?: TaskPriority;
  max_retries?: number;
  retry?: Partial<RetryPolicy>;
  timeout_ms?: number;
  tags?: string[];
  result_ttl_ms?: number;
  /** Relative to the task's creation. */
  expires_in_ms?: number;
}

export interface TaskRecord {
  /** ULID. */
  id: string;
  kind: TaskKind;
  /** The handler key. */
  name: string;
  args: unknown;
  queue: string;
  priority: TaskPriority;
  state: TaskState;
  created_at: number;
  updated_at: number;
  /** pending/retrying: not before this time (epoch ms). */
  eta?: number;
  /** Not started by this time → `expired` (epoch ms). */
  expires?: number;
  max_retries: number;
  retry: RetryPolicy;
  timeout_ms?: number;
  tags?: string[];
  idempotency_key?: string;
  /** How long the record (with its result or error) is kept after it ends. */
  result_ttl_ms: number;
  /** Attempts started so far. */
  attempts: number;
  /** While running: the worker holding it and until when its lock lasts. */
  worker?: string;
  lock_until?: number;
  queued_at?: number;
  started_at?: number;
  finished_at?: number;
  progress?: TaskProgress;
  result?: unknown;
  error?: TaskError;
  /**
   * A chain step or chord callback declared with its own args: the previous step's result (the group's
   * results for a callback), handed to the handler as `ctx.previous`.
   */
  previous?: unknown;
  /** Workflow membership: the chain/group/chord record and this task's position in it. */
  parent?: { id: string; index: number };
  /** Workflow records: the steps (chain) or members (group, chord). */
  steps?: TaskTemplate[];
  /** Workflow records: ids of the children created so far, by index. */
  children?: string[];
  /** Group/chord records: results by member index; chain: the last result. */
  results?: unknown[];
  /** Group/chord records: members not yet succeeded. */
  remaining?: number;
  /** Chord records: the callback run with every result. */
  callback?: TaskTemplate;
  /** Created by a schedule: which one, and the tick (its due time). */
  schedule?: { id: string; tick: number };
  /** Terminal: the record is removed at this time (finished_at + result_ttl_ms). */
  delete_at?: number;
  /** W3C traceparent of the submit span: each attempt's run span continues this trace. */
  traceparent?: string;
}

/**
 * A change to a record: fields to set (a `null` value is stored as null: results may be null), `unset`
 * to remove fields, `eta_in_ms` for a due time relative to the change. `collect` stores one member result in a group/chord record and counts it (kept as an
 * operation so concurrent members never overwrite each other).
 */
export type TaskPatch = { [K in keyof TaskRecord]?: TaskRecord[K] } & {
  unset?: (keyof TaskRecord)[];
  /** Sets `eta` this long after the change is applied (a retry delay counts from the failure). */
  eta_in_ms?: number;
  collect?: { index: number; value: unknown };
};

/** Asked of `updateTasks`: move task `id` from one of `from` to `to` (or stay), applying `set`. */
export interface TaskChange {
  id: string;
  /** The states the caller saw; the change applies only while the task is still in one of them. */
  from: readonly TaskState[];
  to?: TaskState;
  set?: TaskPatch;
  /** Only while this worker holds this attempt (a worker's report after its lock was lost is refused). */
  holder?: { worker: string; attempt: number };
}

export type TaskChangeOutcome =
  | { ok: true; task: TaskRecord; from: TaskState }
  | { ok: false; reason: 'not_found' | 'state' | 'holder'; task?: TaskRecord };

/** Which ready tasks a worker pool takes: a queue, optionally only some names or all but some. */
export interface ClaimTarget {
  queue: string;
  names?: readonly string[];
  exclude?: readonly string[];
}

export interface TaskFilter {
  state?: TaskState;
  queue?: string;
  name?: string;
  tag?: string;
  kind?: TaskKind;
  /** Newest first; at most this many (default 100). */
  limit?: number;
}

export type StateCounts = Record<TaskState, number>;

export interface TaskCounts {
  queues: Record<string, StateCounts>;
  names: Record<string, StateCounts>;
}

export interface TaskTickResult {
  /** pending/retrying tasks that became queued. */
  queued: TaskRecord[];
  /** Tasks that reached their `expires` before starting. */
  expired: TaskRecord[];
  /** Running tasks whose lock ran out (their worker is gone or stuck), as `onStalled` moved them. */
  stalled: TaskRecord[];
  /** Finished records removed after their result TTL. */
  removed: number;
  /** Earliest due time (ETA, retry delay, expiry) — worth a precise timer — or null. */
  next_due_at: number | null;
  /** Earliest lock deadline or result-TTL removal — fine to handle a little late — or null. */
  next_housekeeping_at: number | null;
}

export interface ScheduleRecord {
  id: string;
  /** The task each run creates (a fresh id every time). */
  task: TaskTemplate;
  /** Periodic: every this many ms, counted from `anchor`. */
  every_ms?: number;
  /** Or a standard 5-field cron expression (Vixie semantics), in `timezone`. */
  cron?: string;
  timezone?: string;
  enabled: boolean;
  created_at: number;
  /** Ticks of a periodic schedule fall on anchor + k × every_ms. */
  anchor: number;
  /** Due time of the last tick claimed (a run created), 0 before the first. */
  last_tick: number;
  last_task_id?: string;
  runs: number;
}
