/**
 * Shared helpers of the security tests: certificates made with openssl per run, a real server whose
 * log output is captured (to grep for secrets), the `messaging` CLI as a child process, and tokens.
 */
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { SignJWT, type JWTPayload } from 'jose';
import { pino } from 'pino';
import { assertNoErrors, loadConfig } from '../../src/config/index.ts';
import { startServer, type RunningServer } from '../../src/server/server.ts';

export const CLI = fileURLToPath(new URL('../../bin/messaging.js', import.meta.url));

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `messaging-sec-${prefix}-`));
}

export interface Pki {
  dir: string;
  path(name: string): string;
  read(name: string): string;
}

/**
 * A CA with a server certificate (localhost, 127.0.0.1) and a client certificate, plus a second,
 * unrelated CA with its own client certificate (a client the server must not trust).
 */
export function makePki(): Pki {
  const dir = tempDir('pki');
  const openssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const ca = (name: string, cn: string): void =>
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '1',
      '-subj',
      `/CN=${cn}`,
    );
  const issue = (caName: string, name: string, cn: string, ext: string): void => {
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${cn}`,
    );
    writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${caName}.crt`,
      '-CAkey',
      `${caName}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
    );
  };
  ca('ca', 'messaging test CA');
  issue('ca', 'server', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1');
  issue('ca', 'client', 'test-client', 'basicConstraints=CA:FALSE');
  ca('rogue-ca', 'rogue CA');
  issue('rogue-ca', 'rogue', 'rogue-client', 'basicConstraints=CA:FALSE');
  return { dir, path: (n) => join(dir, n), read: (n) => readFileSync(join(dir, n), 'utf8') };
}

export interface CapturedServer {
  server: RunningServer;
  port: number;
  adminPort: number;
  dataDir: string;
  /** Everything the server logged so far (JSON lines). */
  logs(): string;
  close(): Promise<void>;
}

/**
 * Starts a real server in this process on free ports with `overrides` (dotted config ids), logging at
 * `level` into memory. `dataDir` reuses a directory (restarts); otherwise a fresh one is made.
 */
export async function startCaptured(
  overrides: Record<string, string> = {},
  options: { level?: string; dataDir?: string; keepData?: boolean; env?: Record<string, string> } = {},
): Promise<CapturedServer> {
  const dataDir = options.dataDir ?? tempDir('data');
  const { config, problems } = loadConfig({
    env: options.env ?? {},
    overrides: {
      'network.listen_port': '0',
      'network.bind_address': '127.0.0.1',
      'monitoring.metrics_port': '0',
      'message_bus.persistence_path': dataDir,
      'message_bus.storage': 'memory',
      ...overrides,
    },
  });
  assertNoErrors(problems);
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  const logger = pino({ level: options.level ?? process.env.TEST_LOG ?? 'info' }, sink);
  const server = await startServer(config, { logger });
  return {
    server,
    port: server.port,
    adminPort: server.adminPort,
    dataDir,
    logs: () => text,
    async close() {
      await server.close({ deadlineMs: 1000 });
      if (!options.keepData && !options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export const SECRET = `test-jwt-secret-${randomBytes(16).toString('hex')}`;

/** Signs an HS256 token with `secret` (default SECRET); `exp` defaults to an hour from now. */
export async function hsToken(
  claims: JWTPayload & { sub?: string },
  options: { secret?: string; expS?: number; header?: Record<string, unknown> } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ exp: now + (options.expS ?? 3600), ...claims })
    .setProtectedHeader({ alg: 'HS256', ...options.header })
    .setIssuedAt()
    .sign(new TextEncoder().encode(options.secret ?? SECRET));
}

export function rsaKeys(dir: string): {
  publicFile: string;
  privateFile: string;
  publicPem: string;
  privatePem: string;
} {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const publicFile = join(dir, 'public.pem');
  const privateFile = join(dir, 'private.pem');
  writeFileSync(publicFile, publicPem);
  writeFileSync(privateFile, privatePem, { mode: 0o600 });
  return { publicFile, privateFile, publicPem, privatePem };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the `messaging` CLI with a clean environment plus `env`. */
export function runCli(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
