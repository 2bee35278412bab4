/**
 * Tasks (`conn.tasks`): submit tasks (now, later, as a chain, group or chord), follow them (get, wait,
 * list, stats), cancel them, and manage schedules. Speaks the CMD operations of docs/tasks.md. The
 * worker side lives in `src/worker/` (`new Worker(conn, handlers, options)`), built on `_openWorker`.
 *
 * Records come back as the server's JSON (snake_case field names), like queue specs and stats.
 */
import { encodeControl, errorFromWire, FrameType, MessagingError, type MsgFrame } from '../protocol/index.ts';
import { Message, PRIORITIES, type PriorityName, type Responder } from './message.ts';
import type { DurableHost, OpenedSubscription } from './opened-subscription.ts';

export type TaskState =
  'pending' | 'queued' | 'running' | 'succeeded' | 'failed' | 'retrying' | 'cancelled' | 'expired';

/** A task as the server reports it (`task.get`). */
export interface TaskInfo {
  id: string;
  kind: 'task' | 'chain' | 'group' | 'chord';
  name: string;
  args: unknown;
  queue: string;
  priority: number;
  state: TaskState;
  created_at: number;
  updated_at: number;
  eta?: number;
  expires?: number;
  max_retries: number;
  retry: { delay_ms: number; backoff: number; max_delay_ms: number; jitter: number };
  timeout_ms?: number;
  tags?: string[];
  idempotency_key?: string;
  result_ttl_ms: number;
  /** Attempts started so far. */
  attempts: number;
  worker?: string;
  lock_until?: number;
  queued_at?: number;
  started_at?: number;
  finished_at?: number;
  /** Live while running: 0–1 and a message. */
  progress?: { value: number; message?: string; at: number };
  result?: unknown;
  error?: {
    name: string;
    message: string;
    stack?: string;
    step?: { index: number; id: string; name: string };
  };
  previous?: unknown;
  parent?: { id: string; index: number };
  children?: string[];
  results?: unknown[];
  remaining?: number;
  schedule?: { id: string; tick: number };
  delete_at?: number;
  /** On submit: false when an idempotency key (or id) matched an existing task. */
  created?: boolean;
  [key: string]: unknown;
}

/**
 * A task as a worker receives it (`_tasks.assign`): what a handler may need, without the record's
 * bookkeeping (retry policy, timestamps, result fields).
 */
export interface TaskAssignment {
  id: string;
  name: string;
  args: unknown;
  queue: string;
  priority: number;
  /** This attempt's number: 1 on the first. */
  attempts: number;
  max_retries: number;
  created_at: number;
  /** The due time it had (ETA, or retry delay), if any. */
  eta?: number;
  timeout_ms?: number;
  tags?: string[];
  parent?: { id: string; index: number };
  /** A chain step or chord callback with its own args: the previous result(s). */
  previous?: unknown;
  schedule?: { id: string; tick: number };
  /** Until when this worker holds it (renewed by heartbeats). */
  lock_until?: number;
  /** W3C traceparent of this attempt's run span, when the task was submitted with a trace. */
  traceparent?: string;
}

/** How to run a task. Absent fields take the server's defaults. */
export interface SubmitOptions {
  /** Default `default`. */
  queue?: string;
  /** 0–5 or a name; higher runs first (default `normal`, 2). */
  priority?: number | PriorityName;
  /** Your own id (letters, digits, `._:-`); a known id returns the existing task. */
  id?: string;
  /** Not before this time. */
  eta?: Date | number;
  /** Not before this many ms from now. */
  countdownMs?: number;
  /** Not started by this time → `expired`, never run. */
  expires?: Date | number;
  expiresInMs?: number;
  /** Further attempts after a failure (default 3: up to 4 attempts). */
  maxRetries?: number;
  /** Delay before the 2nd attempt (default 1000); then × `retryBackoff` each time, capped. */
  retryDelayMs?: number;
  retryBackoff?: number;
  retryMaxDelayMs?: number;
  /** 0–1: fraction of each delay randomised away (default 0.1). */
  retryJitter?: number;
  /** An attempt running longer fails (and its `ctx.signal` aborts). */
  timeoutMs?: number;
  tags?: string[];
  /** Submitting the same key again returns the first task instead of a new one. */
  idempotencyKey?: string;
  /** How long the result/error is kept after the task ends (default 24 h). */
  resultTtlMs?: number;
  /**
   * W3C traceparent of the submitter's span: the server traces the submit and every attempt under it
   * and hands the run's traceparent to the handler (`ctx.traceparent`). Untraced without it.
   */
  traceparent?: string;
}

/** One step of a workflow: `tasks.sig('resize', {w: 100})`. */
export interface TaskSignature {
  name: string;
  /**
   * Chain steps and chord callbacks without args receive the previous result (the group's results) as
   * args; array args get it prepended; other args are kept and it arrives as `ctx.previous`.
   */
  args?: unknown;
  options?: Omit<SubmitOptions, 'id' | 'eta' | 'countdownMs' | 'expires' | 'idempotencyKey'>;
}

export interface TaskListFilter {
  state?: TaskState;
  queue?: string;
  name?: string;
  tag?: string;
  kind?: TaskInfo['kind'];
  limit?: number;
}

/** Options of `tasks.schedules.create`: exactly one of `everyMs` and `cron`. */
export interface ScheduleOptions {
  id: string;
  task: TaskSignature;
  everyMs?: number;
  /** Standard 5-field cron (Vixie semantics). */
  cron?: string;
  /** IANA time zone of `cron` (default UTC). */
  timezone?: string;
  /** Periodic: the first tick (default: one interval from now). */
  startAt?: Date | number;
  enabled?: boolean;
}

export interface ScheduleInfo {
  id: string;
  task: Record<string, unknown>;
  every_ms?: number;
  cron?: string;
  timezone?: string;
  enabled: boolean;
  created_at: number;
  anchor: number;
  last_tick: number;
  last_task_id?: string;
  runs: number;
  [key: string]: unknown;
}

/** `wait()` on a task that failed: `task.error` has the handler's error (name, message, stack). */
export class TaskFailedError extends MessagingError {
  constructor(
    message: string,
    readonly task: TaskInfo,
  ) {
    super(
      task.state === 'cancelled'
        ? 'TASK_CANCELLED'
        : task.state === 'expired'
          ? 'TASK_EXPIRED'
          : 'TASK_FAILED',
      message,
      {
        cause: remoteError(task),
        details: { id: task.id, state: task.state, error: task.error },
      },
    );
    this.name =
      task.state === 'cancelled'
        ? 'TaskCancelledError'
        : task.state === 'expired'
          ? 'TaskExpiredError'
          : 'TaskFailedError';
  }
}

function remoteError(task: TaskInfo): Error | undefined {
  if (!task.error) return undefined;
  const e = new Error(task.error.message);
  e.name = task.error.name;
  if (task.error.stack) e.stack = task.error.stack;
  return e;
}

function toMs(v: Date | number): number {
  return v instanceof Date ? v.getTime() : v;
}

function optionArgs(o: SubmitOptions | TaskSignature['options'] = {}): Record<string, unknown> {
  const a: Record<string, unknown> = {};
  const full = o as SubmitOptions;
  if (full.queue !== undefined) a['queue'] = full.queue;
  if (full.priority !== undefined)
    a['priority'] = typeof full.priority === 'string' ? PRIORITIES[full.priority] : full.priority;
  if (full.id !== undefined) a['id'] = full.id;
  if (full.eta !== undefined) a['eta'] = toMs(full.eta);
  if (full.countdownMs !== undefined) a['countdown_ms'] = full.countdownMs;
  if (full.expires !== undefined) a['expires'] = toMs(full.expires);
  if (full.expiresInMs !== undefined) a['expires_in_ms'] = full.expiresInMs;
  if (full.maxRetries !== undefined) a['max_retries'] = full.maxRetries;
  if (full.retryDelayMs !== undefined) a['retry_delay_ms'] = full.retryDelayMs;
  if (full.retryBackoff !== undefined) a['retry_backoff'] = full.retryBackoff;
  if (full.retryMaxDelayMs !== undefined) a['retry_max_delay_ms'] = full.retryMaxDelayMs;
  if (full.retryJitter !== undefined) a['retry_jitter'] = full.retryJitter;
  if (full.timeoutMs !== undefined) a['timeout_ms'] = full.timeoutMs;
  if (full.tags !== undefined) a['tags'] = full.tags;
  if (full.idempotencyKey !== undefined) a['idempotency_key'] = full.idempotencyKey;
  if (full.resultTtlMs !== undefined) a['result_ttl_ms'] = full.resultTtlMs;
  if (full.traceparent !== undefined) a['traceparent'] = full.traceparent;
  return a;
}

function signatureArgs(s: TaskSignature): Record<string, unknown> {
  const a: Record<string, unknown> = { name: s.name, ...optionArgs(s.options) };
  if (s.args !== undefined) a['args'] = s.args;
  return a;
}

/** Raises for a finished task that did not succeed; returns its result otherwise. */
export function resultOf(task: TaskInfo): unknown {
  if (task.state === 'succeeded') return task.result;
  const what =
    task.state === 'failed'
      ? `failed: ${task.error ? `${task.error.name}: ${task.error.message}` : 'no error recorded'}`
      : task.state === 'expired'
        ? 'expired before it started'
        : 'was cancelled';
  throw new TaskFailedError(`task ${task.id} (${task.name}) ${what}`, task);
}

const TERMINAL = new Set<TaskState>(['succeeded', 'failed', 'cancelled', 'expired']);

/**
 * What `submit` answers: the task's identity and where it stood then (`get()` has the whole record).
 * `created` is false when an idempotency key or id matched a task that already existed.
 */
export type TaskReceipt = Pick<TaskInfo, 'id' | 'name' | 'queue' | 'priority' | 'state' | 'created_at'> &
  Partial<Pick<TaskInfo, 'eta' | 'expires' | 'idempotency_key'>> & { created: boolean };

/** A submitted task (or workflow): follow it by id. */
export class TaskHandle {
  /** @internal created by `conn.tasks` */
  constructor(
    private readonly tasks: Tasks,
    /** The task's id. */
    readonly id: string,
    /** The submit's answer (a workflow: its whole record). */
    readonly info: TaskReceipt,
  ) {}

  /** The task's current record. */
  get(): Promise<TaskInfo> {
    return this.tasks.get(this.id);
  }

  /**
   * Waits until the task ends and returns its result; rejects with `TaskFailedError` (codes
   * TASK_FAILED, TASK_CANCELLED, TASK_EXPIRED) or, after `timeoutMs`, with a TimeoutError.
   */
  wait(timeoutMs = 30_000): Promise<unknown> {
    return this.tasks.wait(this.id, timeoutMs);
  }

  cancel(): Promise<TaskInfo> {
    return this.tasks.cancel(this.id);
  }
}

/** @internal a worker pool's registration, see `Tasks._openWorker` */
export interface WorkerRegistration {
  worker: string;
  pool: string;
  targets: { queue: string; names?: string[]; exclude?: string[] }[];
  capacity: number;
  lockMs: number;
  hostname?: string;
  pid?: number;
}

/** Schedules (`conn.tasks.schedules`). */
export class Schedules {
  /** @internal */
  constructor(private readonly host: DurableHost) {}

  /** Creates (or replaces, keeping its run bookkeeping) a periodic or cron schedule. */
  async create(o: ScheduleOptions): Promise<ScheduleInfo> {
    const args: Record<string, unknown> = { id: o.id, task: signatureArgs(o.task) };
    if (o.everyMs !== undefined) args['every_ms'] = o.everyMs;
    if (o.cron !== undefined) args['cron'] = o.cron;
    if (o.timezone !== undefined) args['timezone'] = o.timezone;
    if (o.startAt !== undefined) args['start_at'] = toMs(o.startAt);
    if (o.enabled !== undefined) args['enabled'] = o.enabled;
    return (await this.host.command('schedule.create', args)) as ScheduleInfo;
  }

  async list(): Promise<ScheduleInfo[]> {
    const body = await this.host.command('schedule.list');
    return Array.isArray(body['schedules']) ? (body['schedules'] as ScheduleInfo[]) : [];
  }

  async get(id: string): Promise<ScheduleInfo> {
    return (await this.host.command('schedule.get', { id })) as ScheduleInfo;
  }

  async enable(id: string): Promise<ScheduleInfo> {
    return (await this.host.command('schedule.enable', { id })) as ScheduleInfo;
  }

  async disable(id: string): Promise<ScheduleInfo> {
    return (await this.host.command('schedule.disable', { id })) as ScheduleInfo;
  }

  /** Runs the schedule's task now (a fresh task, outside the ticks). */
  async trigger(id: string): Promise<TaskInfo> {
    return (await this.host.command('schedule.trigger', { id })) as TaskInfo;
  }

  async remove(id: string): Promise<void> {
    await this.host.command('schedule.remove', { id });
  }
}

const schedule: (fn: () => void) => void =
  typeof globalThis.setImmediate === 'function'
    ? (fn) => void globalThis.setImmediate(fn)
    : (fn) => void setTimeout(fn, 0);

/** Submits in one batch at most (the server accepts up to 10000 per `task.submit_many`). */
const MAX_SUBMIT_BATCH = 1000;

interface PendingSubmit {
  body: Record<string, unknown>;
  resolve: (r: TaskReceipt) => void;
  reject: (err: unknown) => void;
}

/** The task API of a connection (`conn.tasks`). */
export class Tasks {
  readonly schedules: Schedules;
  /**
   * Submits issued in one turn of the event loop leave as one `task.submit_many` (partial: each item
   * succeeds or fails on its own), each keeping its own promise — like acks, see ack-batcher.ts for why
   * a macrotask. A lone submit goes as `task.submit`.
   */
  private pending: PendingSubmit[] = [];

  /** @internal use `conn.tasks` */
  constructor(private readonly host: DurableHost) {
    this.schedules = new Schedules(host);
  }

  private enqueue(body: Record<string, unknown>): Promise<TaskReceipt> {
    return new Promise((resolve, reject) => {
      this.pending.push({ body, resolve, reject });
      if (this.pending.length === 1) schedule(() => this.flushSubmits());
    });
  }

  /** @internal sends the submits of this tick now (before a drain or close, so none is left behind). */
  _flushSubmits(): void {
    this.flushSubmits();
  }

  private flushSubmits(): void {
    while (this.pending.length) {
      const batch = this.pending.splice(0, MAX_SUBMIT_BATCH);
      if (batch.length === 1) {
        const only = batch[0]!;
        this.host.command('task.submit', only.body).then((r) => only.resolve(r as TaskReceipt), only.reject);
        continue;
      }
      this.host.command('task.submit_many', { tasks: batch.map((b) => b.body), partial: true }).then(
        (body) => {
          const out = Array.isArray(body['tasks']) ? (body['tasks'] as Record<string, unknown>[]) : [];
          batch.forEach((b, i) => {
            const r = out[i];
            if (!r) b.reject(new MessagingError('INTERNAL', 'the server answered fewer submits than sent'));
            else if (r['error'] && typeof r['error'] === 'object')
              b.reject(errorFromWire(r['error'] as Record<string, unknown>));
            else b.resolve(r as TaskReceipt);
          });
        },
        (err: unknown) => batch.forEach((b) => b.reject(err)),
      );
    }
  }

  /** A workflow step: `tasks.sig('resize', { width: 100 }, { queue: 'images' })`. */
  sig(name: string, args?: unknown, options?: TaskSignature['options']): TaskSignature {
    const s: TaskSignature = { name };
    if (args !== undefined) s.args = args;
    if (options !== undefined) s.options = options;
    return s;
  }

  /**
   * Submits task `name` with `args`; resolves once it is stored. Submits of one event-loop turn travel
   * together (one frame, one storage step on the server).
   */
  async submit(name: string, args?: unknown, options: SubmitOptions = {}): Promise<TaskHandle> {
    const body: Record<string, unknown> = { name, ...optionArgs(options) };
    if (args !== undefined) body['args'] = args;
    const info = await this.enqueue(body);
    return new TaskHandle(this, info.id, info);
  }

  /** Submits a task that runs no sooner than `when` (a Date, or a delay in ms from now). */
  submitLater(
    name: string,
    args: unknown,
    when: Date | number,
    options: Omit<SubmitOptions, 'eta' | 'countdownMs'> = {},
  ): Promise<TaskHandle> {
    return this.submit(
      name,
      args,
      when instanceof Date ? { ...options, eta: when } : { ...options, countdownMs: when },
    );
  }

  /** Submits many tasks in one round trip. */
  async submitMany(list: TaskSignature[]): Promise<TaskHandle[]> {
    const body = await this.host.command('task.submit_many', { tasks: list.map(signatureArgs) });
    const tasks = Array.isArray(body['tasks']) ? (body['tasks'] as TaskReceipt[]) : [];
    return tasks.map((t) => new TaskHandle(this, t.id, t));
  }

  /** Steps run one after the other, each result feeding the next; `wait()` gives the last result. */
  chain(steps: TaskSignature[], options: { name?: string; resultTtlMs?: number } = {}): Promise<TaskHandle> {
    return this.workflow('chain', steps, undefined, options);
  }

  /** Tasks run in parallel; `wait()` gives every result, in order. */
  group(steps: TaskSignature[], options: { name?: string; resultTtlMs?: number } = {}): Promise<TaskHandle> {
    return this.workflow('group', steps, undefined, options);
  }

  /** A group, then `callback` with every result in order; `wait()` gives the callback's result. */
  chord(
    steps: TaskSignature[],
    callback: TaskSignature,
    options: { name?: string; resultTtlMs?: number } = {},
  ): Promise<TaskHandle> {
    return this.workflow('chord', steps, callback, options);
  }

  private async workflow(
    kind: 'chain' | 'group' | 'chord',
    steps: TaskSignature[],
    callback: TaskSignature | undefined,
    options: { name?: string; resultTtlMs?: number },
  ): Promise<TaskHandle> {
    const body: Record<string, unknown> = { kind, steps: steps.map(signatureArgs) };
    if (callback) body['callback'] = signatureArgs(callback);
    if (options.name !== undefined) body['name'] = options.name;
    if (options.resultTtlMs !== undefined) body['result_ttl_ms'] = options.resultTtlMs;
    const info = (await this.host.command('task.workflow', body)) as TaskInfo & { created?: boolean };
    return new TaskHandle(this, info.id, { ...info, created: info.created ?? true });
  }

  /** The task's current record (NotFoundError once its result expired). */
  async get(id: string): Promise<TaskInfo> {
    return (await this.host.command('task.get', { id })) as TaskInfo;
  }

  /** Cancels a task: a waiting one never runs, a running one is aborted (its `ctx.signal` fires). */
  async cancel(id: string): Promise<TaskInfo> {
    return (await this.host.command('task.cancel', { id })) as TaskInfo;
  }

  /**
   * Waits for the task to end; resolves with its result, rejects with `TaskFailedError`, or with a
   * TimeoutError after `timeoutMs`. The server holds the request, so no polling happens.
   */
  async wait(id: string, timeoutMs = 30_000): Promise<unknown> {
    return resultOf(await this.waitInfo(id, timeoutMs));
  }

  /** Like `wait`, but resolves with the final record whatever the outcome. */
  async waitInfo(id: string, timeoutMs = 30_000): Promise<TaskInfo> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = Math.max(0, deadline - Date.now());
      const chunk = Math.min(left, 3_600_000);
      const body = await this.host.command(
        'task.wait',
        { id, timeout_ms: chunk },
        { timeoutMs: chunk + 10_000 },
      );
      const task = body['task'] as TaskInfo;
      if (body['done'] === true || TERMINAL.has(task.state)) return task;
      if (Date.now() >= deadline) {
        throw new MessagingError(
          'TIMEOUT',
          `task ${id} (${task.name}) did not finish within ${timeoutMs} ms (it is ${task.state})`,
          {
            details: { id, state: task.state },
          },
        );
      }
    }
  }

  /** Tasks, newest first. */
  async list(filter: TaskListFilter = {}): Promise<TaskInfo[]> {
    const body = await this.host.command('task.list', { ...filter });
    return Array.isArray(body['tasks']) ? (body['tasks'] as TaskInfo[]) : [];
  }

  /** Counts by state, throughput and latency per queue and per task name, and the connected workers. */
  async stats(): Promise<Record<string, unknown>> {
    return this.host.command('task.stats');
  }

  /**
   * @internal Registers a worker pool: assignments (`_tasks.assign`) and aborts (`_tasks.abort`) arrive
   * as messages to `onMessage`. Re-registered automatically after a reconnect.
   */
  _openWorker(reg: WorkerRegistration, onMessage: (message: Message) => void): OpenedSubscription {
    const args: Record<string, unknown> = {
      op: 'task.worker',
      worker: reg.worker,
      pool: reg.pool,
      targets: reg.targets,
      capacity: reg.capacity,
      lock_ms: reg.lockMs,
    };
    if (reg.hostname !== undefined) args['hostname'] = reg.hostname;
    if (reg.pid !== undefined) args['pid'] = reg.pid;
    return this.host.open(
      {
        label: `task worker '${reg.worker}' (${reg.pool})`,
        openFrame: (sid, reqId) => encodeControl(FrameType.CMD, reqId, { ...args, sid }),
        wrap: (frame: MsgFrame, payload: Uint8Array, responder: Responder) =>
          new Message(frame, payload, responder),
      },
      { callback: onMessage },
    );
  }

  /** @internal worker → server reports */
  _command(op: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
    return this.host.command(op, args);
  }
}
