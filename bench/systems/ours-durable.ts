/**
 * Our durable queues and tasks in the durable/tasks suites. Not implemented yet: the harness reports these
 * rows as "skipped: not implemented yet". Fill in with the SDK's queue and task APIs when they land, the
 * same shape as rabbitmq-durable.ts / bullmq.ts (persistent messages, confirms, manual acks; no-op tasks).
 */
import type { DurableExtras, DurableSystem, Endpoints, TaskSystem } from '../types.ts';
import { NotImplementedError } from '../lib/util.ts';

const notYet = (what: string): never => {
  throw new NotImplementedError(`not yet implemented: ${what}`);
};

export function oursDurable(_ep: Endpoints): DurableSystem {
  return {
    id: 'ours',
    label: 'messaging-system',
    client: 'src/client',
    notes: 'durable queue, persistent messages, publisher confirms, manual ack',
    fsync: 'to be stated with the storage engine',
    setup: () => Promise.reject(notYet('durable queues land with issue 3')),
    startConsumer: () => Promise.reject(notYet('durable queues land with issue 3')),
    publish: () => Promise.reject(notYet('durable queues land with issue 3')),
    serverVersion: () => undefined,
    close: () => Promise.resolve(),
  };
}

/** Recovery time for 1M stored messages and RAM per stored message: ours only, no rival equivalent. */
export function oursDurableExtras(_ep: Endpoints): DurableExtras {
  return {
    recoveryTimeMs: () => Promise.reject(notYet('durable queues land with issue 3 (recovery time)')),
    ramBytesPerMessage: () =>
      Promise.reject(notYet('durable queues land with issue 3 (RAM per stored message)')),
  };
}

export function oursTasks(_ep: Endpoints): TaskSystem {
  return {
    id: 'ours',
    label: 'messaging-system',
    client: 'src/client',
    notes: 'no-op tasks, 1 and 4 workers',
    setup: () => Promise.reject(notYet('tasks land with a later issue')),
    submit: () => Promise.reject(notYet('tasks land with a later issue')),
    serverVersion: () => undefined,
    close: () => Promise.resolve(),
  };
}
