/**
 * Our tasks in the tasks suite, through the SDK: one connection submitting (`tasks.submit`, awaited, in
 * the scenario's window) and `workers` in-process `Worker`s, each on its own connection with
 * concurrency 1 — like BullMQ's Worker instances — and the default prefetch (one more task held ready,
 * as BullMQ fetches the next job when it finishes one). Results are kept 5 s (BullMQ's side removes
 * completed jobs). The server runs with the embedded file store (fsync batch), so every submit and
 * every completion is confirmed only after the fsync of its write group.
 */
import { connect, type Connection } from '../../src/client/index.ts';
import { Worker } from '../../src/worker/index.ts';
import type { Endpoints, TaskJobInfo, TaskSystem } from '../types.ts';
import { closeAll, runTag, UnavailableError } from '../lib/util.ts';

const RESULT_TTL_MS = 5000;
/**
 * Tasks a worker holds ready beyond the one it runs. The server pushes assignments in batches; with one
 * task per round trip (prefetch 0) a concurrency-1 worker is bound by the round-trip time, where
 * BullMQ's worker overlaps it by fetching the next job inside the call that completes the current one.
 */
const PREFETCH = 16;

export function oursTasks(ep: Endpoints): TaskSystem {
  const queue = `bench.tasks.${runTag()}`;
  let submitter: Connection | undefined;
  const conns: Connection[] = [];
  const workers: Worker[] = [];
  let version: string | undefined;
  const open = async (name: string): Promise<Connection> => {
    if (!ep.oursUrl) throw new UnavailableError(ep.oursUnavailable ?? 'our server is not running');
    const c = await connect({ servers: ep.oursUrl, name, reconnect: false, timeoutMs: 30_000 });
    conns.push(c);
    return c;
  };
  return {
    id: 'ours',
    label: 'messaging-system',
    client: 'src/client',
    notes:
      `tasks.submit awaited (window); Worker instances with concurrency 1, prefetch ${PREFETCH}; file store, fsync batch`,
    async setup(count: number, onStarted: (job: TaskJobInfo) => void, onCompleted: () => void) {
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
        delayMs ? { queue, countdownMs: delayMs, resultTtlMs: RESULT_TTL_MS } : { queue, resultTtlMs: RESULT_TTL_MS },
      );
    },
    serverVersion: () => version,
    async close() {
      await closeAll(workers.map((w) => () => w.close({ timeoutMs: 1000 })));
      await closeAll(conns.map((c) => () => c.close()));
    },
  };
}
