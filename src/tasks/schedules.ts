/**
 * Periodic and cron schedules. A schedule is a stored record (a task template plus `every_ms` or a cron
 * expression); each of its ticks creates a task with a fresh id. A tick is identified by its due time,
 * and the run is created by `claimScheduleTick`, which stores the task and advances the schedule's
 * `last_tick` in one atomic step: however many schedulers look at the same store, exactly one creates
 * the run of a tick. After downtime a schedule runs once for the latest missed tick, not once per tick.
 */
import type { Logger } from 'pino';
import { MessagingError } from '../protocol/errors.ts';
import type { ScheduleRecord, TaskRecord } from '../storage/task-types.ts';
import type { Storage } from '../storage/types.ts';
import { checkTimezone, parseCron } from './cron.ts';
import { newTaskId, recordFromTemplate, templateFromArgs } from './model.ts';

const MIN_EVERY_MS = 10;
/** How far ahead a timer is set at most (clock changes, and schedules edited elsewhere, are picked up). */
const MAX_SLEEP_MS = 60_000;

export function scheduleFromArgs(args: Record<string, unknown>, now: number): ScheduleRecord {
  const id = args.id;
  if (typeof id !== 'string' || !/^[\w.:-]{1,128}$/.test(id))
    throw new MessagingError('BAD_REQUEST', '"id" must be 1-128 letters, digits or . _ : -');
  const every = args.every_ms;
  const cron = args.cron;
  if ((every === undefined) === (cron === undefined))
    throw new MessagingError('BAD_REQUEST', 'a schedule needs exactly one of "every_ms" and "cron"');
  const rec: ScheduleRecord = {
    id,
    task: templateFromArgs(args.task, 'the schedule\'s "task"'),
    enabled: args.enabled !== false,
    created_at: now,
    anchor: now,
    last_tick: 0,
    runs: 0,
  };
  if (every !== undefined) {
    if (typeof every !== 'number' || !Number.isInteger(every) || every < MIN_EVERY_MS)
      throw new MessagingError('BAD_REQUEST', `"every_ms" must be an integer >= ${MIN_EVERY_MS}`);
    rec.every_ms = every;
    if (args.start_at !== undefined) {
      const start = typeof args.start_at === 'string' ? Date.parse(args.start_at) : args.start_at;
      if (typeof start !== 'number' || !Number.isFinite(start))
        throw new MessagingError('BAD_REQUEST', '"start_at" must be epoch ms or an ISO time');
      // Ticks fall on start_at + k × every_ms; the first is start_at itself.
      rec.anchor = start - every;
    }
  } else {
    if (typeof cron !== 'string') throw new MessagingError('BAD_REQUEST', '"cron" must be a string');
    const tz = typeof args.timezone === 'string' && args.timezone ? checkTimezone(args.timezone) : 'UTC';
    rec.cron = parseCron(cron, tz).expression;
    rec.timezone = tz;
  }
  return rec;
}

/** The latest due tick at or before `now` not yet claimed, and when the one after it falls due. */
export function dueTick(s: ScheduleRecord, now: number): { tick?: number; next?: number } {
  if (s.every_ms !== undefined) {
    const k = Math.floor((now - s.anchor) / s.every_ms);
    const tick = s.anchor + k * s.every_ms;
    const next = s.anchor + (k + 1) * s.every_ms;
    return k >= 1 && tick > s.last_tick ? { tick, next } : { next };
  }
  const cron = parseCron(s.cron!, s.timezone ?? 'UTC');
  const from = Math.max(s.last_tick, s.created_at);
  let t = cron.next(from);
  let due: number | undefined;
  // Walk to the latest missed tick (bounded: a minutely schedule down for a week is 10k steps).
  for (let i = 0; t !== undefined && t <= now && i < 20_000; i++) {
    due = t;
    t = cron.next(t);
  }
  const out: { tick?: number; next?: number } = {};
  if (due !== undefined) out.tick = due;
  if (t !== undefined) out.next = t;
  return out;
}

export interface SchedulerOptions {
  storage: Storage;
  now: () => number;
  /** A run was created (this scheduler won its tick). */
  created(task: TaskRecord): void;
  logger?: Logger;
}

export class Scheduler {
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private running = false;
  private again = false;
  private closed = false;

  constructor(private readonly o: SchedulerOptions) {}

  start(): void {
    this.wake(0);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  /** Look at the schedules again (after `delayMs`, or at once). */
  wake(delayMs = 0): void {
    if (this.closed) return;
    const at = this.o.now() + Math.max(0, delayMs);
    if (at >= this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timerAt = Infinity;
        void this.run();
      },
      Math.max(0, delayMs),
    );
    this.timer.unref();
  }

  private async run(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    let next = this.o.now() + MAX_SLEEP_MS;
    try {
      for (const s of await this.o.storage.listSchedules()) {
        if (!s.enabled) continue;
        const now = this.o.now();
        const due = dueTick(s, now);
        if (due.tick !== undefined) {
          const task = recordFromTemplate(s.task, { now, schedule: { id: s.id, tick: due.tick } });
          if (await this.o.storage.claimScheduleTick(s.id, due.tick, task).catch(() => false))
            this.o.created(task);
        }
        if (due.next !== undefined) next = Math.min(next, due.next);
      }
    } catch (err) {
      this.o.logger?.error({ err }, 'scheduler pass failed');
    } finally {
      this.running = false;
    }
    if (this.again) {
      this.again = false;
      this.wake(0);
    } else this.wake(next - this.o.now());
  }

  /** Runs a schedule's task now, outside its ticks (the schedule's bookkeeping is not changed). */
  triggerRecord(s: ScheduleRecord, now: number): TaskRecord {
    return recordFromTemplate(s.task, { now, id: newTaskId(), schedule: { id: s.id, tick: now } });
  }
}
