/**
 * The worker runtime — public surface. Use it in-process:
 *
 * ```ts
 * import { connect } from '../client/index.ts';
 * import { Worker, UnrecoverableError } from '../worker/index.ts';
 * const conn = await connect({ servers: 'tcp://127.0.0.1:8080' });
 * const worker = new Worker(conn, {
 *   'email.send': async (args, ctx) => { ctx.progress(0.5, 'rendering'); … return { sent: true }; },
 * }, { queues: ['default', 'emails'], concurrency: 8 });
 * await worker.ready();
 * …
 * await worker.close(); // finishes running tasks (until a deadline), hands back the rest
 * ```
 *
 * or as a process: `messaging_worker --tasks ./handlers.js --queues default,emails --concurrency 8`.
 */
export { Worker, type WorkerEvents, type WorkerOptions } from './worker.ts';
export {
  POOL_NAMES,
  loadHandlersModule,
  type HandlerEntry,
  type HandlerOptions,
  type Handlers,
  type HandlersModule,
  type PoolName,
  type TaskContext,
  type TaskHandler,
} from './handlers.ts';
export { RetryLaterError, TaskAbortedError, TaskTimeoutError, UnrecoverableError } from './errors.ts';
