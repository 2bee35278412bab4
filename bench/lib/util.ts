/** Small helpers shared by the benchmark scenarios: bounded waits, timers, free ports. */
import { createServer } from 'node:net';
import { setImmediate as yieldImmediate } from 'node:timers/promises';

/**
 * Thrown by an adapter whose side of a comparison does not exist yet. The harness reports the system as
 * "skipped: not implemented yet" instead of "failed".
 */
export class NotImplementedError extends Error {
  override name = 'NotImplementedError';
}

/** Thrown when a system cannot be reached; the harness reports "skipped: <reason>". */
export class UnavailableError extends Error {
  override name = 'UnavailableError';
}

/** Milliseconds with sub-millisecond resolution on a monotonic clock. */
export const now = (): number => performance.now();

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Lets the event loop run I/O callbacks. The publisher and the subscribers share one process, so a
 * publisher whose client never blocks (its writes only queue) would otherwise starve the receivers until
 * the whole run is queued; every system gets the same yield after every batch.
 */
export const yieldToLoop = (): Promise<void> => yieldImmediate();

/** Rejects with a clear message when `promise` takes longer than `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `done` every `everyMs` until it is true or `limitMs` passed; returns whether it became true. */
export async function waitUntil(done: () => boolean, limitMs: number, everyMs = 5): Promise<boolean> {
  const deadline = now() + limitMs;
  while (!done()) {
    if (now() > deadline) return false;
    await sleep(everyMs);
  }
  return true;
}

/**
 * Waits until `count()` reaches `target`, giving up when it made no progress for `idleMs` or after
 * `limitMs` in all. At-most-once systems may drop messages, so "all arrived" cannot be the only exit.
 */
export async function waitForCount(
  count: () => number,
  target: number,
  idleMs: number,
  limitMs: number,
): Promise<void> {
  const deadline = now() + limitMs;
  let last = count();
  let lastChange = now();
  while (count() < target) {
    const t = now();
    if (t > deadline) return;
    const c = count();
    if (c !== last) {
      last = c;
      lastChange = t;
    } else if (t - lastChange > idleMs) return;
    await sleep(5);
  }
}

/** A free TCP port on 127.0.0.1: listen on port 0, read the number, close. Racy only in theory. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('could not read a free port'))));
    });
  });
}

/** A short random tag so queues, streams and topics of concurrent or crashed runs never collide. */
export function runTag(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

export function errorText(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return errorText(err.errors[0]);
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    const msg = err.message || err.name;
    return code && !msg.includes(code) ? `${code} ${msg}` : msg;
  }
  return String(err);
}

/** Closes resources even if some close calls fail or hang; a benchmark must never hang on teardown. */
export async function closeAll(closers: Array<() => unknown>, limitMs = 3000): Promise<void> {
  await Promise.allSettled(closers.map((c) => withTimeout(Promise.resolve().then(c), limitMs, 'close')));
}

/** Limits the number of promises in flight (publisher confirm windows, task submit windows). */
export class Window {
  private inFlight = 0;
  private waiters: Array<() => void> = [];
  private failure: unknown;

  constructor(private readonly size: number) {}

  /** Resolves once there is room for one more operation; rethrows the first failure seen. */
  async acquire(): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    while (this.inFlight >= this.size) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
      if (this.failure !== undefined) throw this.failure;
    }
    this.inFlight++;
  }

  /** Starts `op` inside the window; its result releases the slot. */
  run(op: () => Promise<unknown>): void {
    op().then(
      () => this.release(),
      (err: unknown) => {
        this.failure ??= err;
        this.release();
      },
    );
  }

  private release(): void {
    this.inFlight--;
    this.waiters.shift()?.();
  }

  /** Waits for every operation in flight, bounded by `limitMs`. */
  async drain(limitMs: number): Promise<void> {
    const ok = await waitUntil(() => this.inFlight === 0, limitMs, 2);
    if (this.failure !== undefined) throw this.failure;
    if (!ok) throw new Error(`${this.inFlight} operations still unconfirmed after ${limitMs} ms`);
  }
}

/** A Buffer view of the bytes (no copy); ioredis and amqplib take Buffers. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
