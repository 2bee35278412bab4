/**
 * The worker runtime, used in-process (`new Worker(conn, handlers, options)`) and by the
 * `messaging_worker` binary. Modelled on BullMQ's worker loop:
 *
 * - **Pools.** `realtime` (the default), `batch`, `background` and `cpu`, each with its own concurrency
 *   and its own consumer on the server, so a flood of batch work never delays realtime tasks. A
 *   handler's pool comes from the handler (`{ pool: 'batch', handler }`, `{ cpu: true, handler }`), else
 *   from its queue (`queuePools`), else `realtime`. `cpu` handlers run in worker_threads.
 * - **Bounded in-flight work.** A pool holds at most `concurrency + prefetch` tasks: the server pushes
 *   that many, highest priority first; the pool runs `concurrency` at a time, in the order received.
 * - **Locks and heartbeats.** A task a worker holds is `running` under a lock of `lockMs`, renewed every
 *   `heartbeatMs`. A worker that dies stops renewing, and the server retries its tasks once the locks run
 *   out. A heartbeat answer naming tasks the worker no longer holds aborts them here.
 * - **Steering errors.** `UnrecoverableError` fails the task at once; `RetryLaterError(ms)` retries after
 *   exactly that delay; anything else retries with the task's backoff until `max_retries` is used up.
 * - **Cancellation and timeouts** reach the handler as `ctx.signal`; a timed-out attempt is reported as a
 *   failed attempt (`TimeoutError`) at once, whether or not the handler stops.
 * - **Graceful shutdown.** `close()` stops taking tasks, hands back the ones not started, lets running
 *   ones finish until the deadline, then aborts and hands back the rest.
 */
import { availableParallelism, hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Connection } from '../client/connection.ts';
import { TypedEmitter } from '../client/events.ts';
import type { Message } from '../client/message.ts';
import type { OpenedSubscription } from '../client/opened-subscription.ts';
import type { TaskAssignment } from '../client/tasks.ts';
import { describeFailure, TaskAbortedError, TaskTimeoutError, type ReportedFailure } from './errors.ts';
import {
  POOL_NAMES,
  resolveHandlers,
  type Handlers,
  type PoolName,
  type ResolvedHandler,
  type TaskContext,
} from './handlers.ts';
import { Reporter, type SettleOutcome } from './reporter.ts';
import { ThreadPool } from './thread-pool.ts';

export interface WorkerOptions {
  /** Queues to take tasks from (default `['default']`). */
  queues?: string[];
  /** Concurrency of the realtime pool, and of batch/background unless `pools` says otherwise. */
  concurrency?: number;
  /** Concurrency per pool; `cpu` is the number of worker threads (default: CPU count). */
  pools?: Partial<Record<PoolName, number>>;
  /** Queue → pool: every task of that queue runs there unless its handler names a pool. */
  queuePools?: Record<string, PoolName>;
  /** Tasks a pool holds beyond its concurrency, ready to start (default: its concurrency). */
  prefetch?: number;
  /** Lock duration of a held task (default 30 s); renewed every `heartbeatMs` (default lockMs / 3). */
  lockMs?: number;
  heartbeatMs?: number;
  /** `close()`'s default deadline for running tasks (default 30 s). */
  shutdownTimeoutMs?: number;
  /** After an abort, how long a handler may take to stop before its slot is given up (default 5 s). */
  abortGraceMs?: number;
  /** This worker's id (default `<hostname>-<pid>-<random>`); stable across reconnects. */
  id?: string;
  /** The handlers module's path or file: URL; needed for `cpu` handlers (threads import it). */
  handlersModule?: string;
  /** Start taking tasks at once (default true); otherwise call `start()`. */
  autostart?: boolean;
}

export interface WorkerEvents {
  ready: { worker: string; pools: PoolName[] };
  started: { task: TaskAssignment; pool: PoolName };
  /** The server recorded the success. */
  completed: { task: TaskAssignment; result: unknown };
  /** The server recorded the failed attempt; `state` is `retrying` or `failed`. */
  failed: { task: TaskAssignment; error: ReportedFailure['error']; state: string | undefined };
  error: Error;
  closed: { finished: number; handedBack: number };
}

interface Running {
  task: TaskAssignment;
  abort: LazyAbort;
  /** The outcome was reported (or must not be: the task went elsewhere). */
  reported: boolean;
  /** Still occupying a concurrency slot. */
  occupying: boolean;
  timer: NodeJS.Timeout | undefined;
}

class Pool {
  sub: OpenedSubscription | undefined;
  readonly backlog: TaskAssignment[] = [];
  readonly running = new Map<string, Running>();
  active = 0;

  constructor(
    readonly name: PoolName,
    readonly concurrency: number,
    readonly capacity: number,
    readonly targets: { queue: string; names?: string[]; exclude?: string[] }[],
  ) {}
}

function defaultId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

export class Worker extends TypedEmitter<WorkerEvents> {
  readonly id: string;
  private readonly handlers: Map<string, ResolvedHandler>;
  private readonly pools: Pool[];
  private readonly reporter: Reporter;
  private readonly lockMs: number;
  private readonly heartbeatMs: number;
  private readonly abortGraceMs: number;
  private readonly threads: ThreadPool | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private state: 'new' | 'running' | 'closing' | 'closed' = 'new';
  private startPromise: Promise<void> | undefined;
  private closePromise: Promise<{ finished: number; handedBack: number }> | undefined;
  private finished = 0;
  private handedBack = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly conn: Connection,
    handlers: Handlers,
    private readonly options: WorkerOptions = {},
  ) {
    super();
    this.id = options.id ?? defaultId();
    this.handlers = resolveHandlers(handlers);
    this.lockMs = options.lockMs ?? 30_000;
    this.heartbeatMs = options.heartbeatMs ?? Math.max(50, Math.floor(this.lockMs / 3));
    this.abortGraceMs = options.abortGraceMs ?? 5000;
    this.pools = this.planPools();
    const cpu = this.pools.find((p) => p.name === 'cpu');
    if (cpu) {
      if (!options.handlersModule)
        throw new TypeError(
          'cpu handlers run in worker threads, which load the handlers module: pass options.handlersModule',
        );
      this.threads = new ThreadPool(
        options.handlersModule,
        cpu.concurrency,
        Math.min(this.abortGraceMs, 1000),
      );
    }
    this.reporter = new Reporter(
      this.id,
      (op, args) => this.conn.tasks._command(op, args),
      (err) => this.emit('error', err instanceof Error ? err : new Error(String(err))),
      () => !this.conn.isClosed,
    );
    if (options.autostart !== false) {
      this.start().catch((err: unknown) =>
        this.emit('error', err instanceof Error ? err : new Error(String(err))),
      );
    }
  }

  /** Which pools take what: one claim target per queue, by task name. */
  private planPools(): Pool[] {
    const o = this.options;
    const queues = o.queues?.length ? o.queues : ['default'];
    const base = o.concurrency ?? availableParallelism();
    const size = (p: PoolName): number => o.pools?.[p] ?? (p === 'cpu' ? availableParallelism() : base);
    const declared = new Map<string, PoolName>();
    for (const h of this.handlers.values()) if (h.pool) declared.set(h.name, h.pool);
    const pools: Pool[] = [];
    for (const p of POOL_NAMES) {
      const concurrency = size(p);
      if (concurrency <= 0) continue;
      const targets: Pool['targets'] = [];
      const mine = [...declared].filter(([, dp]) => dp === p).map(([n]) => n);
      const others = [...declared].filter(([, dp]) => dp !== p).map(([n]) => n);
      for (const queue of queues) {
        const queuePool = o.queuePools?.[queue] ?? 'realtime';
        if (queuePool === p) targets.push(others.length ? { queue, exclude: others } : { queue });
        else if (mine.length) targets.push({ queue, names: mine });
      }
      if (targets.length === 0) continue;
      pools.push(new Pool(p, concurrency, concurrency + Math.max(0, o.prefetch ?? concurrency), targets));
    }
    return pools;
  }

  /** The pools this worker runs and their concurrency. */
  get poolSizes(): Partial<Record<PoolName, number>> {
    return Object.fromEntries(this.pools.map((p) => [p.name, p.concurrency]));
  }

  /** Tasks being run now. */
  get running(): number {
    return this.pools.reduce((n, p) => n + p.active, 0);
  }

  /** Resolves once the server accepted every pool (starting the worker if `autostart` was false). */
  ready(): Promise<void> {
    return this.start();
  }

  /** Registers the pools with the server; resolves once it accepted them. */
  start(): Promise<void> {
    this.startPromise ??= (async () => {
      if (this.state !== 'new') return;
      this.state = 'running';
      for (const pool of this.pools) {
        pool.sub = this.conn.tasks._openWorker(
          {
            worker: this.id,
            pool: pool.name,
            targets: pool.targets,
            capacity: pool.capacity,
            lockMs: this.lockMs,
            hostname: hostname(),
            pid: process.pid,
          },
          (m) => this.onMessage(pool, m),
        );
      }
      await Promise.all(this.pools.map((p) => p.sub!.ready()));
      this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatMs);
      this.heartbeatTimer.unref();
      this.emit('ready', { worker: this.id, pools: this.pools.map((p) => p.name) });
    })();
    return this.startPromise;
  }

  private onMessage(pool: Pool, m: Message): void {
    let body: { tasks?: TaskAssignment[]; ids?: string[]; reason?: string };
    try {
      body = m.json();
    } catch {
      return;
    }
    if (m.topic === '_tasks.assign') {
      for (const t of body.tasks ?? []) pool.backlog.push(t);
      if (this.state === 'closing') this.handBackBacklog(pool);
      else this.drain(pool);
    } else if (m.topic === '_tasks.abort') {
      this.abort(body.ids ?? [], body.reason === 'cancelled' ? 'cancelled' : 'lost');
    }
  }

  private drain(pool: Pool): void {
    while (pool.active < pool.concurrency && pool.backlog.length && this.state === 'running') {
      this.run(pool, pool.backlog.shift()!);
    }
  }

  private run(pool: Pool, task: TaskAssignment): void {
    const abort = new LazyAbort(() => {
      this.onAborted(r);
      // A handler that ignores its signal keeps its slot only until the grace period ends.
      const grace = setTimeout(() => this.done(pool, r), this.abortGraceMs);
      grace.unref();
    });
    const r: Running = { task, abort, reported: false, occupying: true, timer: undefined };
    pool.running.set(task.id, r);
    pool.active++;
    this.emit('started', { task, pool: pool.name });
    const handler = this.handlers.get(task.name);
    if (!handler) {
      const known = [...this.handlers.keys()].join(', ') || 'none';
      this.report(r, {
        ok: false,
        failure: {
          error: {
            name: 'HandlerNotFoundError',
            message: `no handler for task "${task.name}" on worker ${this.id} (it has: ${known})`,
          },
          unrecoverable: true,
        },
      });
      this.done(pool, r);
      return;
    }
    if (task.timeout_ms !== undefined) {
      const ms = task.timeout_ms;
      r.timer = setTimeout(() => abort.abort(new TaskTimeoutError(ms)), ms);
    }
    const reporter = this.reporter;
    const ctx: TaskContext = {
      id: task.id,
      name: task.name,
      queue: task.queue,
      attempt: task.attempts,
      get signal() {
        return abort.signal;
      },
      previous: task.previous,
      task,
      traceparent: task.traceparent,
      progress: (value, message) => {
        if (!r.reported) reporter.setProgress(task, value, message);
      },
    };
    const work =
      handler.pool === 'cpu' && this.threads
        ? this.threads.run(task, abort.signal, ctx.progress)
        : new Promise<unknown>((resolve) => resolve(handler.fn(task.args, ctx)));
    work
      .then(
        (result) => this.report(r, { ok: true, result }),
        (err: unknown) =>
          this.report(r, {
            ok: false,
            failure: isReported(err) ? err : describeFailure(err),
          }),
      )
      .finally(() => this.done(pool, r));
  }

  /** The abort reached the task: report what it means right away. */
  private onAborted(r: Running): void {
    if (r.reported) return;
    const reason: unknown = r.abort.reason;
    if (reason instanceof TaskTimeoutError) {
      this.report(r, { ok: false, failure: { error: { name: 'TimeoutError', message: reason.message } } });
    } else if (reason instanceof TaskAbortedError && reason.reason === 'cancelled') {
      // The server has cancelled it already; reporting frees the slot it counts for this worker.
      this.report(r, { ok: false, failure: { error: { name: reason.name, message: reason.message } } });
    } else {
      // lost (it went elsewhere) or shutdown (handed back by close()): nothing to report.
      r.reported = true;
    }
  }

  private report(
    r: Running,
    outcome: { ok: true; result: unknown } | { ok: false; failure: ReportedFailure },
  ): void {
    if (r.reported) return;
    r.reported = true;
    clearTimeout(r.timer);
    this.finished++;
    const task = r.task;
    if (outcome.ok) {
      this.reporter.succeeded(task, outcome.result, (res) => {
        if (res.ok) this.emit('completed', { task, result: outcome.result });
      });
    } else {
      this.reporter.failed(task, outcome.failure, (res: SettleOutcome) => {
        if (res.ok) this.emit('failed', { task, error: outcome.failure.error, state: res.state });
      });
    }
  }

  private done(pool: Pool, r: Running): void {
    if (!r.occupying) return;
    r.occupying = false;
    clearTimeout(r.timer);
    pool.running.delete(r.task.id);
    pool.active--;
    this.drain(pool);
    if (this.running === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** Aborts held tasks: cancelled on the server, or no longer this worker's. */
  private abort(ids: readonly string[], why: 'cancelled' | 'lost'): void {
    const set = new Set(ids);
    for (const pool of this.pools) {
      for (let i = pool.backlog.length - 1; i >= 0; i--) {
        const t = pool.backlog[i]!;
        if (!set.has(t.id)) continue;
        pool.backlog.splice(i, 1);
        // Not started: a cancelled one is still counted against this worker until reported.
        if (why === 'cancelled')
          this.reporter.failed(
            t,
            { error: { name: 'TaskCancelled', message: 'cancelled before it started' } },
            () => undefined,
          );
      }
      for (const id of ids) {
        const r = pool.running.get(id);
        if (!r || r.abort.aborted) continue;
        r.abort.abort(
          new TaskAbortedError(
            why,
            why === 'cancelled'
              ? `task ${id} was cancelled`
              : `task ${id} is no longer held by this worker (lock lost)`,
          ),
        );
      }
    }
  }

  private heartbeat(): void {
    const ids: string[] = [];
    for (const pool of this.pools) {
      for (const t of pool.backlog) ids.push(t.id);
      for (const r of pool.running.values()) if (!r.reported) ids.push(r.task.id);
    }
    this.conn.tasks._command('task.heartbeat', { worker: this.id, ids, lock_ms: this.lockMs }).then(
      (body) => {
        const lost = Array.isArray(body['lost']) ? (body['lost'] as string[]) : [];
        if (lost.length) this.abort(lost, 'lost');
      },
      () => undefined, // disconnected: the next beat after the reconnect renews the locks
    );
  }

  private handBackBacklog(pool: Pool): void {
    for (const t of pool.backlog.splice(0)) {
      this.handedBack++;
      this.reporter.release(t);
    }
  }

  /**
   * Graceful shutdown: takes no new tasks, hands back those not started, waits for running ones until
   * `timeoutMs`, then aborts the rest (`ctx.signal`) and hands them back. Resolves once the server has
   * every report. The connection stays open (it is the caller's).
   */
  close(options: { timeoutMs?: number } = {}): Promise<{ finished: number; handedBack: number }> {
    this.closePromise ??= (async () => {
      const timeoutMs = options.timeoutMs ?? this.options.shutdownTimeoutMs ?? 30_000;
      if (this.state === 'new') {
        this.state = 'closed';
        await this.threads?.close();
        return { finished: 0, handedBack: 0 };
      }
      await this.startPromise?.catch(() => undefined);
      this.state = 'closing';
      // No new assignments once the server has processed the UNSUBs.
      await Promise.all(this.pools.map((p) => p.sub?.drain().catch(() => undefined)));
      for (const pool of this.pools) this.handBackBacklog(pool);
      if (this.running > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
        ]);
        clearTimeout(timer);
      }
      for (const pool of this.pools) {
        for (const r of pool.running.values()) {
          if (r.reported) continue;
          r.reported = true;
          this.handedBack++;
          this.reporter.release(r.task);
          r.abort.abort(new TaskAbortedError('shutdown', `worker ${this.id} is shutting down`));
        }
      }
      await this.reporter.idle();
      clearInterval(this.heartbeatTimer);
      this.reporter.close();
      await this.threads?.close();
      this.state = 'closed';
      const summary = { finished: this.finished, handedBack: this.handedBack };
      this.emit('closed', summary);
      return summary;
    })();
    return this.closePromise;
  }
}

function isReported(err: unknown): err is ReportedFailure {
  return (
    !!err &&
    typeof err === 'object' &&
    !(err instanceof Error) &&
    'error' in err &&
    typeof (err as { error: unknown }).error === 'object'
  );
}

/**
 * An AbortController made only when a handler looks at `ctx.signal`: most never do, and one per task
 * is measurable at thousands of tasks a second. Aborting calls `onAbort` either way.
 */
class LazyAbort {
  private controller: AbortController | undefined;
  aborted = false;
  reason: unknown;

  constructor(private readonly onAbort: () => void) {}

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
    this.onAbort();
  }
}
