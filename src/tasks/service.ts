/**
 * The task service: what the front doors (CMD ops, REST, the scheduler) call. It turns requests into
 * storage operations — every state change is the storage's atomic `updateTasks`/`claimTasks`/`tickTasks`
 * (see `src/storage/task-engine.ts`, the one place transitions happen) — and reacts to their outcomes:
 * events on the bus, waking workers, resolving `wait`, advancing workflows, metrics, and one timer for
 * whatever falls due next (ETAs, retry delays, expiry, lock deadlines, result TTLs).
 */
import type { Logger } from 'pino';
import type { Broker } from '../core/broker.ts';
import type { Metrics } from '../observability/metrics.ts';
import { MessagingError } from '../protocol/errors.ts';
import {
  isTerminal,
  type ScheduleRecord,
  type TaskPatch,
  type TaskChange,
  type TaskChangeOutcome,
  type TaskFilter,
  type TaskRecord,
  type TaskState,
} from '../storage/task-types.ts';
import type { Storage, StorageEvent } from '../storage/types.ts';
import { Dispatcher, type Consumer, type ConsumerSpec, type WorkerInfo } from './dispatch.ts';
import { TaskEvents, type WorkerEvent } from './events.ts';
import { afterFailure, recordFromArgs, type FailureReport } from './model.ts';
import { Scheduler, scheduleFromArgs } from './schedules.ts';
import { TaskStats } from './stats.ts';
import { TaskTracing } from './tracing.ts';
import {
  buildWorkflow,
  planFailure,
  planGroupDone,
  planSuccess,
  planSweep,
  type Plan,
  type WorkflowInput,
} from './workflows.ts';

export interface TaskServiceOptions {
  storage: Storage;
  broker: Broker;
  metrics?: Metrics;
  logger?: Logger;
  now?: () => number;
  random?: () => number;
  /** Running tasks get this long after a restart for their workers to reconnect and heartbeat. */
  restartGraceMs?: number;
}

/** What a worker reports about one attempt. */
export interface SettleItem {
  id: string;
  attempt: number;
  ok: boolean;
  result?: unknown;
  failure?: FailureReport;
}

export interface SettleResult {
  id: string;
  ok: boolean;
  state?: TaskState;
  /** Why it was refused (the task was cancelled, or its lock was lost and it went elsewhere). */
  reason?: string;
}

const CONFLICT_RETRIES = 5;
const COARSE_MS = 250;

export class TaskService {
  readonly storage: Storage;
  readonly events: TaskEvents;
  private readonly tracing: TaskTracing;
  readonly stats = new TaskStats();
  readonly dispatcher: Dispatcher;
  readonly scheduler: Scheduler;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly waiters = new Map<string, Set<(t: TaskRecord) => void>>();
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private ticking = false;
  private tickAgain = false;
  private closed = false;
  /** Ready counts per queue as of the last housekeeping pass (for the queue-size metric). */
  private readyByQueue = new Map<string, number>();
  private countsTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: TaskServiceOptions) {
    this.storage = o.storage;
    this.now = o.now ?? Date.now;
    this.random = o.random ?? Math.random;
    this.events = new TaskEvents(o.broker);
    this.tracing = new TaskTracing(o.broker.tracer);
    this.dispatcher = new Dispatcher(o.storage, {
      now: this.now,
      claimed: (claimed, expired) => {
        const now = this.now();
        for (const t of claimed) {
          this.stats.started(t);
          this.events.state(t, now);
          if (t.lock_until !== undefined) this.dueAt(t.lock_until, true);
        }
        for (const t of expired) this.observe(t);
        return this.tracing.started(claimed);
      },
      handBack: (worker, tasks) =>
        void this.release(
          worker,
          tasks.map((t) => ({ id: t.id, attempt: t.attempts })),
        ),
      online: (info) => this.events.worker('worker.online', this.workerEvent(info)),
      offline: (info) => this.events.worker('worker.offline', this.workerEvent(info)),
      error: (err) => this.o.logger?.error({ err }, 'task dispatch failed'),
    });
    this.scheduler = new Scheduler({
      storage: o.storage,
      now: this.now,
      created: (t) => this.observe(t),
      ...(o.logger ? { logger: o.logger } : {}),
    });
  }

  /** Recovers after a (re)start: gives running tasks' workers time to come back, finishes workflows. */
  async start(): Promise<void> {
    const grace = this.o.restartGraceMs ?? 15_000;
    const running = await this.storage.listTasks({
      state: 'running',
      kind: 'task',
      limit: Number.MAX_SAFE_INTEGER,
    });
    const byWorker = new Map<string, string[]>();
    for (const t of running) {
      if (t.worker === undefined) continue;
      let list = byWorker.get(t.worker);
      if (!list) byWorker.set(t.worker, (list = []));
      list.push(t.id);
    }
    for (const [worker, ids] of byWorker) await this.storage.renewTaskLocks(worker, ids, grace);
    for (const kind of ['chain', 'group', 'chord'] as const) {
      for (const wf of await this.storage.listTasks({
        state: 'running',
        kind,
        limit: Number.MAX_SAFE_INTEGER,
      }))
        await this.sweepWorkflow(wf);
    }
    this.o.metrics?.addQueueSizeSource(() => this.queueSizes());
    this.countsTimer = setInterval(() => void this.refreshCounts(), 5000);
    this.countsTimer.unref();
    await this.refreshCounts();
    this.scheduler.start();
    this.dueAt(this.now());
    // A store shared with other servers (PostgreSQL) reports their task writes: wake what they concern.
    this.unwatch = this.storage.watch?.((event) => this.onStorageEvent(event));
  }

  private unwatch: (() => void) | undefined;

  /**
   * Another server changed tasks in the shared store. Wake-ups only — claims, ticks and schedule claims
   * are atomic in the store, so reacting twice or late is harmless: tasks it queued are claimed by our
   * workers, due times join our housekeeping, and a task it finished ends our `wait`s for it.
   */
  private onStorageEvent(event: StorageEvent): void {
    if (this.closed) return;
    switch (event.kind) {
      case 'tasks':
        this.dispatcher.wake([event.queue]);
        break;
      case 'task-due':
        this.dueAt(event.at);
        break;
      case 'task-ended': {
        if (!this.waiters.has(event.id)) break;
        void this.storage.getTask(event.id).then(
          (t) => {
            if (!t || !isTerminal(t.state)) return;
            for (const w of [...(this.waiters.get(t.id) ?? [])]) w(t);
          },
          () => undefined,
        );
        break;
      }
      case 'schedules':
        this.scheduler.wake();
        break;
      case 'resync':
        this.dispatcher.wake(this.dispatcher.list().flatMap((w) => w.queues));
        this.scheduler.wake();
        this.dueAt(this.now());
        break;
      default:
        break;
    }
  }

  close(): void {
    this.closed = true;
    this.unwatch?.();
    clearTimeout(this.timer);
    clearInterval(this.countsTimer);
    this.scheduler.close();
    for (const [id, set] of this.waiters) {
      for (const w of set)
        void this.storage.getTask(id).then(
          (t) => t && w(t),
          () => undefined,
        );
    }
    this.waiters.clear();
  }

  // ---- submitting --------------------------------------------------------------------------------

  /** Creates tasks from `task.submit` arguments; a repeated idempotency key returns the first task. */
  async submit(
    argsList: readonly Record<string, unknown>[],
  ): Promise<{ task: TaskRecord; created: boolean }[]> {
    const now = this.now();
    const records = argsList.map((a) => recordFromArgs(a, now));
    return this.submitRecords(records);
  }

  /**
   * Like `submit`, but an invalid item fails alone: the valid ones are stored (in one atomic step) and
   * each item gets its own outcome.
   */
  async submitEach(
    argsList: readonly Record<string, unknown>[],
  ): Promise<({ task: TaskRecord; created: boolean } | { error: MessagingError })[]> {
    const now = this.now();
    const out: ({ task: TaskRecord; created: boolean } | { error: MessagingError })[] = [];
    const records: TaskRecord[] = [];
    const at: number[] = [];
    argsList.forEach((a, i) => {
      try {
        records.push(recordFromArgs(a, now));
        at.push(i);
      } catch (err) {
        out[i] = {
          error: err instanceof MessagingError ? err : new MessagingError('BAD_REQUEST', String(err)),
        };
      }
    });
    const stored = records.length ? await this.submitRecords(records) : [];
    stored.forEach((r, k) => (out[at[k]!] = r));
    return out;
  }

  /**
   * One `task.submit`: the submits of one burst (the frames of one socket read, parsed in one go) are
   * stored with one storage call — one journal record, one durability wait.
   */
  submitOne(args: Record<string, unknown>): Promise<{ task: TaskRecord; created: boolean }> {
    const record = recordFromArgs(args, this.now());
    return new Promise((resolve, reject) => {
      this.burst.push({ record, resolve, reject });
      if (this.burst.length === 1) queueMicrotask(this.flushBurst);
    });
  }

  private burst: {
    record: TaskRecord;
    resolve: (r: { task: TaskRecord; created: boolean }) => void;
    reject: (err: unknown) => void;
  }[] = [];

  private readonly flushBurst = (): void => {
    const burst = this.burst;
    this.burst = [];
    this.submitRecords(burst.map((b) => b.record)).then(
      (out) => burst.forEach((b, i) => b.resolve(out[i]!)),
      (err: unknown) => burst.forEach((b) => b.reject(err)),
    );
  };

  async submitRecords(records: readonly TaskRecord[]): Promise<{ task: TaskRecord; created: boolean }[]> {
    const traced = this.tracing.submitting(records);
    let out;
    try {
      out = await this.storage.submitTasks(records);
    } catch (err) {
      traced?.(err);
      throw err;
    }
    traced?.();
    for (const r of out) if (r.created) this.observe(r.task);
    return out;
  }

  /** A chain, group or chord: the workflow record and its first children, stored together. */
  async workflow(input: WorkflowInput): Promise<{ workflow: TaskRecord; children: TaskRecord[] }> {
    const { workflow, children } = buildWorkflow(input, this.now());
    await this.storage.submitTasks([workflow, ...children]);
    for (const c of children) this.observe(c);
    return { workflow, children };
  }

  // ---- reading -----------------------------------------------------------------------------------

  async get(id: string): Promise<TaskRecord> {
    const t = await this.storage.getTask(id);
    if (!t) throw new MessagingError('NOT_FOUND', `task "${id}" does not exist (or its result expired)`);
    return t;
  }

  list(filter: TaskFilter): Promise<TaskRecord[]> {
    return this.storage.listTasks(filter);
  }

  /**
   * Resolves with the task once it has ended, or after `timeoutMs` with its current record and
   * `done: false`.
   */
  async wait(id: string, timeoutMs: number): Promise<{ task: TaskRecord; done: boolean }> {
    const t = await this.get(id);
    if (isTerminal(t.state) || timeoutMs <= 0) return { task: t, done: isTerminal(t.state) };
    return new Promise((resolve) => {
      let set = this.waiters.get(id);
      if (!set) this.waiters.set(id, (set = new Set()));
      let settled = false;
      const waiter = (task: TaskRecord): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        set.delete(waiter);
        if (set.size === 0) this.waiters.delete(id);
        resolve({ task, done: isTerminal(task.state) });
      };
      const timer = setTimeout(() => {
        void this.storage.getTask(id).then(
          (cur) => waiter(cur ?? t),
          () => waiter(t),
        );
      }, timeoutMs);
      set.add(waiter);
      // A store shared with other servers: the task may have ended there between the read above and
      // now, when their `task-ended` event found no waiter yet. One more look closes that gap.
      if (this.storage.watch) {
        void this.storage.getTask(id).then(
          (cur) => {
            if (cur && isTerminal(cur.state)) waiter(cur);
          },
          () => undefined,
        );
      }
    });
  }

  async statsSnapshot(): Promise<Record<string, unknown>> {
    const counts = await this.storage.taskCounts();
    const now = this.now();
    return { ...this.stats.snapshot(counts, now), workers: this.dispatcher.list(), at: now };
  }

  // ---- cancelling --------------------------------------------------------------------------------

  /**
   * Cancels a task (or a whole workflow). A waiting task never runs; a running one is aborted: its
   * worker gets the cancellation at once and the handler's `ctx.signal` fires. TASK_CONFLICT when it
   * has already ended.
   */
  async cancel(id: string): Promise<TaskRecord> {
    for (let attempt = 0; ; attempt++) {
      const t = await this.get(id);
      if (isTerminal(t.state))
        throw new MessagingError(
          'TASK_CONFLICT',
          `task ${id} has already ${t.state === 'succeeded' ? 'succeeded' : `ended (${t.state})`}`,
          {
            details: { id, state: t.state },
          },
        );
      const error = { name: 'TaskCancelled', message: 'cancelled by request' };
      const changes: TaskChange[] = [{ id, from: [t.state], to: 'cancelled', set: { error } }];
      if (t.kind !== 'task') {
        for (const cid of t.children ?? []) {
          changes.push({
            id: cid,
            from: ['pending', 'queued', 'running', 'retrying'],
            to: 'cancelled',
            set: { error },
          });
        }
      }
      const outcomes = await this.storage.updateTasks(changes);
      const first = outcomes[0]!;
      if (!first.ok) {
        if (attempt < CONFLICT_RETRIES) continue;
        throw new MessagingError('TASK_CONFLICT', `task ${id} kept changing; try again`);
      }
      const aborted: string[] = [];
      outcomes.forEach((o, i) => {
        if (!o.ok) return;
        if (o.from === 'running' && o.task.kind === 'task') aborted.push(o.task.id);
        // Children of a cancelled workflow: the workflow is already settled.
        this.observe(o.task, { workflowDone: i > 0 });
      });
      if (aborted.length) this.dispatcher.abort(aborted, 'cancelled');
      return first.task;
    }
  }

  // ---- schedules ---------------------------------------------------------------------------------

  async createSchedule(args: Record<string, unknown>): Promise<ScheduleRecord> {
    const rec = scheduleFromArgs(args, this.now());
    const existing = await this.storage.getSchedule(rec.id);
    if (existing) {
      // Re-creating keeps the run bookkeeping, so redeploying a schedule does not re-run a tick.
      rec.last_tick = existing.last_tick;
      rec.runs = existing.runs;
      rec.created_at = existing.created_at;
      if (existing.last_task_id !== undefined) rec.last_task_id = existing.last_task_id;
      if (rec.every_ms !== undefined && existing.every_ms === rec.every_ms && args.start_at === undefined)
        rec.anchor = existing.anchor;
    }
    const saved = await this.storage.putSchedule(rec);
    this.scheduler.wake();
    return saved;
  }

  async schedule(id: string): Promise<ScheduleRecord> {
    const s = await this.storage.getSchedule(id);
    if (!s) throw new MessagingError('NOT_FOUND', `schedule "${id}" does not exist`);
    return s;
  }

  async setScheduleEnabled(id: string, enabled: boolean): Promise<ScheduleRecord> {
    const s = await this.schedule(id);
    if (s.enabled === enabled) return s;
    const next: ScheduleRecord = { ...s, enabled };
    // A schedule re-enabled later does not fire for the ticks it slept through.
    if (enabled) next.last_tick = Math.max(s.last_tick, this.now());
    const saved = await this.storage.putSchedule(next);
    this.scheduler.wake();
    return saved;
  }

  async removeSchedule(id: string): Promise<void> {
    await this.storage.deleteSchedule(id);
  }

  /** Runs the schedule's task now, with a fresh id, outside its ticks. */
  async triggerSchedule(id: string): Promise<TaskRecord> {
    const s = await this.schedule(id);
    const [r] = await this.submitRecords([this.scheduler.triggerRecord(s, this.now())]);
    return r!.task;
  }

  // ---- workers -----------------------------------------------------------------------------------

  addConsumer(spec: ConsumerSpec): Consumer {
    return this.dispatcher.add(spec);
  }

  private checkWorker(worker: string): void {
    if (!this.dispatcher.hasWorker(worker))
      throw new MessagingError(
        'BAD_REQUEST',
        `worker "${worker}" is not registered on this server (task.worker first)`,
      );
  }

  /** A worker reports how attempts ended. Each is accepted only while that worker still holds it. */
  async settle(worker: string, items: readonly SettleItem[]): Promise<SettleResult[]> {
    this.checkWorker(worker);
    // Free the worker's slots first: its next tasks are claimed while these changes reach the disk.
    this.dispatcher.release(items.map((i) => i.id));
    const now = this.now();
    const results: SettleResult[] = [];
    const plain: { change: TaskChange; item: SettleItem; rec: TaskRecord }[] = [];
    const linked: { change: TaskChange; item: SettleItem; rec: TaskRecord }[] = [];
    const recs = await this.storage.getTasks(items.map((i) => i.id));
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      const rec = recs[i];
      if (!rec || rec.state !== 'running' || rec.worker !== worker || rec.attempts !== item.attempt) {
        results.push({ id: item.id, ok: false, reason: refusal(rec), ...(rec ? { state: rec.state } : {}) });
        continue;
      }
      const holder = { worker, attempt: item.attempt };
      let change: TaskChange;
      if (item.ok) {
        // A success clears the error an earlier attempt left; progress (if any was shown) ends at 100 %.
        const set: TaskPatch = { result: item.result ?? null };
        if (rec.progress) set.progress = { ...rec.progress, value: 1, at: now };
        if (rec.error) set.unset = ['error'];
        change = { id: item.id, from: ['running'], to: 'succeeded', set, holder };
      } else {
        const d = afterFailure(
          rec,
          item.failure ?? { error: { name: 'Error', message: 'failed' } },
          this.random,
        );
        change = { id: item.id, from: ['running'], to: d.to, set: d.set, holder };
      }
      const ends = change.to === 'succeeded' || change.to === 'failed';
      (rec.parent && ends ? linked : plain).push({ change, item, rec });
    }
    if (plain.length) {
      const outcomes = await this.storage.updateTasks(plain.map((p) => p.change));
      outcomes.forEach((o, i) => results.push(this.afterSettle(plain[i]!.rec, o, now)));
    }
    for (const l of linked) results.push(await this.settleLinked(l.rec, l.change, l.item, now));
    return results;
  }

  private afterSettle(
    rec: TaskRecord,
    o: TaskChangeOutcome,
    now: number,
    workflowDone = false,
  ): SettleResult {
    if (!o.ok)
      return { id: rec.id, ok: false, reason: refusal(o.task), ...(o.task ? { state: o.task.state } : {}) };
    const t = o.task;
    const ok = t.state === 'succeeded';
    const runMs = rec.started_at !== undefined ? now - rec.started_at : undefined;
    this.stats.attemptEnded(t, ok, runMs, now);
    const m = this.o.metrics;
    if (m) {
      if (ok) m.messagesProcessed.inc({ kind: 'task', queue: t.name });
      else m.messagesFailed.inc({ kind: 'task', queue: t.name });
      if (runMs !== undefined)
        m.messageProcessingDuration.observe({ kind: 'task', queue: t.name }, runMs / 1000);
    }
    this.observe(t, { workflowDone });
    return { id: t.id, ok: true, state: t.state };
  }

  /** A workflow child's last attempt: its change and the workflow's in one atomic step. */
  private async settleLinked(
    rec: TaskRecord,
    change: TaskChange,
    item: SettleItem,
    now: number,
  ): Promise<SettleResult> {
    for (let attempt = 0; ; attempt++) {
      const wf = await this.storage.getTask(rec.parent!.id);
      if (!wf || wf.state !== 'running') {
        const [o] = await this.storage.updateTasks([change]);
        return this.afterSettle(rec, o!, now, true);
      }
      const ended = {
        ...rec,
        state: change.to!,
        error: (change.set?.error ?? undefined) as TaskRecord['error'],
      };
      const plan = item.ok ? planSuccess(wf, rec, item.result ?? null, now) : planFailure(wf, ended);
      try {
        const outcomes = await this.storage.updateTasks([change, ...plan.changes], {
          add: plan.add,
          atomic: true,
        });
        const res = this.afterSettle(rec, outcomes[0]!, now, true);
        this.afterPlan(plan, outcomes.slice(1));
        return res;
      } catch (err) {
        if (!(err instanceof MessagingError) || err.code !== 'TASK_CONFLICT' || attempt >= CONFLICT_RETRIES)
          throw err;
        // The child itself may be the one that moved on (cancelled meanwhile): then there is nothing to do.
        const cur = await this.storage.getTask(rec.id);
        if (
          !cur ||
          cur.state !== 'running' ||
          cur.worker !== change.holder?.worker ||
          cur.attempts !== item.attempt
        )
          return { id: rec.id, ok: false, reason: refusal(cur), ...(cur ? { state: cur.state } : {}) };
      }
    }
  }

  /** After a workflow record changed: new children start, a complete group ends or calls back. */
  private afterPlan(plan: Plan, outcomes: TaskChangeOutcome[]): void {
    for (const a of plan.add) this.observe(a);
    for (const o of outcomes) {
      if (!o.ok) continue;
      this.observe(o.task);
      const wf = o.task;
      if (
        wf.state === 'running' &&
        (wf.kind === 'group' || wf.kind === 'chord') &&
        wf.remaining === 0 &&
        (wf.children?.length ?? 0) === (wf.steps?.length ?? 0)
      ) {
        void this.applyPlan(planGroupDone(wf, this.now()));
      }
    }
  }

  private async applyPlan(plan: Plan): Promise<void> {
    try {
      const outcomes = await this.storage.updateTasks(plan.changes, { add: plan.add, atomic: true });
      this.afterPlan(plan, outcomes);
    } catch (err) {
      // TASK_CONFLICT: another path got there first (the step exists, the workflow ended).
      if (!(err instanceof MessagingError && err.code === 'TASK_CONFLICT'))
        this.o.logger?.error({ err }, 'workflow step failed to apply');
    }
  }

  /** A child ended on a path that did not update its workflow (expiry, lost worker, cancellation). */
  private async advanceWorkflow(child: TaskRecord): Promise<void> {
    const wf = await this.storage.getTask(child.parent!.id);
    if (!wf || wf.state !== 'running') return;
    if (child.state === 'succeeded') return this.sweepWorkflow(wf);
    await this.applyPlan(planFailure(wf, child));
  }

  /** Recomputes a running workflow from its children (after a restart, or a missed update). */
  private async sweepWorkflow(wf: TaskRecord): Promise<void> {
    const children = new Map<string, TaskRecord>();
    for (const id of wf.children ?? []) {
      const c = await this.storage.getTask(id);
      if (c) children.set(id, c);
    }
    const plan = planSweep(wf, children, this.now());
    if (plan) await this.applyPlan(plan);
  }

  /** Heartbeat: the locks of `ids` last another `lockMs`; returns those the worker no longer holds. */
  async heartbeat(worker: string, ids: readonly string[], lockMs: number): Promise<string[]> {
    this.checkWorker(worker);
    this.dispatcher.heartbeat(worker);
    if (ids.length === 0) return [];
    const { lost } = await this.storage.renewTaskLocks(worker, ids, lockMs);
    if (lost.length) this.dispatcher.release(lost);
    this.dueAt(this.now() + lockMs, true);
    return lost;
  }

  async progress(
    worker: string,
    items: readonly { id: string; attempt: number; value: number; message?: string }[],
  ): Promise<void> {
    this.checkWorker(worker);
    const now = this.now();
    for (const p of items) {
      const progress = {
        value: Math.min(1, Math.max(0, p.value)),
        at: now,
        ...(p.message ? { message: p.message } : {}),
      };
      if (await this.storage.setTaskProgress(p.id, worker, p.attempt, progress)) {
        const t = await this.storage.getTask(p.id);
        if (t) this.events.task('task.progress', t, now);
      }
    }
  }

  /** Hands tasks back unstarted or unfinished (worker shutdown): queued again, the attempt not counted. */
  async release(worker: string, items: readonly { id: string; attempt: number }[]): Promise<SettleResult[]> {
    const outcomes = await this.storage.updateTasks(
      items.map((i) => ({
        id: i.id,
        from: ['running'] as TaskState[],
        to: 'queued' as TaskState,
        set: { attempts: i.attempt - 1 },
        holder: { worker, attempt: i.attempt },
      })),
    );
    this.dispatcher.release(items.map((i) => i.id));
    return outcomes.map((o, i) => {
      if (!o.ok) return { id: items[i]!.id, ok: false, reason: refusal(o.task) };
      this.observe(o.task);
      return { id: o.task.id, ok: true, state: o.task.state };
    });
  }

  // ---- reacting to changes -----------------------------------------------------------------------

  /** Everything that follows a task reaching its current state. */
  observe(t: TaskRecord, o: { workflowDone?: boolean } = {}): void {
    const now = this.now();
    this.events.state(t, now);
    this.tracing.changed(t);
    switch (t.state) {
      case 'queued':
        if (t.kind === 'task') this.dispatcher.wake([t.queue]);
        break;
      case 'pending':
      case 'retrying':
        if (t.eta !== undefined) this.dueAt(t.eta);
        break;
      default:
        break;
    }
    if (t.expires !== undefined && !isTerminal(t.state)) this.dueAt(t.expires);
    if (isTerminal(t.state)) {
      if (t.delete_at !== undefined) this.dueAt(t.delete_at, true);
      const set = this.waiters.get(t.id);
      if (set) for (const w of [...set]) w(t);
      if (t.parent && !o.workflowDone) {
        void this.advanceWorkflow(t).catch((err: unknown) =>
          this.o.logger?.error({ err }, 'workflow update failed'),
        );
      }
    }
  }

  /**
   * Something falls due at `at`: make sure housekeeping runs then. `coarse` (lock deadlines, result
   * TTLs) rounds up to the next COARSE_MS boundary, so a stream of finishing tasks costs a few passes a
   * second instead of one per task; ETAs and retry delays keep a precise timer.
   */
  private dueAt(at: number, coarse = false): void {
    if (coarse) at = Math.ceil(at / COARSE_MS) * COARSE_MS;
    if (this.closed || at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(this.tick, Math.max(0, at - this.now()));
    this.timer.unref();
  }

  private readonly tick = (): void => {
    this.timerAt = Infinity;
    void this.runTick();
  };

  private async runTick(): Promise<void> {
    if (this.closed) return;
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = true;
    try {
      const r = await this.storage.tickTasks((t) => {
        const lock = t.lock_until !== undefined ? new Date(t.lock_until).toISOString() : 'unknown';
        return afterFailure(
          t,
          {
            error: {
              name: 'WorkerLostError',
              message: `worker ${t.worker ?? '?'} stopped renewing its lock (expired ${lock})`,
            },
          },
          this.random,
        );
      });
      const now = this.now();
      for (const t of r.queued) this.observe(t);
      for (const t of r.expired) this.observe(t);
      if (r.stalled.length) {
        this.dispatcher.release(r.stalled.map((t) => t.id));
        for (const t of r.stalled) {
          this.stats.attemptEnded(t, false, undefined, now);
          this.o.metrics?.messagesFailed.inc({ kind: 'task', queue: t.name });
          this.observe(t);
        }
      }
      if (r.next_due_at !== null) this.dueAt(r.next_due_at);
      if (r.next_housekeeping_at !== null) this.dueAt(r.next_housekeeping_at, true);
    } catch (err) {
      this.o.logger?.error({ err }, 'task housekeeping failed');
      this.dueAt(this.now() + 1000);
    } finally {
      this.ticking = false;
    }
    if (this.tickAgain) {
      this.tickAgain = false;
      this.dueAt(this.now());
    }
  }

  private async refreshCounts(): Promise<void> {
    try {
      const counts = await this.storage.taskCounts();
      const m = new Map<string, number>();
      for (const [q, c] of Object.entries(counts.queues)) m.set(q, c.queued);
      this.readyByQueue = m;
    } catch {
      // The storage is closing; keep the last figures.
    }
  }

  private *queueSizes(): Iterable<{ kind: 'task'; queue: string; size: number }> {
    for (const [queue, size] of this.readyByQueue) yield { kind: 'task', queue, size };
  }

  private workerEvent(info: WorkerInfo): Omit<WorkerEvent, 'event'> {
    const e: Omit<WorkerEvent, 'event'> = {
      worker: info.worker,
      at: this.now(),
      queues: info.queues,
      pools: info.pools,
    };
    if (info.hostname !== undefined) e.hostname = info.hostname;
    if (info.pid !== undefined) e.pid = info.pid;
    return e;
  }
}

function refusal(t: TaskRecord | undefined): string {
  if (!t) return 'the task no longer exists';
  if (t.state === 'cancelled') return 'the task was cancelled';
  if (t.state === 'running')
    return 'the task is held by another attempt (its lock ran out and it was retried)';
  return `the task is ${t.state}`;
}
