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

export async function startChildServer(
  dataDir: string,
  env: Record<string, string> = {},
): Promise<ChildServer> {
  const port = await freePort();
  const adminPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      BIN,
      '--port',
      String(port),
      '--metrics-port',
      String(adminPort),
      '--data',
      dataDir,
      '--storage',
      'file',
    ],
    {
      env: { PATH: process.env.PATH ?? '', MESSAGING_LOG_LEVEL: 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited early: ${out}`);
    if (Date.now() > deadline) throw new Error(`server not ready in time: ${out}`);
    const ready = await fetch(`http://127.0.0.1:${adminPort}/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    port,
    adminPort,
    output: () => out,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
