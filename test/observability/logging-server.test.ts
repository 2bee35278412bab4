/**
 * `[logging]` in the real `messaging_server` binary, run as a child process: the level changes on SIGHUP
 * without a restart, `levels.<module>` is honoured, the file output is written, and the values of secret
 * settings never appear in any output.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/child-server.ts';
import { RawClient } from '../helpers/raw-client.ts';

const BIN = new URL('../../bin/messaging_server.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'messaging-logging-server-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const DB_PASSWORD = 'Db-pass-7f3a9c2e1b';
const JWT_SECRET = 'Jwt-secret-5d8e0a4c6b2f9e1d3a7c';
const API_KEY = 'Api-key-9b1c7e3f5a';

interface Running {
  child: ChildProcess;
  adminPort: number;
  port: number;
  output: () => string;
  stop: () => Promise<void>;
}

async function start(configPath: string, dataDir: string): Promise<Running> {
  const port = await freePort();
  const adminPort = await freePort();
  const child = spawn(
    process.execPath,
    [
      BIN,
      '--config',
      configPath,
      '--port',
      String(port),
      '--metrics-port',
      String(adminPort),
      '--data',
      dataDir,
    ],
    {
      env: { PATH: process.env.PATH ?? '', DB_PASSWORD, JWT_SECRET, API_KEY },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(
    'the server to be ready',
    async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => undefined))?.ok === true,
    90_000,
    () => (child.exitCode !== null ? `server exited early:\n${out}` : undefined),
  );
  return {
    child,
    port,
    adminPort,
    output: () => out,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  fatal: () => string | undefined = () => undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reason = fatal();
    if (reason !== undefined) throw new Error(reason);
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Opens a native-protocol session and closes it: the server logs the close at debug. */
async function touchConnection(port: number): Promise<void> {
  const client = await RawClient.ready(port);
  client.socket.end();
  await new Promise((r) => client.socket.once('close', r));
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const debugLines = (text: string, module: string): Record<string, unknown>[] =>
  jsonLines(text).filter((l) => l.level === 'debug' && l.module === module);

test('SIGHUP applies a new log level and module levels without a restart', async () => {
  const configPath = join(dir, 'sighup.ini');
  const logFile = join(dir, 'sighup-logs', 'messaging.log');
  const base = `[database]\npassword = \${DB_PASSWORD}\n[logging]\nfile.enabled = true\nfile.path = ${logFile}\n`;
  writeFileSync(configPath, `[system]\nlog_level = warn\n${base}`);
  const server = await start(configPath, join(dir, 'sighup-data'));
  try {
    const pid = server.child.pid;
    await touchConnection(server.port);
    await fetch(`http://127.0.0.1:${server.adminPort}/health`);
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(debugLines(server.output(), 'network'), [], 'no debug lines at level warn');
    assert.deepEqual(
      jsonLines(server.output()).filter((l) => l.level === 'info'),
      [],
    );

    // The operator edits the file and sends SIGHUP: debug everywhere except the admin port.
    writeFileSync(configPath, `[system]\nlog_level = debug\n${base}levels.admin = warn\n`);
    server.child.kill('SIGHUP');
    await waitFor('the reload line', () => server.output().includes('SIGHUP: config reloaded'));
    await touchConnection(server.port);
    await fetch(`http://127.0.0.1:${server.adminPort}/health`);
    await waitFor('a network debug line', () => debugLines(server.output(), 'network').length > 0);
    assert.equal(server.child.pid, pid, 'same process: no restart');
    assert.equal(server.child.exitCode, null);
    assert.deepEqual(debugLines(server.output(), 'admin'), [], 'levels.admin = warn silences admin debug');
    const closed = debugLines(server.output(), 'network').find((l) => l.msg === 'connection closed');
    assert.ok(closed, server.output());

    // Back to warn: debug stops again.
    writeFileSync(configPath, `[system]\nlog_level = warn\n${base}`);
    server.child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    const before = debugLines(server.output(), 'network').length;
    await touchConnection(server.port);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(debugLines(server.output(), 'network').length, before);

    // A broken config on SIGHUP is refused and the server keeps running.
    writeFileSync(configPath, `[logging]\nlevel = loud\n`);
    server.child.kill('SIGHUP');
    await waitFor('the refusal', () => server.output().includes('keeping the running settings'));
    assert.equal((await fetch(`http://127.0.0.1:${server.adminPort}/health`)).status, 200);

    // The file output got the same lines as the console.
    await server.stop();
    const file = readFileSync(logFile, 'utf8');
    assert.ok(debugLines(file, 'network').some((l) => l.msg === 'connection closed'));
    assert.ok(file.includes('SIGHUP: config reloaded'));
  } finally {
    await server.stop();
  }
});

test('the values of secret settings never appear in console, file or --print-config output', async () => {
  const configPath = join(dir, 'secrets.ini');
  const logFile = join(dir, 'secret-logs', 'messaging.log');
  writeFileSync(
    configPath,
    [
      '[system]',
      'log_level = trace',
      '[database]',
      'password = ${DB_PASSWORD}',
      '[security]',
      'jwt_secret = ${JWT_SECRET}',
      '[logging]',
      'file.enabled = true',
      `file.path = ${logFile}`,
      '',
    ].join('\n'),
  );
  const server = await start(configPath, join(dir, 'secret-data'));
  await touchConnection(server.port);
  for (const path of ['/health', '/health/detailed', '/ready', '/metrics']) {
    await fetch(`http://127.0.0.1:${server.adminPort}${path}`);
  }
  await fetch(`http://127.0.0.1:${server.port}/v1/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${JWT_SECRET}`, 'content-type': 'application/json' },
    body: JSON.stringify({ topic: 'orders.created', payload: 'x' }),
  });
  server.child.kill('SIGHUP');
  await waitFor('the reload line', () => server.output().includes('SIGHUP: config reloaded'));
  await server.stop();

  const printed = await new Promise<string>((resolve) => {
    const child = spawn(process.execPath, [BIN, '--config', configPath, '--print-config'], {
      env: { PATH: process.env.PATH ?? '', DB_PASSWORD, JWT_SECRET, API_KEY },
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    child.on('close', () => resolve(text)); // after the output is all read, unlike 'exit'
  });
  assert.ok(existsSync(logFile));
  const outputs = { console: server.output(), file: readFileSync(logFile, 'utf8'), printed };
  assert.ok(
    jsonLines(outputs.console).some((l) => l.level === 'debug'),
    'trace/debug lines were written',
  );
  for (const [name, text] of Object.entries(outputs)) {
    for (const secret of [DB_PASSWORD, JWT_SECRET, API_KEY]) {
      assert.ok(!text.includes(secret), `${name} output contains a secret:\n${text}`);
    }
  }
});
