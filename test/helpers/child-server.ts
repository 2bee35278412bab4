/**
 * Runs `bin/messaging_server.js` as a real child process, so tests can kill -9 it and restart it on the
 * same data directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

const BIN = new URL('../../bin/messaging_server.js', import.meta.url).pathname;

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const address = srv.address();
  await new Promise((r) => srv.close(r));
  return typeof address === 'object' && address ? address.port : 0;
}

export interface ChildServer {
  child: ChildProcess;
  port: number;
  adminPort: number;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** A server on the file store in `dataDir`, killed with SIGKILL by default (crash tests). */
export function startChildServer(dataDir: string, env: Record<string, string> = {}): Promise<ChildServer> {
  return spawnServer(['--data', dataDir, '--storage', 'file'], { MESSAGING_LOG_LEVEL: 'info', ...env });
}

/**
 * Starts `messaging_server` on free ports with `args` and `env` (PATH is passed on, nothing else of
 * this process's environment) and resolves once `/ready` answers 200.
 */
export async function spawnServer(
  args: string[],
  env: Record<string, string>,
  defaultSignal: NodeJS.Signals = 'SIGKILL',
): Promise<ChildServer> {
  const port = await freePort();
  const adminPort = await freePort();
  const child = spawn(
    process.execPath,
    [BIN, '--port', String(port), '--metrics-port', String(adminPort), ...args],
    { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitReady(
    adminPort,
    () => (child.exitCode !== null ? `server exited early: ${out}` : undefined),
    () => out,
  );
  return {
    child,
    port,
    adminPort,
    output: () => out,
    async kill(signal: NodeJS.Signals = defaultSignal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Polls `/ready` on `adminPort` until 200; fails when `failed()` names a reason or after 30 s. */
export async function waitReady(
  adminPort: number,
  failed: () => string | undefined,
  output: () => string = () => '',
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = failed();
    if (why !== undefined) throw new Error(why);
    if (Date.now() > deadline) throw new Error(`server not ready in time: ${output()}`);
    const ready = await fetch(`http://127.0.0.1:${adminPort}/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}
