/**
 * What a worker runs: a map from task name to handler. A handler is `async (args, ctx) => result`, or an
 * object that also says where it runs:
 *
 *   export default {
 *     'email.send': async (args, ctx) => …,                       // the realtime pool (default)
 *     resize: { pool: 'batch', handler: async (args, ctx) => … },  // the batch pool
 *     digest: { cpu: true, handler: (args) => … },                 // a worker_threads pool
 *   };
 *
 * A handlers module may also export `queuePools` (`{ reports: 'background' }`): every task of that queue
 * runs in that pool unless its handler names a pool itself.
 */
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
import type { TaskAssignment } from '../client/tasks.ts';

export type PoolName = 'realtime' | 'batch' | 'background' | 'cpu';
export const POOL_NAMES: readonly PoolName[] = ['realtime', 'batch', 'background', 'cpu'];

/** What a handler gets besides its args. */
export interface TaskContext {
  /** The task's id. */
  readonly id: string;
  readonly name: string;
  readonly queue: string;
  /** 1 on the first attempt. */
  readonly attempt: number;
  /**
   * Aborts when the task is cancelled, its timeout passes, the worker shuts down past its deadline, or
   * the task went to another worker (lost lock). `signal.reason` says which.
   */
  readonly signal: AbortSignal;
  /** Live progress, 0–1 with an optional message: visible through `task.get` while the task runs. */
  progress(value: number, message?: string): void;
  /** A chain step (or chord callback) declared with its own args: the previous result(s). */
  readonly previous: unknown;
  /** The task as assigned: args, attempt, timeout, tags, parent, schedule… */
  readonly task: TaskAssignment;
  /**
   * W3C traceparent of this attempt's `task.run` span when the task was submitted with one: start the
   * handler's own span under it to continue the submitter's trace. Undefined for untraced tasks.
   */
  readonly traceparent: string | undefined;
}

/**
 * A task handler. Declared with a `never` parameter so handlers with any argument type fit the map
 * (`(args: { width: number }, ctx) => …`); the worker passes the task's args as they came.
 */
export type TaskHandler = (args: never, ctx: TaskContext) => unknown;

export interface HandlerOptions {
  handler: TaskHandler;
  /** Where it runs (default: its queue's pool, else `realtime`). */
  pool?: PoolName;
  /** Same as `pool: 'cpu'`: run in a worker_threads pool (the handlers module is loaded in each thread). */
  cpu?: boolean;
}

export type HandlerEntry = TaskHandler | HandlerOptions;
export type Handlers = Record<string, HandlerEntry>;

export interface ResolvedHandler {
  name: string;
  fn: (args: unknown, ctx: TaskContext) => unknown;
  /** The pool the handler itself asks for; undefined = its queue's pool. */
  pool: PoolName | undefined;
}

export function resolveHandlers(handlers: Handlers): Map<string, ResolvedHandler> {
  const out = new Map<string, ResolvedHandler>();
  for (const [name, entry] of Object.entries(handlers)) {
    const fn = typeof entry === 'function' ? entry : entry?.handler;
    if (typeof fn !== 'function')
      throw new TypeError(`handler "${name}" is not a function (nor { handler })`);
    let pool: PoolName | undefined;
    if (typeof entry === 'object') {
      if (entry.cpu) pool = 'cpu';
      if (entry.pool !== undefined) {
        if (!POOL_NAMES.includes(entry.pool))
          throw new TypeError(`handler "${name}": pool must be one of ${POOL_NAMES.join(', ')}`);
        pool = entry.pool;
      }
    }
    out.set(name, { name, fn: fn as (args: unknown, ctx: TaskContext) => unknown, pool });
  }
  return out;
}

export interface HandlersModule {
  handlers: Handlers;
  queuePools: Record<string, PoolName>;
  /** file: URL of the module, for worker threads. */
  url: string;
}

/** Imports a handlers module (`--tasks ./handlers.js`): its default export (or `handlers`). */
export async function loadHandlersModule(path: string): Promise<HandlersModule> {
  const url = path.startsWith('file:') ? path : pathToFileURL(resolve(path)).href;
  const mod = (await import(url)) as { default?: unknown; handlers?: unknown; queuePools?: unknown };
  const handlers = (mod.default ?? mod.handlers) as Handlers | undefined;
  if (!handlers || typeof handlers !== 'object')
    throw new TypeError(`${path} must export default an object mapping task names to handlers`);
  const queuePools: Record<string, PoolName> = {};
  if (mod.queuePools && typeof mod.queuePools === 'object') {
    for (const [q, p] of Object.entries(mod.queuePools as Record<string, unknown>)) {
      if (!POOL_NAMES.includes(p as PoolName))
        throw new TypeError(`queuePools.${q}: unknown pool ${String(p)}`);
      queuePools[q] = p as PoolName;
    }
  }
  return { handlers, queuePools, url };
}
