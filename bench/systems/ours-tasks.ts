/**
 * Our tasks in the tasks suite, through the SDK: one connection submitting (`tasks.submit`, awaited, in
 * the scenario's window) and `workers` in-process `Worker`s, each on its own connection with
 * concurrency 1 — one handler at a time, like BullMQ's Worker instances — holding PREFETCH more tasks
 * ready. Results are kept 5 s (BullMQ's side removes completed jobs). Two rows: the harness's server
 * (file store, fsync batch: every submit and completion is confirmed after the fsync of its write
 * group), and a server of the adapter's own with fsync none, the durability of the Redis used here.
 */
import { connect, type Connection } from '../../src/client/index.ts';
import { Worker } from '../../src/worker/index.ts';
import type { Endpoints, TaskJobInfo, TaskSystem } from '../types.ts';
import { startOursServer, type OursServer } from '../lib/ours-server.ts';
import { closeAll, runTag, UnavailableError } from '../lib/util.ts';

const RESULT_TTL_MS = 5000;
/**
 * Tasks a worker holds ready beyond the one it runs. The server pushes assignments in batches; with one
 * task per round trip (prefetch 0) a concurrency-1 worker is bound by the round-trip time, where
 * BullMQ's worker overlaps it by fetching the next job inside the call that completes the current one.
 */
const PREFETCH = 16;

/**
 * The tasks suite's adapter over the harness's server (file store, fsync batch). `variant` runs the same
 * clients against a server of its own instead (see `oursTasksNoFsync`).
 */
export function oursTasks(ep: Endpoints): TaskSystem {
  return tasksAdapter(ep, {
    id: 'ours',
    label: 'messaging-system',
    notes: `tasks.submit awaited (window); Worker instances with concurrency 1, prefetch ${PREFETCH}; file store, fsync batch (each submit and completion confirmed after the fsync of its group)`,
  });
}

/**
 * The same clients against a server of our own with the file store's fsync `none` (records reach the
 * OS page cache, never waited for): the durability class of the Redis the BullMQ row runs on here (AOF
 * off, no RDB snapshots — nothing reaches the disk), so this row compares like with like.
 */
export function oursTasksNoFsync(ep: Endpoints): TaskSystem {
  return tasksAdapter(ep, {
    id: 'ours-nofsync',
    label: 'messaging-system (fsync none)',
    notes: `as messaging-system, on its own server with fsync none (like Redis here: no fsync at all)`,
    fsync: 'none',
  });
}

interface Variant {
  id: string;
  label: string;
  notes: string;
  /** Start a server of our own with this fsync policy instead of using the harness's. */
  fsync?: 'none' | 'batch' | 'always';
}

function tasksAdapter(ep: Endpoints, v: Variant): TaskSystem {
  const queue = `bench.tasks.${runTag()}`;
  let submitter: Connection | undefined;
  const conns: Connection[] = [];
  const workers: Worker[] = [];
  let version: string | undefined;
  let own: OursServer | undefined;
  let url = ep.oursUrl;
  const open = async (name: string): Promise<Connection> => {
    if (!url) throw new UnavailableError(ep.oursUnavailable ?? 'our server is not running');
    const c = await connect({ servers: url, name, reconnect: false, timeoutMs: 30_000 });
    conns.push(c);
    return c;
  };
  return {
    id: v.id,
    label: v.label,
    client: 'src/client',
    notes: v.notes,
    async setup(count: number, onStarted: (job: TaskJobInfo) => void, onCompleted: () => void) {
      if (v.fsync) {
        if (!ep.oursUrl) throw new UnavailableError(ep.oursUnavailable ?? 'our server does not start');
        own = await startOursServer({ fsync: v.fsync });
        url = own.url;
        await warmUp(url, queue);
      }
      submitter = await open('bench-tasks-submit');
      version = submitter.info.server_version;
      for (let i = 0; i < count; i++) {
        const c = await open(`bench-tasks-worker-${i}`);
        const w = new Worker(
          c,
          {
            noop: (_args: unknown, ctx) => {
              onStarted({ dueAt: ctx.task.eta ?? ctx.task.created_at });
            },
          },
          { queues: [queue], concurrency: 1, prefetch: PREFETCH },
        );
        w.on('completed', () => onCompleted());
        workers.push(w);
      }
      await Promise.all(workers.map((w) => w.ready()));
    },
    async submit(delayMs?: number) {
      await submitter!.tasks.submit(
        'noop',
        undefined,
        delayMs
          ? { queue, countdownMs: delayMs, resultTtlMs: RESULT_TTL_MS }
          : { queue, resultTtlMs: RESULT_TTL_MS },
      );
    },
    serverVersion: () => version,
    async close() {
      await closeAll(workers.map((w) => () => w.close({ timeoutMs: 1000 })));
      await closeAll(conns.map((c) => () => c.close()));
      await own?.stop();
    },
  };
}

/**
 * A fresh server's first thousands of tasks run on cold JIT code; the harness's shared server is warm
 * from the rounds before. Push some tasks through before measuring, outside the measured window.
 */
async function warmUp(url: string, queue: string): Promise<void> {
  const c = await connect({ servers: url, name: 'bench-tasks-warmup', reconnect: false, timeoutMs: 30_000 });
  const done = new Set<string>();
  const w = new Worker(
    c,
    { noop: () => undefined },
    { queues: [`${queue}.warmup`], concurrency: 1, prefetch: PREFETCH },
  );
  w.on('completed', ({ task }) => done.add(task.id));
  try {
    await w.ready();
    const sig = c.tasks.sig('noop', undefined, { queue: `${queue}.warmup`, resultTtlMs: RESULT_TTL_MS });
    for (let i = 0; i < 20; i++) await c.tasks.submitMany(Array.from({ length: 250 }, () => sig));
    const deadline = Date.now() + 30_000;
    while (done.size < 5000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  } finally {
    await w.close({ timeoutMs: 1000 });
    await c.close();
  }
}
