/**
 * Everything a worker tells the server about its tasks, batched: the outcomes of one event-loop turn go
 * out as one `task.settle`, hand-backs as one `task.release`, progress as one `task.progress` at most
 * every PROGRESS_MS. A report that cannot be sent because the connection is down is sent again after a
 * pause: the worker keeps its id across reconnects, so the server still accepts it while the task's
 * lock holds.
 */
import type { TaskAssignment } from '../client/tasks.ts';
import type { ReportedFailure } from './errors.ts';

const PROGRESS_MS = 50;
const RESEND_MS = 500;
const MAX_RESENDS = 20;

export interface SettleOutcome {
  id: string;
  ok: boolean;
  state?: string;
  reason?: string;
}

interface Pending {
  task: TaskAssignment;
  item: Record<string, unknown>;
  onResult(r: SettleOutcome): void;
}

type Send = (op: string, args: Record<string, unknown>) => Promise<Record<string, unknown>>;

export class Reporter {
  private settles: Pending[] = [];
  private releases: Pending[] = [];
  private progress = new Map<string, Record<string, unknown>>();
  private scheduled = false;
  private progressTimer: NodeJS.Timeout | undefined;
  private readonly inflight = new Set<Promise<void>>();

  constructor(
    private readonly worker: string,
    private readonly send: Send,
    private readonly onError: (err: unknown) => void,
    /** False once the connection is closed for good: nothing is resent then. */
    private readonly canResend: () => boolean = () => true,
  ) {}

  succeeded(task: TaskAssignment, result: unknown, onResult: (r: SettleOutcome) => void): void {
    this.settles.push({
      task,
      item: { id: task.id, attempt: task.attempts, ok: true, result: result ?? null },
      onResult,
    });
    this.schedule();
  }

  failed(task: TaskAssignment, failure: ReportedFailure, onResult: (r: SettleOutcome) => void): void {
    this.settles.push({
      task,
      item: { id: task.id, attempt: task.attempts, ok: false, ...failure },
      onResult,
    });
    this.schedule();
  }

  /** Gives the task back unfinished: queued again, the attempt not counted. */
  release(task: TaskAssignment, onResult: (r: SettleOutcome) => void = () => undefined): void {
    this.releases.push({ task, item: { id: task.id, attempt: task.attempts }, onResult });
    this.schedule();
  }

  setProgress(task: TaskAssignment, value: number, message?: string): void {
    const item: Record<string, unknown> = { id: task.id, attempt: task.attempts, value };
    if (message !== undefined) item['message'] = message;
    this.progress.set(task.id, item);
    if (!this.progressTimer) {
      this.progressTimer = setTimeout(() => {
        this.progressTimer = undefined;
        this.flushProgress();
      }, PROGRESS_MS);
    }
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /** Sends what is batched now. */
  flush(): void {
    this.flushProgress();
    if (this.settles.length) this.sendBatch('task.settle', this.settles.splice(0));
    if (this.releases.length) this.sendBatch('task.release', this.releases.splice(0));
  }

  private flushProgress(): void {
    if (this.progress.size === 0) return;
    const items = [...this.progress.values()];
    this.progress.clear();
    this.track(
      this.send('task.progress', { worker: this.worker, items }).then(
        () => undefined,
        () => undefined,
      ),
    );
  }

  private sendBatch(op: string, batch: Pending[]): void {
    this.track(this.deliver(op, batch));
  }

  private async deliver(op: string, batch: Pending[]): Promise<void> {
    const args = { worker: this.worker, items: batch.map((b) => b.item) };
    for (let attempt = 0; ; attempt++) {
      try {
        const body = await this.send(op, args);
        const results = Array.isArray(body['results']) ? (body['results'] as SettleOutcome[]) : [];
        batch.forEach((b, i) => b.onResult(results[i] ?? { id: b.task.id, ok: false, reason: 'no answer' }));
        return;
      } catch (err) {
        const code = (err as { code?: string } | null)?.code;
        // Lost connection or timeout: the server may not have it; resend while the lock may still hold.
        // Right after a reconnect a report can overtake the worker's re-registration: resend that too.
        const notYet = code === 'BAD_REQUEST' && /not registered/.test((err as Error).message);
        if (
          (code === 'CONNECTION_CLOSED' || code === 'TIMEOUT' || notYet) &&
          attempt < MAX_RESENDS &&
          this.canResend()
        ) {
          await new Promise((resolve) => setTimeout(resolve, RESEND_MS));
          continue;
        }
        this.onError(err);
        const reason = err instanceof Error ? err.message : String(err);
        batch.forEach((b) => b.onResult({ id: b.task.id, ok: false, reason }));
        return;
      }
    }
  }

  private track(p: Promise<void>): void {
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** Sends everything batched and waits for the answers (for shutdown). */
  async idle(): Promise<void> {
    this.flush();
    while (this.inflight.size || this.settles.length || this.releases.length) {
      this.flush();
      await Promise.all([...this.inflight]);
    }
  }

  close(): void {
    clearTimeout(this.progressTimer);
  }
}
