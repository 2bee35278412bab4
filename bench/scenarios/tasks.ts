/**
 * Task queue: no-op tasks submitted (a window of outstanding submits) and completed by `workers` workers.
 * Throughput = completed tasks / time from the first measured submit to the last completion.
 * Delayed tasks: how late after its due time a delayed task starts (scheduling latency).
 */
import type { TaskSystem } from '../types.ts';
import type { Measurement } from './measurement.ts';
import { now, sleep, waitForCount, Window } from '../lib/util.ts';
import { summarize } from '../lib/stats.ts';

export interface TaskParams {
  tasks: number;
  workers: number;
  warmup: number;
  window: number;
  publishLimitMs: number;
  idleMs: number;
}

async function submitAll(sys: TaskSystem, count: number, window: number, limitMs: number): Promise<number> {
  const w = new Window(window);
  const start = now();
  let sent = 0;
  for (; sent < count; sent++) {
    await w.acquire();
    w.run(() => sys.submit());
    if ((sent & 255) === 0 && now() - start > limitMs) {
      sent++;
      break;
    }
  }
  await w.drain(60_000);
  return sent;
}

export async function runTasks(sys: TaskSystem, p: TaskParams): Promise<Measurement> {
  let completed = 0;
  let lastCompleted = 0;
  try {
    await sys.setup(
      p.workers,
      () => undefined,
      () => {
        completed++;
        lastCompleted = now();
      },
    );
    await submitAll(sys, p.warmup, p.window, p.publishLimitMs);
    await waitForCount(() => completed, p.warmup, p.idleMs, 30_000);

    // Warm-up tasks all completed before this point, so counting from here counts measured tasks only.
    const base = completed;
    const t0 = now();
    const sent = await submitAll(sys, p.tasks, p.window, p.publishLimitMs);
    const tSubmitted = now();
    await waitForCount(() => completed - base, sent, p.idleMs, 60_000);
    const done = completed - base;
    if (done === 0) throw new Error('no measured task completed');
    const seconds = (lastCompleted - t0) / 1000;
    return {
      value: done / seconds,
      delivered: Math.min(1, done / sent),
      detail: { sent, completed: done, seconds, submitRate: sent / ((tSubmitted - t0) / 1000) },
    };
  } finally {
    await sys.close();
  }
}

export interface DelayedParams {
  jobs: number;
  delayMs: number;
  /** Time between two submits, so the jobs fall due one by one instead of in a burst. */
  spacingMs: number;
}

/** Lateness of delayed tasks in ms: start time (epoch ms) − due time. One worker. */
export async function runDelayed(sys: TaskSystem, p: DelayedParams): Promise<Measurement> {
  const lateness: number[] = [];
  try {
    await sys.setup(
      1,
      (job) => lateness.push(Date.now() - job.dueAt),
      () => undefined,
    );
    for (let i = 0; i < p.jobs; i++) {
      await sys.submit(p.delayMs);
      await sleep(p.spacingMs);
    }
    await waitForCount(() => lateness.length, p.jobs, p.delayMs + 5000, 30_000);
    if (lateness.length === 0) throw new Error('no delayed task started');
    const s = summarize(lateness);
    return {
      value: s.p50,
      p99: s.p99,
      mean: s.mean,
      delivered: lateness.length / p.jobs,
      detail: { jobs: s.count, maxMs: s.max },
    };
  } finally {
    await sys.close();
  }
}
