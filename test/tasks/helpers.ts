/**
 * Shared set-up for the task tests: a real server (port 0), an SDK connection, in-process workers that
 * are closed afterwards, and `until` — a bounded wait on a condition, never a fixed sleep.
 */
import { connect, type Connection, type Message } from '../../src/client/index.ts';
import { Worker, type Handlers, type WorkerOptions } from '../../src/worker/index.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

export interface Env {
  server: TestServer;
  conn: Connection;
  worker(handlers: Handlers, options?: WorkerOptions): Promise<Worker>;
  connection(): Promise<Connection>;
  close(): Promise<void>;
}

let queueSeq = 0;
/** A queue name no other test uses. */
export function uniqueQueue(prefix = 'q'): string {
  return `${prefix}-${process.pid}-${++queueSeq}`;
}

export async function setup(overrides: Record<string, string> = {}): Promise<Env> {
  const server = await startTestServer(overrides);
  const conns: Connection[] = [];
  const workers: Worker[] = [];
  const connection = async (): Promise<Connection> => {
    const c = await connect({ servers: server.url, timeoutMs: 10_000 });
    conns.push(c);
    return c;
  };
  const conn = await connection();
  return {
    server,
    conn,
    connection,
    async worker(handlers, options = {}) {
      const c = await connection();
      const w = new Worker(c, handlers, { concurrency: 2, ...options });
      workers.push(w);
      await w.ready();
      return w;
    },
    async close() {
      await Promise.all(workers.map((w) => w.close({ timeoutMs: 500 }).catch(() => undefined)));
      await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
      await server.close();
    },
  };
}

/** Resolves once `check` returns a truthy value (polled every 10 ms); fails after `timeoutMs`. */
export async function until<T>(
  check: () => T | Promise<T>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Collects the JSON payloads of every message on `pattern`. */
export async function collectEvents(
  conn: Connection,
  pattern = 'tasks.#',
): Promise<Record<string, unknown>[]> {
  const events: Record<string, unknown>[] = [];
  const sub = conn.subscribe(pattern, { callback: (m: Message) => void events.push(m.json()) });
  await sub.ready();
  return events;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
