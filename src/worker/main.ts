/**
 * `messaging_worker`: runs the task handlers of a module against a server until SIGTERM/SIGINT, then
 * shuts down gracefully — running tasks finish (until `--shutdown-timeout`), the rest are handed back —
 * and exits 0.
 *
 *   messaging_worker --tasks ./handlers.js --queues default,emails --concurrency 8
 */
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { Command, InvalidArgumentError } from 'commander';
import { connect, type ConnectOptions } from '../client/index.ts';
import { loadConfig } from '../config/index.ts';
import { loadHandlersModule, POOL_NAMES, type PoolName } from './handlers.ts';
import { Worker, type WorkerOptions } from './worker.ts';

function positiveInt(name: string, min = 1) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`${name} must be an integer >= ${min}`);
    return n;
  };
}

function collectPair(kind: string) {
  return (value: string, previous: string[] = []): string[] => {
    if (!/^[^=]+=[^=]+$/.test(value)) throw new InvalidArgumentError(`${kind} is written NAME=VALUE`);
    return [...previous, value];
  };
}

interface Flags {
  tasks: string;
  queues?: string;
  concurrency?: number;
  pool?: string[];
  queuePool?: string[];
  prefetch?: number;
  lockMs?: number;
  shutdownTimeout?: number;
  server?: string;
  token?: string;
  tokenFile?: string;
  config?: string;
  id?: string;
}

const program = new Command('messaging_worker')
  .description('runs task handlers for messaging-system: pools, heartbeats, graceful shutdown')
  .requiredOption('--tasks <module>', 'handlers module: its default export maps task names to handlers')
  .option('--queues <list>', 'comma-separated queues to take tasks from (default: default)')
  .option(
    '--concurrency <n>',
    'handlers run at once in the realtime (default) pool (default: WORKER_THREADS, or [thread_pool] realtime_threads with --config, or the CPU count)',
    positiveInt('--concurrency'),
  )
  .option(
    '--pool <name=n>',
    `concurrency of one pool (${POOL_NAMES.join(', ')}); repeatable`,
    collectPair('--pool'),
  )
  .option(
    '--queue-pool <queue=pool>',
    'run every task of a queue in a pool; repeatable',
    collectPair('--queue-pool'),
  )
  .option(
    '--prefetch <n>',
    'tasks a pool holds beyond its concurrency (default: its concurrency)',
    positiveInt('--prefetch', 0),
  )
  .option(
    '--lock-ms <ms>',
    'lock of a held task, renewed by heartbeats (default 30000)',
    positiveInt('--lock-ms', 100),
  )
  .option(
    '--shutdown-timeout <ms>',
    'on SIGTERM, how long running tasks may finish before they are handed back (default 30000)',
    positiveInt('--shutdown-timeout', 0),
  )
  .option('--server <url>', 'server URL (env MESSAGING_URL; default tcp://127.0.0.1:8080)')
  .option('--token <jwt>', 'authentication token (env MESSAGING_TOKEN)')
  .option(
    '--token-file <path>',
    'file holding the token, read again on every reconnect, so a rotated token is picked up (env MESSAGING_TOKEN_FILE)',
  )
  .option('-c, --config <path>', 'INI config: [thread_pool] sizes the pools')
  .option('--id <id>', 'worker id (default <hostname>-<pid>-<random>)')
  .addHelpText(
    'after',
    `
Pools: realtime (default), batch, background, and cpu (worker_threads). A handler picks its pool with
{ pool: 'batch', handler } or { cpu: true, handler }; --queue-pool (or an exported queuePools object)
sends a whole queue to a pool. Without --config, batch and background pools take the realtime size;
with --config they take [thread_pool] batch_threads / background_threads.

Examples:
  messaging_worker --tasks ./handlers.js
  messaging_worker --tasks ./handlers.js --queues default,emails --concurrency 8 --pool batch=2
  MESSAGING_URL=tcp://broker:8080 WORKER_THREADS=16 messaging_worker --tasks dist/handlers.js`,
  );

program.parse();
const flags = program.opts<Flags>();

function log(message: string, extra?: Record<string, unknown>): void {
  process.stderr.write(
    `${JSON.stringify({ time: new Date().toISOString(), module: 'worker', msg: message, ...extra })}\n`,
  );
}

function pairs(list: string[] | undefined): [string, string][] {
  return (list ?? []).map((p) => {
    const at = p.indexOf('=');
    return [p.slice(0, at).trim(), p.slice(at + 1).trim()];
  });
}

async function main(): Promise<number> {
  const { config } = loadConfig({ env: process.env, ...(flags.config ? { path: flags.config } : {}) });
  const tp = config.thread_pool;
  const realtime = flags.concurrency ?? (flags.config ? tp.realtime_threads : tp.worker_threads);
  const pools: Partial<Record<PoolName, number>> = {
    realtime,
    batch: flags.config ? tp.batch_threads : realtime,
    background: flags.config ? tp.background_threads : realtime,
    cpu: availableParallelism(),
  };
  for (const [name, value] of pairs(flags.pool)) {
    if (!POOL_NAMES.includes(name as PoolName))
      throw new Error(`--pool ${name}: pools are ${POOL_NAMES.join(', ')}`);
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0)
      throw new Error(`--pool ${name}=${value}: the size must be an integer >= 0`);
    pools[name as PoolName] = n;
  }
  const mod = await loadHandlersModule(flags.tasks);
  const queuePools: Record<string, PoolName> = { ...mod.queuePools };
  for (const [queue, pool] of pairs(flags.queuePool)) {
    if (!POOL_NAMES.includes(pool as PoolName))
      throw new Error(`--queue-pool ${queue}=${pool}: unknown pool`);
    queuePools[queue] = pool as PoolName;
  }
  const server = flags.server ?? process.env['MESSAGING_URL'] ?? 'tcp://127.0.0.1:8080';
  const options: ConnectOptions = { servers: server, name: 'messaging_worker', reconnect: true };
  const token = flags.token ?? process.env['MESSAGING_TOKEN'];
  const tokenFile = flags.tokenFile ?? process.env['MESSAGING_TOKEN_FILE'];
  if (tokenFile) options.token = async () => (await readFile(tokenFile, 'utf8')).trim();
  else if (token) options.token = token;
  const conn = await connect(options);
  conn.on('disconnect', ({ error }) => log('connection lost; reconnecting', { error: error.message }));
  conn.on('reconnect', ({ server: url }) => log('reconnected', { server: url }));

  const workerOptions: WorkerOptions = {
    queues: flags.queues
      ? flags.queues
          .split(',')
          .map((q) => q.trim())
          .filter(Boolean)
      : ['default'],
    pools,
    queuePools,
    handlersModule: mod.url,
    autostart: false,
  };
  if (flags.prefetch !== undefined) workerOptions.prefetch = flags.prefetch;
  if (flags.lockMs !== undefined) workerOptions.lockMs = flags.lockMs;
  if (flags.id !== undefined) workerOptions.id = flags.id;
  const worker = new Worker(conn, mod.handlers, workerOptions);
  worker.on('error', (err) => log('worker error', { error: err.message }));
  worker.on('failed', ({ task, error, state }) =>
    log('task attempt failed', {
      id: task.id,
      name: task.name,
      attempt: task.attempts,
      state,
      error: error.message,
    }),
  );
  // Handlers first: a signal that arrives the moment "ready" is printed (or while starting) must find
  // them in place, not the default action that kills the process mid-task.
  let resolveExit!: (code: number) => void;
  const exit = new Promise<number>((resolve) => (resolveExit = resolve));
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log('second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    const timeoutMs = flags.shutdownTimeout ?? 30_000;
    log('shutting down: finishing running tasks', { signal, running: worker.running, timeout_ms: timeoutMs });
    worker
      .close({ timeoutMs })
      .then(async (summary) => {
        log('shutdown complete', summary);
        await conn.close().catch(() => undefined);
        resolveExit(0);
      })
      .catch((err: unknown) => {
        log('shutdown failed', { error: String(err) });
        resolveExit(1);
      });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  await worker.start();
  if (!stopping) {
    log('messaging_worker ready', {
      worker: worker.id,
      server,
      queues: workerOptions.queues,
      pools: worker.poolSizes,
      handlers: Object.keys(mod.handlers),
    });
  }
  return exit;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log('messaging_worker failed to start', { error: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  },
);
