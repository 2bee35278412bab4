/**
 * Errors a handler throws to steer its task (BullMQ's UnrecoverableError and DelayedError, Celery's
 * Reject and retry(countdown)). They are recognised by `name` too, so a handlers module need not import
 * this one: `throw Object.assign(new Error('bad input'), { name: 'UnrecoverableError' })` works the same.
 */

/** The task fails now, without further attempts (bad input, a missing resource). */
export class UnrecoverableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UnrecoverableError';
  }
}

/** This attempt fails and the next one starts after exactly `delayMs` (it still counts as an attempt). */
export class RetryLaterError extends Error {
  constructor(
    readonly delayMs: number,
    message = `retry requested in ${delayMs} ms`,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RetryLaterError';
  }
}

/** The reason `ctx.signal` carries when an attempt ran past the task's `timeout_ms`. */
export class TaskTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`the attempt ran longer than its timeout of ${timeoutMs} ms`);
    this.name = 'TimeoutError';
  }
}

/** The reason `ctx.signal` carries when the task was cancelled, or went to another worker. */
export class TaskAbortedError extends Error {
  constructor(
    readonly reason: 'cancelled' | 'lost' | 'shutdown',
    message: string,
  ) {
    super(message);
    this.name =
      reason === 'cancelled' ? 'TaskCancelled' : reason === 'lost' ? 'LockLostError' : 'WorkerShutdown';
  }
}

/** A handler error as the worker reports it: name, message, stack, and how it steers the task. */
export interface ReportedFailure {
  error: { name: string; message: string; stack?: string };
  unrecoverable?: boolean;
  retry_in_ms?: number;
}

export function describeFailure(err: unknown): ReportedFailure {
  const e =
    err instanceof Error
      ? err
      : new Error(typeof err === 'string' ? err : (JSON.stringify(err) ?? String(err)));
  const error: ReportedFailure['error'] = { name: e.name || 'Error', message: String(e.message) };
  if (e.stack) error.stack = e.stack;
  const out: ReportedFailure = { error };
  const flagged = err as { unrecoverable?: unknown; delayMs?: unknown } | null;
  if (e.name === 'UnrecoverableError' || flagged?.unrecoverable === true) out.unrecoverable = true;
  if (e.name === 'RetryLaterError' && typeof flagged?.delayMs === 'number' && flagged.delayMs >= 0)
    out.retry_in_ms = flagged.delayMs;
  return out;
}
