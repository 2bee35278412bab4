/**
 * The task half of the `Storage` implementation every engine shares. This is the one place where a task
 * changes state: every change goes through `transitionFact()` (task-rules.ts), which checks `TASK_TRANSITIONS` and fills the
 * fields that state implies, and each operation writes its changes as one journal record — applied
 * whole or not at all, like one of BullMQ's Lua scripts. Callers (the task service) say which change
 * they want and from which states; a change whose task has moved on meanwhile is refused, never merged.
 */
import { MessagingError } from '../protocol/errors.ts';
import type { TaskRec, TaskSetFact } from './internal/records.ts';
import type { TaskEntry } from './internal/task-state.ts';
import { QueueEngine } from './queue-engine.ts';
import { checkTaskRecord, conflict, transitionFact } from './task-rules.ts';
import {
  isTerminal,
  type ClaimTarget,
  type ScheduleRecord,
  type TaskChange,
  type TaskChangeOutcome,
  type TaskCounts,
  type TaskFilter,
  type TaskPatch,
  type TaskProgress,
  type TaskRecord,
  type TaskState,
  type TaskTickResult,
} from './task-types.ts';

/** Records in the table are replaced, never mutated (see TaskEntry), so handing one out is safe. */
function copy(r: TaskRecord): TaskRecord {
  return r;
}

export abstract class TaskEngine extends QueueEngine {
  private taskRec(rec: TaskRec): void {
    this.emit(rec);
  }

  // ---- creating ----------------------------------------------------------------------------------

  /**
   * Stores new task records atomically. A record whose id, or idempotency key, is already stored is not
   * stored again: the existing record comes back with `created: false`. With `tick`, the same journal
   * record claims that schedule tick (see `claimScheduleTick`).
   */
  async submitTasks(records: readonly TaskRecord[]): Promise<{ task: TaskRecord; created: boolean }[]> {
    await this.enter();
    const t = this.state.tasks;
    const out: { task: TaskRecord; created: boolean }[] = [];
    const fresh: TaskRecord[] = [];
    const batchKeys = new Map<string, TaskRecord>();
    const batchIds = new Map<string, TaskRecord>();
    for (const r of records) {
      checkTaskRecord(r);
      const known =
        t.get(r.id)?.rec ??
        batchIds.get(r.id) ??
        (r.idempotency_key !== undefined
          ? (batchKeys.get(r.idempotency_key) ?? t.get(t.byKey.get(r.idempotency_key) ?? '')?.rec)
          : undefined);
      if (known) {
        out.push({ task: known, created: false });
        continue;
      }
      fresh.push(r);
      batchIds.set(r.id, r);
      if (r.idempotency_key !== undefined) batchKeys.set(r.idempotency_key, r);
      out.push({ task: r, created: true });
    }
    if (fresh.length) {
      this.taskRec({ t: 'task', add: fresh });
      await this.durable();
    }
    return out.map((o) => ({ task: copy(t.get(o.task.id)?.rec ?? o.task), created: o.created }));
  }

  // ---- changing ----------------------------------------------------------------------------------

  /**
   * Applies each change whose task is still in one of its `from` states (and, with `holder`, still held
   * by that worker's attempt), plus `add` — all in one journal record. With `atomic`, one refused change
   * refuses them all with TASK_CONFLICT.
   */
  async updateTasks(
    changes: readonly TaskChange[],
    options: { add?: readonly TaskRecord[]; atomic?: boolean } = {},
  ): Promise<TaskChangeOutcome[]> {
    await this.enter();
    const t = this.state.tasks;
    const now = this.now();
    const outcomes: (TaskChangeOutcome | { ok: true; id: string; from: TaskState })[] = [];
    const facts: TaskSetFact[] = [];
    const seen = new Set<string>();
    for (const c of changes) {
      const e = t.get(c.id);
      if (!e) {
        outcomes.push({ ok: false, reason: 'not_found' });
        continue;
      }
      const from = e.rec.state;
      if (!c.from.includes(from) || seen.has(c.id)) {
        outcomes.push({ ok: false, reason: 'state', task: copy(e.rec) });
        continue;
      }
      if (c.holder && (e.rec.worker !== c.holder.worker || e.rec.attempts !== c.holder.attempt)) {
        outcomes.push({ ok: false, reason: 'holder', task: copy(e.rec) });
        continue;
      }
      facts.push(transitionFact(e.rec, c.to, c.set, now));
      seen.add(c.id);
      outcomes.push({ ok: true, id: c.id, from });
    }
    if (options.atomic && outcomes.some((o) => !o.ok)) {
      const refused = changes.filter((_, i) => !outcomes[i]!.ok).map((c) => c.id);
      throw conflict(`task ${refused.join(', ')} changed meanwhile; nothing was applied`, { ids: refused });
    }
    for (const r of options.add ?? []) {
      checkTaskRecord(r);
      if (t.get(r.id)) throw conflict(`task ${r.id} already exists`);
    }
    if (facts.length || options.add?.length) {
      const rec: TaskRec = { t: 'task' };
      if (facts.length) rec.set = facts;
      if (options.add?.length) rec.add = [...options.add];
      this.taskRec(rec);
      await this.durable();
    }
    return outcomes.map((o) =>
      'id' in o ? { ok: true, from: o.from, task: copy(t.get(o.id)!.rec) } : (o as TaskChangeOutcome),
    );
  }

  /**
   * A worker takes up to `max` ready tasks among `targets`: highest priority first, FIFO within a
   * priority. Each becomes `running`, held by `worker` until `now + lockMs` (renewed by heartbeats).
   * A task past its `expires` met on the way becomes `expired` instead. The claim is journaled but not
   * waited for: after a crash an unjournaled claim simply leaves the task queued, to be claimed again.
   */
  async claimTasks(
    targets: readonly ClaimTarget[],
    worker: string,
    max: number,
    lockMs: number,
  ): Promise<{ claimed: TaskRecord[]; expired: TaskRecord[] }> {
    await this.enter();
    const t = this.state.tasks;
    const now = this.now();
    const facts: TaskSetFact[] = [];
    const picked: TaskEntry[] = [];
    const expired: TaskEntry[] = [];
    // Entries leave `queued` only when the record is applied, so collect first and apply once.
    const taken = new Set<number>();
    while (picked.length < max) {
      const e = t.popReady(targets);
      if (!e) break;
      if (taken.has(e.h)) continue;
      taken.add(e.h);
      if (e.rec.expires !== undefined && e.rec.expires <= now) {
        facts.push(transitionFact(e.rec, 'expired', undefined, now));
        expired.push(e);
        continue;
      }
      facts.push(
        transitionFact(
          e.rec,
          'running',
          { worker, lock_until: now + lockMs, attempts: e.rec.attempts + 1, started_at: now },
          now,
        ),
      );
      picked.push(e);
    }
    if (facts.length === 0) return { claimed: [], expired: [] };
    this.taskRec({ t: 'task', set: facts });
    if (expired.length) await this.durable();
    else this.flushInBackground();
    return { claimed: picked.map((e) => copy(e.rec)), expired: expired.map((e) => copy(e.rec)) };
  }

  /**
   * Heartbeat: extends the locks of the tasks `worker` still holds; `lost` are those it no longer holds
   * (finished, cancelled, or given to another worker after its lock ran out). Not journaled.
   */
  async renewTaskLocks(
    worker: string,
    ids: readonly string[],
    lockMs: number,
  ): Promise<{ held: string[]; lost: string[] }> {
    await this.enter();
    const t = this.state.tasks;
    const until = this.now() + lockMs;
    const held: string[] = [];
    const lost: string[] = [];
    for (const id of ids) {
      const e = t.get(id);
      if (e && e.rec.state === 'running' && e.rec.worker === worker) {
        t.renewLock(e, until);
        held.push(id);
      } else lost.push(id);
    }
    return { held, lost };
  }

  /** Live progress of a running attempt; false when that attempt no longer runs. Not journaled. */
  async setTaskProgress(
    id: string,
    worker: string,
    attempt: number,
    progress: TaskProgress,
  ): Promise<boolean> {
    await this.enter();
    const e = this.state.tasks.get(id);
    if (!e || e.rec.state !== 'running' || e.rec.worker !== worker || e.rec.attempts !== attempt)
      return false;
    this.state.tasks.setProgress(e, progress);
    return true;
  }

  // ---- reading -----------------------------------------------------------------------------------

  async getTask(id: string): Promise<TaskRecord | undefined> {
    await this.enter();
    const e = this.state.tasks.get(id);
    return e ? copy(e.rec) : undefined;
  }

  /** Several records at once (undefined for unknown ids), in the order asked. */
  async getTasks(ids: readonly string[]): Promise<(TaskRecord | undefined)[]> {
    await this.enter();
    const t = this.state.tasks;
    return ids.map((id) => {
      const e = t.get(id);
      return e ? copy(e.rec) : undefined;
    });
  }

  /** Newest first. */
  async listTasks(filter: TaskFilter = {}): Promise<TaskRecord[]> {
    await this.enter();
    const limit = filter.limit ?? 100;
    const out: TaskRecord[] = [];
    const all = [...this.state.tasks.byId.values()];
    for (let i = all.length - 1; i >= 0 && out.length < limit; i--) {
      const r = all[i]!.rec;
      if (filter.state !== undefined && r.state !== filter.state) continue;
      if (filter.queue !== undefined && r.queue !== filter.queue) continue;
      if (filter.name !== undefined && r.name !== filter.name) continue;
      if (filter.kind !== undefined && r.kind !== filter.kind) continue;
      if (filter.tag !== undefined && !r.tags?.includes(filter.tag)) continue;
      out.push(copy(r));
    }
    return out;
  }

  async taskCounts(): Promise<TaskCounts> {
    await this.enter();
    const t = this.state.tasks;
    return {
      queues: Object.fromEntries([...t.queueCounts].map(([k, v]) => [k, { ...v }])),
      names: Object.fromEntries([...t.nameCounts].map(([k, v]) => [k, { ...v }])),
    };
  }

  // ---- housekeeping ------------------------------------------------------------------------------

  /**
   * Due ETAs and retry delays become `queued` (or `expired` when their expiry came first), waiting tasks
   * past `expires` become `expired`, finished records past their TTL are removed — one journal record.
   * A running task whose lock ran out (its worker died or hung) goes where `onStalled` says — the caller
   * owns the retry policy — in the same record. The record is not waited for (see below).
   */
  async tickTasks(
    onStalled: (task: TaskRecord) => { to: TaskState; set?: TaskPatch } = () => ({ to: 'queued' }),
  ): Promise<TaskTickResult> {
    await this.enter();
    const t = this.state.tasks;
    const now = this.now();
    const facts: TaskSetFact[] = [];
    const queued: TaskEntry[] = [];
    const expired: TaskEntry[] = [];
    const touched = new Set<number>();
    const del: string[] = [];
    const isDue = (k: number, h: number) => !touched.has(h) && t.isDue(k, h);
    while (t.top(t.due, isDue) <= now) {
      const e = t.at(t.due.peekVal())!;
      t.due.pop();
      touched.add(e.h);
      if (e.rec.expires !== undefined && e.rec.expires <= now) {
        facts.push(transitionFact(e.rec, 'expired', undefined, now));
        expired.push(e);
      } else {
        facts.push(transitionFact(e.rec, 'queued', undefined, now));
        queued.push(e);
      }
    }
    const isExpiring = (k: number, h: number) => !touched.has(h) && t.isExpiring(k, h);
    while (t.top(t.expiry, isExpiring) <= now) {
      const e = t.at(t.expiry.peekVal())!;
      t.expiry.pop();
      touched.add(e.h);
      facts.push(transitionFact(e.rec, 'expired', undefined, now));
      expired.push(e);
    }
    const stalled: TaskEntry[] = [];
    const isLocked = (k: number, h: number) => !touched.has(h) && t.isLocked(k, h);
    while (t.top(t.locks, isLocked) <= now) {
      const e = t.at(t.locks.peekVal())!;
      t.locks.pop();
      touched.add(e.h);
      const d = onStalled(copy(e.rec));
      facts.push(transitionFact(e.rec, d.to, d.set, now));
      stalled.push(e);
    }
    while (t.top(t.purge, (k, h) => t.isPurgeable(k, h)) <= now) {
      const e = t.at(t.purge.peekVal())!;
      t.purge.pop();
      del.push(e.rec.id);
    }
    if (facts.length || del.length) {
      const rec: TaskRec = { t: 'task' };
      if (facts.length) rec.set = facts;
      if (del.length) rec.del = del;
      this.taskRec(rec);
      // Not waited for: every change here is derived from the clock and the records, so one lost in a
      // crash is simply made again after the restart — and a due task reaches its worker without an
      // fsync in between (anything later that depends on it is journaled after it).
      this.flushInBackground();
    }
    t.compactHeaps();
    const next = Math.min(
      t.top(t.due, (k, h) => t.isDue(k, h)),
      t.top(t.expiry, (k, h) => t.isExpiring(k, h)),
    );
    const later = Math.min(
      t.top(t.locks, (k, h) => t.isLocked(k, h)),
      t.top(t.purge, (k, h) => t.isPurgeable(k, h)),
    );
    return {
      queued: queued.map((e) => copy(e.rec)),
      expired: expired.map((e) => copy(e.rec)),
      stalled: stalled.map((e) => copy(e.rec)),
      removed: del.length,
      next_due_at: next === Infinity ? null : next,
      next_housekeeping_at: later === Infinity ? null : later,
    };
  }

  /** Removes finished task records now (their TTL aside). Returns how many were removed. */
  async deleteTasks(ids: readonly string[]): Promise<number> {
    await this.enter();
    const t = this.state.tasks;
    const del = ids.filter((id) => {
      const e = t.get(id);
      return e !== undefined && isTerminal(e.rec.state);
    });
    if (del.length === 0) return 0;
    this.taskRec({ t: 'task', del });
    await this.durable();
    return del.length;
  }

  // ---- schedules ---------------------------------------------------------------------------------

  /** Creates or replaces a schedule (its run bookkeeping is kept when it exists). */
  async putSchedule(schedule: ScheduleRecord): Promise<ScheduleRecord> {
    await this.enter();
    if (typeof schedule.id !== 'string' || schedule.id.length === 0)
      throw new MessagingError('BAD_REQUEST', 'schedule id must be a non-empty string');
    this.emit({ t: 'sched', put: schedule });
    await this.durable();
    return { ...this.state.tasks.schedules.get(schedule.id)! };
  }

  async deleteSchedule(id: string): Promise<void> {
    await this.enter();
    if (!this.state.tasks.schedules.has(id))
      throw new MessagingError('NOT_FOUND', `schedule "${id}" does not exist`);
    this.emit({ t: 'sched', del: id });
    await this.durable();
  }

  async getSchedule(id: string): Promise<ScheduleRecord | undefined> {
    await this.enter();
    const s = this.state.tasks.schedules.get(id);
    return s ? { ...s } : undefined;
  }

  async listSchedules(): Promise<ScheduleRecord[]> {
    await this.enter();
    return [...this.state.tasks.schedules.values()]
      .map((s) => ({ ...s }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Claims tick `tick` (its due time) of a schedule and stores the run's task in the same journal
   * record: true for exactly one caller per tick, however many schedulers race for it. A tick at or
   * before the last claimed one, or of a disabled schedule, is refused (false).
   */
  async claimScheduleTick(id: string, tick: number, task: TaskRecord): Promise<boolean> {
    await this.enter();
    const s = this.state.tasks.schedules.get(id);
    if (!s) throw new MessagingError('NOT_FOUND', `schedule "${id}" does not exist`);
    if (!s.enabled || tick <= s.last_tick) return false;
    checkTaskRecord(task);
    if (this.state.tasks.get(task.id)) throw conflict(`task ${task.id} already exists`);
    this.taskRec({ t: 'task', add: [task], tick: { id, tick } });
    await this.durable();
    return true;
  }
}
