/**
 * Starts our server as a child process, like the rivals run as their own processes: the broker gets its
 * own event loop and the benchmark clients cannot steal its CPU time within one thread.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, now, sleep } from './util.ts';

export interface OursServer {
  url: string;
  port: number;
  metricsPort: number;
  pid: number;
  stop(): Promise<void>;
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const READY_LIMIT_MS = 20_000;

async function isReady(metricsPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/ready`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

export interface OursServerOptions {
  /** The file engine's directory; a fresh temporary one (removed at stop) when absent. */
  dataDir?: string;
  /** `[message_bus] fsync` for the file engine (default batch: confirm after the group's fsync). */
  fsync?: 'always' | 'batch' | 'none';
  /** The PostgreSQL engine on this database (DB_* variables) instead of the file engine. */
  postgres?: { host: string; port: number; database: string; user: string; password: string };
  /** The memory engine (`storage = memory`: nothing reaches the disk) instead of the file engine. */
  memory?: boolean;
  /** `[message_bus] cache_mb`: RAM for message bodies (default: the server's). */
  cacheMb?: number;
}

/** Runs with the embedded file store, as deployed by default, so durable suites use real fsyncs. */
export async function startOursServer(options: OursServerOptions = {}): Promise<OursServer> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'bench-ours-'));
  const port = await freePort();
  let metricsPort = await freePort();
  while (metricsPort === port) metricsPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      '--no-memory-reducer', // as every launcher of the server (see bin/messaging_server.js)
      ...(process.env.BENCH_SERVER_NODE_FLAGS?.split(' ').filter(Boolean) ?? []),
      'bin/messaging_server.js',
      '--storage',
      options.postgres ? 'postgres' : options.memory ? 'memory' : 'file',
      '--data',
      dataDir,
      '--port',
      String(port),
      '--metrics-port',
      String(metricsPort),
    ],
    {
      cwd: ROOT,
      env: {
        ...process.env,
        MESSAGING_LOG_LEVEL: 'warn',
        MESSAGING_FSYNC: options.fsync ?? 'batch',
        ...(options.cacheMb !== undefined ? { MESSAGING_CACHE_MB: String(options.cacheMb) } : {}),
        ...(options.postgres
          ? {
              DB_HOST: options.postgres.host,
              DB_PORT: String(options.postgres.port),
              DB_NAME: options.postgres.database,
              DB_USER: options.postgres.user,
              DB_PASSWORD: options.postgres.password,
            }
          : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  // Keep the tail of the output: it is the reason shown when the server does not come up.
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);

  const stop = async (): Promise<void> => {
    if (exited(child)) return;
    child.kill('SIGTERM');
    const deadline = now() + 5000;
    while (!exited(child) && now() < deadline) await sleep(20);
    if (!exited(child)) child.kill('SIGKILL');
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
  };

  const deadline = now() + READY_LIMIT_MS;
  while (!(await isReady(metricsPort))) {
    if (exited(child)) {
      const last = output.trim().split('\n').slice(-3).join(' | ');
      throw new Error(
        `server exited with code ${child.exitCode ?? child.signalCode}: ${last || 'no output'}`,
      );
    }
    if (now() > deadline) {
      await stop();
      throw new Error(
        `server not ready on http://127.0.0.1:${metricsPort}/ready within ${READY_LIMIT_MS} ms`,
      );
    }
    await sleep(100);
  }
  return { url: `tcp://127.0.0.1:${port}`, port, metricsPort, pid: child.pid ?? 0, stop };
}
