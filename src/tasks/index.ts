/**
 * The server-side task engine: the public surface for the composition root (`src/server/server.ts`).
 * Task state lives in the storage (`src/storage/task-types.ts` is the model and the transition table,
 * `src/storage/task-engine.ts` performs every transition); this package is the service on top of it.
 */
import type { Logger } from 'pino';
import type { Broker } from '../core/broker.ts';
import type { Metrics } from '../observability/metrics.ts';
import type { HttpApi } from '../server/http-api.ts';
import type { CommandHandler } from '../server/session.ts';
import type { Storage } from '../storage/types.ts';
import { registerTaskCommands } from './commands.ts';
import { registerTaskRoutes } from './routes.ts';
import { TaskService } from './service.ts';

export { TaskService, type SettleItem, type SettleResult, type TaskServiceOptions } from './service.ts';
export { Scheduler, dueTick, scheduleFromArgs } from './schedules.ts';
export { parseCron } from './cron.ts';
export { afterFailure, retryDelay, TASK_DEFAULTS } from './model.ts';
export { EVENT_TOPIC_PREFIX, type TaskEvent, type TaskEventName, type WorkerEvent } from './events.ts';

export interface TaskServiceDeps {
  commands: Map<string, CommandHandler>;
  api: HttpApi;
  broker: Broker;
  storage: Storage;
  metrics?: Metrics;
  logger?: Logger;
}

/** Creates the task service, registers its CMD ops and REST routes, and starts its timers. */
export async function registerTaskService(deps: TaskServiceDeps): Promise<TaskService> {
  const service = new TaskService({
    storage: deps.storage,
    broker: deps.broker,
    ...(deps.metrics ? { metrics: deps.metrics } : {}),
    ...(deps.logger ? { logger: deps.logger } : {}),
  });
  registerTaskCommands(deps.commands, service);
  registerTaskRoutes(deps.api, service);
  await service.start();
  return service;
}
