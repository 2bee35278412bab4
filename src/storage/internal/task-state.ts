/**
 * Task records inside the shared state machine, with the indexes that make claims and housekeeping cheap:
 * a ready heap per (queue, task name) ordered by priority then FIFO, and heaps of due times (ETA and
 * retry delays), expiry times, lock deadlines and result-TTL deadlines. Like the queue tables, it changes
 * only through `apply(record)` — live and during replay — except for two ephemeral facts that are not
 * worth a journal record: lock renewals (heartbeats) and progress. After a restart a running task keeps
 * the lock deadline of its claim and its last journaled progress.
 *
 * Heaps hold task handles (small integers) and are validated lazily against the records: a pair whose
 * record moved on is dropped when it reaches the top.
 */
import {
  TASK_STATES,
  isTerminal,
  isWaiting,
  type ClaimTarget,
  type ScheduleRecord,
  type StateCounts,
  type TaskRecord,
} from '../task-types.ts';
import { PairHeap } from './heap.ts';
import type { Loc, TaskRec, TaskSetFact } from './records.ts';

export interface TaskEntry {
  /** Never mutated: every change replaces it, so it can be handed out as it is. */
  rec: TaskRecord;
  readonly h: number;
  /** Ready-heap key while queued: (5 − priority) × 2^44 + enqueue sequence. */
  readyKey: number;
  /** The journal record holding the task's whole state (file engine), -1 when none. */
  seg: number;
  len: number;
}

/** How the file engine follows which segments hold live task records. */
export interface TaskHooks {
  stored(seg: number, len: number): void;
  freed(seg: number, len: number): void;
  referenced(recordSeg: number, homeSeg: number): void;
}

const PRIORITY_SPAN = 2 ** 44;

function zeroCounts(): StateCounts {
  const c = {} as StateCounts;
  for (const s of TASK_STATES) c[s] = 0;
  return c;
}

export class TaskTable {
  readonly byId = new Map<string, TaskEntry>();
  private readonly handles: (TaskEntry | undefined)[] = [];
  private readonly freeHandles: number[] = [];
  /** Idempotency key → task id, while the task's record exists. */
  readonly byKey = new Map<string, string>();
  /** queue → task name → ready heap. */
  readonly ready = new Map<string, Map<string, PairHeap>>();
  /** pending/retrying tasks by due time. */
  readonly due = new PairHeap();
  /** Waiting tasks by expiry time. */
  readonly expiry = new PairHeap();
  /** Running tasks by lock deadline. */
  readonly locks = new PairHeap();
  /** Finished tasks by removal time. */
  readonly purge = new PairHeap();
  /** Counts by state of plain tasks (workflow records are not counted). */
  readonly queueCounts = new Map<string, StateCounts>();
  readonly nameCounts = new Map<string, StateCounts>();
  readonly schedules = new Map<string, ScheduleRecord>();
  private seq = 0;

  constructor(private readonly hooks: TaskHooks) {}

  get(id: string): TaskEntry | undefined {
    return this.byId.get(id);
  }

  at(h: number): TaskEntry | undefined {
    return this.handles[h];
  }

  get size(): number {
    return this.byId.size;
  }

  // ---- applying records --------------------------------------------------------------------------

  apply(rec: TaskRec, loc: Loc | undefined): void {
    if (rec.add?.length) {
      const len = loc ? Math.max(1, Math.floor(loc.len / rec.add.length)) : 0;
      for (const r of rec.add) this.addRecord(r, loc, len, rec.carried === true);
    }
    if (rec.set) for (const fact of rec.set) this.setFields(fact, loc);
    if (rec.del) for (const id of rec.del) this.remove(id, loc);
    if (rec.tick) {
      const s = this.schedules.get(rec.tick.id);
      if (s && rec.tick.tick > s.last_tick) {
        s.last_tick = rec.tick.tick;
        s.runs++;
        const made = rec.add?.[0]?.id;
        if (made !== undefined) s.last_task_id = made;
      }
    }
  }

  applySchedule(put: ScheduleRecord | undefined, del: string | undefined): void {
    if (put) this.schedules.set(put.id, { ...put });
    if (del !== undefined) this.schedules.delete(del);
  }

  /** A segment's head snapshot: the schedules as they were then. */
  resetSchedules(list: ScheduleRecord[]): void {
    this.schedules.clear();
    for (const s of list) this.schedules.set(s.id, { ...s });
  }

  private addRecord(r: TaskRecord, loc: Loc | undefined, len: number, carried: boolean): void {
    const known = this.byId.get(r.id);
    if (known) {
      if (!carried) return;
      // Compaction rewrote the record with its whole current state: it is the task's new home.
      this.count(known.rec, -1);
      known.rec = { ...r };
      this.count(known.rec, 1);
      if (known.seg >= 0) this.hooks.freed(known.seg, known.len);
      this.home(known, loc, len);
      if (known.rec.state === 'queued') known.readyKey = this.nextReadyKey(known.rec);
      this.index(known);
      return;
    }
    const h = this.freeHandles.pop() ?? this.handles.length;
    const e: TaskEntry = { rec: { ...r }, h, readyKey: 0, seg: -1, len: 0 };
    this.handles[h] = e;
    this.byId.set(r.id, e);
    if (r.idempotency_key !== undefined) this.byKey.set(r.idempotency_key, r.id);
    this.count(e.rec, 1);
    this.home(e, loc, len);
    if (e.rec.state === 'queued') e.readyKey = this.nextReadyKey(e.rec);
    this.index(e);
  }

  private home(e: TaskEntry, loc: Loc | undefined, len: number): void {
    if (!loc) return;
    e.seg = loc.seg;
    e.len = len;
    this.hooks.stored(loc.seg, len);
  }

  private setFields(fact: TaskSetFact, loc: Loc | undefined): void {
    const e = this.byId.get(fact.id);
    if (!e) return;
    if (loc && e.seg >= 0 && e.seg !== loc.seg) this.hooks.referenced(loc.seg, e.seg);
    const before = e.rec.state;
    this.count(e.rec, -1);
    // Copy on write: records handed out earlier never change under their holder (so reads need no copy).
    const rec = { ...e.rec } as Record<string, unknown>;
    for (const key in fact) {
      if (key === 'id' || key === 'collect' || key === 'unset') continue;
      const value = (fact as Record<string, unknown>)[key];
      if (value !== undefined) rec[key] = value;
    }
    // Cleared fields become undefined rather than deleted: it keeps the objects' shapes fast, and JSON
    // leaves them out all the same.
    if (fact.unset) for (const key of fact.unset) rec[key] = undefined;
    const next = rec as unknown as TaskRecord;
    if (fact.collect) {
      const results = [...(next.results ?? [])];
      results[fact.collect.index] = fact.collect.value;
      next.results = results;
      next.remaining = (next.remaining ?? 0) - 1;
    }
    e.rec = next;
    this.count(next, 1);
    if (next.state === 'queued' && (before !== 'queued' || fact.priority !== undefined))
      e.readyKey = this.nextReadyKey(next);
    this.index(e);
  }

  private remove(id: string, loc: Loc | undefined): void {
    const e = this.byId.get(id);
    if (!e) return;
    if (loc && e.seg >= 0 && e.seg !== loc.seg) this.hooks.referenced(loc.seg, e.seg);
    this.count(e.rec, -1);
    const key = e.rec.idempotency_key;
    if (key !== undefined && this.byKey.get(key) === id) this.byKey.delete(key);
    this.byId.delete(id);
    this.handles[e.h] = undefined;
    this.freeHandles.push(e.h);
    if (e.seg >= 0) this.hooks.freed(e.seg, e.len);
  }

  private nextReadyKey(r: TaskRecord): number {
    return (5 - r.priority) * PRIORITY_SPAN + ++this.seq;
  }

  private count(r: TaskRecord, delta: number): void {
    if (r.kind !== 'task') return;
    let q = this.queueCounts.get(r.queue);
    if (!q) this.queueCounts.set(r.queue, (q = zeroCounts()));
    q[r.state] += delta;
    let n = this.nameCounts.get(r.name);
    if (!n) this.nameCounts.set(r.name, (n = zeroCounts()));
    n[r.state] += delta;
  }

  /** Files the task under the heaps its state needs; older pairs go stale by themselves. */
  index(e: TaskEntry): void {
    const r = e.rec;
    switch (r.state) {
      case 'pending':
      case 'retrying':
        if (r.eta !== undefined) this.due.push(r.eta, e.h);
        break;
      case 'queued':
        if (r.kind === 'task') this.readyHeap(r.queue, r.name).push(e.readyKey, e.h);
        break;
      case 'running':
        if (r.lock_until !== undefined) this.locks.push(r.lock_until, e.h);
        break;
      default:
        if (r.delete_at !== undefined) this.purge.push(r.delete_at, e.h);
    }
    if (r.expires !== undefined && isWaiting(r.state)) this.expiry.push(r.expires, e.h);
  }

  private readyHeap(queue: string, name: string): PairHeap {
    let byName = this.ready.get(queue);
    if (!byName) this.ready.set(queue, (byName = new Map()));
    let heap = byName.get(name);
    if (!heap) byName.set(name, (heap = new PairHeap()));
    return heap;
  }

  // ---- ephemeral facts ---------------------------------------------------------------------------

  /** A heartbeat: the lock lasts longer. Not journaled (see the module comment). */
  renewLock(e: TaskEntry, until: number): void {
    e.rec = { ...e.rec, lock_until: until };
    this.locks.push(until, e.h);
  }

  /** Live progress of a running task. Not journaled (see the module comment). */
  setProgress(e: TaskEntry, progress: TaskRecord['progress']): void {
    e.rec = { ...e.rec, progress };
  }

  // ---- validated heap tops -----------------------------------------------------------------------

  isDue(key: number, h: number): boolean {
    const e = this.handles[h];
    return !!e && (e.rec.state === 'pending' || e.rec.state === 'retrying') && e.rec.eta === key;
  }

  isExpiring(key: number, h: number): boolean {
    const e = this.handles[h];
    return !!e && isWaiting(e.rec.state) && e.rec.expires === key;
  }

  isLocked(key: number, h: number): boolean {
    const e = this.handles[h];
    return !!e && e.rec.state === 'running' && e.rec.lock_until === key;
  }

  isPurgeable(key: number, h: number): boolean {
    const e = this.handles[h];
    return !!e && isTerminal(e.rec.state) && e.rec.delete_at === key;
  }

  private isReady(key: number, h: number): boolean {
    const e = this.handles[h];
    return !!e && e.rec.state === 'queued' && e.readyKey === key;
  }

  /** Drops stale pairs from the top; returns the top key or Infinity when empty. */
  top(heap: PairHeap, valid: (key: number, h: number) => boolean): number {
    while (heap.size > 0 && !valid(heap.peekKey(), heap.peekVal())) heap.pop();
    return heap.size > 0 ? heap.peekKey() : Infinity;
  }

  /**
   * Takes the best ready task among `targets` (highest priority, then oldest), or undefined. The caller
   * must make it leave `queued` before asking again.
   */
  popReady(targets: readonly ClaimTarget[]): TaskEntry | undefined {
    let best: PairHeap | undefined;
    let bestKey = Infinity;
    const consider = (heap: PairHeap | undefined): void => {
      if (!heap) return;
      const k = this.top(heap, (key, h) => this.isReady(key, h));
      if (k < bestKey) {
        bestKey = k;
        best = heap;
      }
    };
    for (const t of targets) {
      const byName = this.ready.get(t.queue);
      if (!byName) continue;
      if (t.names) for (const n of t.names) consider(byName.get(n));
      else
        for (const [n, heap] of byName) {
          if (t.exclude && t.exclude.includes(n)) continue;
          consider(heap);
        }
    }
    if (!best) return undefined;
    const h = (best as PairHeap).peekVal();
    (best as PairHeap).pop();
    return this.handles[h];
  }

  /** Rebuilds heaps whose stale pairs outnumber live records, so lazy deletion cannot leak memory. */
  compactHeaps(): void {
    const limit = 2 * this.byId.size + 1024;
    if (this.due.size > limit) this.due.retain((k, h) => this.isDue(k, h));
    if (this.expiry.size > limit) this.expiry.retain((k, h) => this.isExpiring(k, h));
    if (this.locks.size > limit) this.locks.retain((k, h) => this.isLocked(k, h));
    if (this.purge.size > limit) this.purge.retain((k, h) => this.isPurgeable(k, h));
    for (const byName of this.ready.values()) {
      for (const [name, heap] of byName) {
        if (heap.size > limit) heap.retain((k, h) => this.isReady(k, h));
        if (heap.size === 0) byName.delete(name);
      }
    }
  }
}
