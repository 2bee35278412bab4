/**
 * Monitoring figures the records do not hold by themselves: throughput (tasks finished per second over
 * the last minute) and latency (queue wait: queued → started; run time: started → finished) per queue
 * and per task name. Plain numbers updated on the hot path; summaries are computed when asked for.
 */
import type { StateCounts, TaskRecord } from '../storage/task-types.ts';

const WINDOW_S = 60;
const SAMPLES = 512;

/** Finished tasks per second over the last minute, in one-second buckets. */
class Rate {
  private readonly buckets = new Float64Array(WINDOW_S);
  private readonly stamps = new Float64Array(WINDOW_S);
  total = 0;

  add(now: number, n = 1): void {
    const sec = Math.floor(now / 1000);
    const i = sec % WINDOW_S;
    if (this.stamps[i] !== sec) {
      this.stamps[i] = sec;
      this.buckets[i] = 0;
    }
    this.buckets[i]! += n;
    this.total += n;
  }

  perSecond(now: number): number {
    const sec = Math.floor(now / 1000);
    let sum = 0;
    let oldest = sec;
    for (let i = 0; i < WINDOW_S; i++) {
      const s = this.stamps[i]!;
      if (s > sec - WINDOW_S && s <= sec) {
        sum += this.buckets[i]!;
        if (s < oldest) oldest = s;
      }
    }
    // Over the seconds actually covered, so a fresh server does not report a minute-diluted rate.
    const span = Math.max(1, Math.min(WINDOW_S, sec - oldest + 1));
    return sum / span;
  }
}

/** The last SAMPLES latencies, for mean and percentiles. */
class Samples {
  private readonly values = new Float64Array(SAMPLES);
  private n = 0;

  add(v: number): void {
    this.values[this.n++ % SAMPLES] = v;
  }

  summary(): { count: number; mean_ms: number; p50_ms: number; p95_ms: number; max_ms: number } | null {
    const len = Math.min(this.n, SAMPLES);
    if (len === 0) return null;
    const sorted = Array.from(this.values.subarray(0, len)).sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(len - 1, Math.floor(q * len))]!;
    const mean = sorted.reduce((a, b) => a + b, 0) / len;
    return {
      count: this.n,
      mean_ms: Math.round(mean * 10) / 10,
      p50_ms: at(0.5),
      p95_ms: at(0.95),
      max_ms: sorted[len - 1]!,
    };
  }
}

class Figures {
  readonly finished = new Rate();
  readonly succeeded = new Rate();
  readonly failed = new Rate();
  readonly wait = new Samples();
  readonly run = new Samples();
}

export interface GroupStats {
  counts: StateCounts | Record<string, never>;
  throughput_per_s: number;
  succeeded_per_s: number;
  failed_per_s: number;
  finished_total: number;
  wait: ReturnType<Samples['summary']>;
  run: ReturnType<Samples['summary']>;
}

export class TaskStats {
  private readonly queues = new Map<string, Figures>();
  private readonly names = new Map<string, Figures>();

  private of(map: Map<string, Figures>, key: string): Figures {
    let f = map.get(key);
    if (!f) map.set(key, (f = new Figures()));
    return f;
  }

  /** A task started running (claimed by a worker). */
  started(t: TaskRecord): void {
    if (t.kind !== 'task' || t.started_at === undefined || t.queued_at === undefined) return;
    const wait = Math.max(0, t.started_at - t.queued_at);
    this.of(this.queues, t.queue).wait.add(wait);
    this.of(this.names, t.name).wait.add(wait);
  }

  /** An attempt ended (`ok`: succeeded); `runMs` is how long it ran. */
  attemptEnded(t: TaskRecord, ok: boolean, runMs: number | undefined, now: number): void {
    if (t.kind !== 'task') return;
    for (const f of [this.of(this.queues, t.queue), this.of(this.names, t.name)]) {
      f.finished.add(now);
      (ok ? f.succeeded : f.failed).add(now);
      if (runMs !== undefined) f.run.add(Math.max(0, runMs));
    }
  }

  private group(f: Figures | undefined, counts: StateCounts | undefined, now: number): GroupStats {
    return {
      counts: counts ?? {},
      throughput_per_s: round(f?.finished.perSecond(now) ?? 0),
      succeeded_per_s: round(f?.succeeded.perSecond(now) ?? 0),
      failed_per_s: round(f?.failed.perSecond(now) ?? 0),
      finished_total: f?.finished.total ?? 0,
      wait: f?.wait.summary() ?? null,
      run: f?.run.summary() ?? null,
    };
  }

  snapshot(
    counts: { queues: Record<string, StateCounts>; names: Record<string, StateCounts> },
    now: number,
  ): { queues: Record<string, GroupStats>; names: Record<string, GroupStats> } {
    const build = (map: Map<string, Figures>, c: Record<string, StateCounts>) => {
      const out: Record<string, GroupStats> = {};
      for (const key of new Set([...Object.keys(c), ...map.keys()]).values())
        out[key] = this.group(map.get(key), c[key], now);
      return out;
    };
    return { queues: build(this.queues, counts.queues), names: build(this.names, counts.names) };
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
