/**
 * BullMQ on the local Redis: one Queue to submit, `workers` Worker instances (concurrency 1 each) running
 * a no-op processor. Completed jobs are removed (removeOnComplete) so Redis does not grow over the run.
 */
import { Queue, Worker, type ConnectionOptions } from 'bullmq';
import type { Endpoints, TaskJobInfo, TaskSystem } from '../types.ts';
import { clientVersion } from '../lib/versions.ts';
import { closeAll, runTag, UnavailableError, errorText } from '../lib/util.ts';
import { redisConnect, redisVersion } from './redis.ts';

function connectionOf(url: string): ConnectionOptions {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null };
}

export function bullmqTasks(ep: Endpoints): TaskSystem {
  const name = `bench-${runTag()}`;
  let queue: Queue | undefined;
  const workers: Worker[] = [];
  let version: string | undefined;
  const jobOpts = { removeOnComplete: true, removeOnFail: true };
  return {
    id: 'bullmq',
    label: 'BullMQ',
    client: clientVersion('bullmq'),
    notes: 'queue.add awaited (window); Worker instances with concurrency 1; removeOnComplete',
    async setup(count: number, onStarted: (job: TaskJobInfo) => void, onCompleted: () => void) {
      // BullMQ retries a missing Redis forever; check reachability first so the run says "skipped".
      try {
        const probe = await redisConnect(ep.redisUrl, 'bench-bullmq-probe');
        version = await redisVersion(probe);
        await probe.quit();
      } catch (err) {
        throw new UnavailableError(errorText(err));
      }
      const connection = connectionOf(ep.redisUrl);
      queue = new Queue(name, { connection });
      await queue.waitUntilReady();
      for (let i = 0; i < count; i++) {
        const w = new Worker(
          name,
          async (job) => {
            onStarted({ dueAt: job.timestamp + (job.opts.delay ?? 0) });
          },
          { connection, concurrency: 1 },
        );
        w.on('completed', () => onCompleted());
        // Errors are retried by BullMQ itself; keep the event handled so it cannot crash the process.
        w.on('error', () => undefined);
        workers.push(w);
      }
      await Promise.all(workers.map((w) => w.waitUntilReady()));
    },
    async submit(delayMs?: number) {
      await queue!.add('noop', {}, delayMs ? { ...jobOpts, delay: delayMs } : jobOpts);
    },
    serverVersion: () => version,
    async close() {
      await closeAll(workers.map((w) => () => w.close(true)));
      if (queue) {
        await queue.obliterate({ force: true }).catch(() => undefined);
        await closeAll([() => queue!.close()]);
      }
    },
  };
}
