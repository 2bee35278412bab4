/**
 * The CPU pool: handlers declared `{ cpu: true }` (or `pool: 'cpu'`) run in `worker_threads`, one task per
 * thread, so a CPU-bound handler never blocks the worker's event loop (heartbeats, other pools). Each
 * thread imports the handlers module itself. An aborted task (cancel, timeout, shutdown) gets the abort
 * on its own `ctx.signal`; a thread that does not give up within `abortGraceMs` — CPU-bound code cannot
 * look at a signal — is terminated and replaced, so a timeout really stops the work.
 */
import { Worker as Thread } from 'node:worker_threads';
import type { TaskAssignment } from '../client/tasks.ts';
import type { ReportedFailure } from './errors.ts';

interface Job {
  id: string;
  task: TaskAssignment;
  signal: AbortSignal;
  progress(value: number, message?: string): void;
  resolve(result: unknown): void;
  reject(failure: ReportedFailure): void;
}

interface Slot {
  thread: Thread;
  ready: Promise<void>;
  job: Job | undefined;
}

const ENTRY = new URL('./thread-entry.mjs', import.meta.url);

export class ThreadPool {
  private readonly slots: Slot[] = [];
  private readonly waiting: Job[] = [];
  private closed = false;

  constructor(
    private readonly moduleUrl: string,
    private readonly size: number,
    private readonly abortGraceMs = 1000,
  ) {
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const thread = new Thread(ENTRY, { workerData: { module: this.moduleUrl } });
    thread.unref();
    const slot: Slot = { thread, ready: Promise.resolve(), job: undefined };
    slot.ready = new Promise<void>((resolve, reject) => {
      const onMessage = (m: { type: string }): void => {
        if (m.type !== 'ready') return;
        thread.off('message', onMessage);
        resolve();
      };
      thread.on('message', onMessage);
      thread.once('error', reject);
    });
    slot.ready.catch(() => undefined);
    thread.on('message', (m: Record<string, unknown>) => this.onMessage(slot, m));
    thread.on('error', (err) => this.onThreadGone(slot, err));
    thread.on('exit', () => this.onThreadGone(slot, new Error('the worker thread exited')));
    return slot;
  }

  run(
    task: TaskAssignment,
    signal: AbortSignal,
    progress: (value: number, message?: string) => void,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const job: Job = { id: `${task.id}#${task.attempts}`, task, signal, progress, resolve, reject };
      this.waiting.push(job);
      this.next();
    });
  }

  private next(): void {
    for (const slot of this.slots) {
      if (slot.job || this.waiting.length === 0) continue;
      const job = this.waiting.shift()!;
      slot.job = job;
      void slot.ready.then(
        () => this.start(slot, job),
        (err: unknown) => this.fail(slot, job, 'WorkerThreadError', String(err)),
      );
    }
  }

  private start(slot: Slot, job: Job): void {
    if (slot.job !== job) return;
    const onAbort = (): void => {
      const r = job.signal.reason as Error | undefined;
      slot.thread.postMessage({
        type: 'abort',
        id: job.id,
        reason: { name: r?.name ?? 'AbortError', message: r?.message ?? 'aborted' },
      });
      // CPU-bound code cannot see the signal: stop the thread if it does not finish by itself.
      const timer = setTimeout(() => {
        if (slot.job !== job) return;
        this.fail(
          slot,
          job,
          r?.name ?? 'AbortError',
          `${r?.message ?? 'aborted'} (worker thread terminated)`,
        );
        this.replace(slot);
      }, this.abortGraceMs);
      timer.unref();
    };
    if (job.signal.aborted) onAbort();
    else job.signal.addEventListener('abort', onAbort, { once: true });
    slot.thread.postMessage({
      type: 'run',
      id: job.id,
      name: job.task.name,
      args: job.task.args,
      task: job.task,
    });
  }

  private onMessage(slot: Slot, m: Record<string, unknown>): void {
    const job = slot.job;
    if (!job || m['id'] !== job.id) return;
    if (m['type'] === 'progress') {
      job.progress(Number(m['value']), typeof m['message'] === 'string' ? m['message'] : undefined);
    } else if (m['type'] === 'done') {
      if (m['ok'] === true) this.finish(slot, job, { ok: true, result: m['result'] });
      else this.finish(slot, job, { ok: false, failure: reported(m['error']) });
    }
  }

  private fail(slot: Slot, job: Job, name: string, message: string): void {
    this.finish(slot, job, { ok: false, failure: { error: { name, message } } });
  }

  private finish(
    slot: Slot,
    job: Job,
    outcome: { ok: true; result: unknown } | { ok: false; failure: ReportedFailure },
  ): void {
    if (slot.job !== job) return;
    slot.job = undefined;
    if (outcome.ok) job.resolve(outcome.result);
    else job.reject(outcome.failure);
    this.next();
  }

  private onThreadGone(slot: Slot, err: unknown): void {
    const job = slot.job;
    if (job) this.fail(slot, job, 'WorkerThreadError', `the worker thread died: ${String(err)}`);
    if (!this.closed && this.slots.includes(slot)) this.replace(slot);
  }

  private replace(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.slots.splice(i, 1);
    void slot.thread.terminate().catch(() => undefined);
    if (!this.closed) {
      this.slots.push(this.spawn());
      this.next();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.thread.terminate().catch(() => undefined)));
  }
}

/** The thread's flat error description (see thread-entry.mjs) as a reported failure. */
function reported(v: unknown): ReportedFailure {
  const e = (v && typeof v === 'object' ? v : {}) as Record<string, unknown>;
  const out: ReportedFailure = {
    error: {
      name: typeof e['name'] === 'string' ? e['name'] : 'Error',
      message: typeof e['message'] === 'string' ? e['message'] : 'the handler failed',
    },
  };
  if (typeof e['stack'] === 'string') out.error.stack = e['stack'];
  if (e['unrecoverable'] === true) out.unrecoverable = true;
  if (typeof e['retry_in_ms'] === 'number') out.retry_in_ms = e['retry_in_ms'];
  return out;
}
