/**
 * `npm pack` gives installable packages: the server (the repository root) and the client SDK
 * (scripts/pack-client.sh → @messaging-system/client). Each tarball is installed into a fresh project
 * and used from there: the server's binary starts and serves /health; the client connects to a running
 * server, publishes, subscribes and does request/reply, and its type declarations check under tsc.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startChildServer } from '../helpers/child-server.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'messaging-pack-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

function run(cmd: string, args: string[], cwd: string) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 300_000, env: process.env });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

function project(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, private: true, type: 'module' }));
  return dir;
}

test('npm pack: the server package installs into a fresh project and its binary serves /health', async () => {
  const out = join(work, 'server-pack');
  mkdirSync(out);
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', out], ROOT)) as Array<{
    filename: string;
    files: Array<{ path: string }>;
  }>;
  const files = packed[0]!.files.map((f) => f.path);
  assert.ok(files.includes('bin/messaging_server.js') && files.includes('src/server/main.ts'));
  assert.ok(files.includes('deploy/scripts/backup.sh') && files.includes('docs/operations.md'));
  assert.ok(!files.some((f) => f.startsWith('test/') || f.startsWith('bench/')), 'no tests in the package');

  const app = project('server-app');
  run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', join(out, packed[0]!.filename)], app);
  const bin = join(app, 'node_modules/.bin/messaging_server');
  assert.ok(existsSync(bin));
  assert.match(run(bin, ['--version'], app), /^\d+\.\d+\.\d+/);

  const adminPort = await freePort();
  const args = ['--port', String(await freePort()), '--metrics-port', String(adminPort), '--storage', 'memory'];
  const server = spawn(bin, args, { cwd: app, stdio: 'ignore', env: { PATH: process.env.PATH ?? '' } });
  const exited = new Promise((r) => server.once('exit', r));
  try {
    let status = 0;
    for (let i = 0; i < 300 && status !== 200 && server.exitCode === null; i++) {
      status = await fetch(`http://127.0.0.1:${adminPort}/health`).then(
        (r) => r.status,
        () => 0,
      );
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 200);
  } finally {
    server.kill('SIGTERM');
    await exited;
  }
});

test('the client package installs alone, connects to a running server, and its types check', async (t) => {
  const out = join(work, 'client-pack');
  const tgz = run('bash', [join(ROOT, 'scripts/pack-client.sh'), out], ROOT).trim().split('\n').at(-1)!;
  assert.match(tgz, /messaging-system-client-\d+\.\d+\.\d+\.tgz$/);
  const app = project('client-app');
  run('npm', ['install', '--no-audit', '--no-fund', '--offline', tgz], app);
  assert.ok(!existsSync(join(app, 'node_modules/pino')), 'no server dependencies come along');

  const server = await startChildServer(join(work, 'client-data'));
  t.after(() => server.kill('SIGTERM'));
  writeFileSync(
    join(app, 'main.js'),
    `import { connect } from '@messaging-system/client';
const nc = await connect({ servers: 'tcp://127.0.0.1:${server.port}' });
const got = [];
nc.subscribe('greetings.*', { callback: (m) => got.push(m.topic + '=' + m.string()) });
nc.subscribe('svc.echo', { callback: (m) => m.respond('echo:' + m.string()) });
await nc.flush?.();
nc.publish('greetings.en', 'hello');
const reply = await nc.request('svc.echo', 'ping', { timeoutMs: 5000 });
await nc.queues.declare({ name: 'packed', bindings: ['packed.#'] });
await nc.publish('packed.one', 'stored', { confirm: true });
const [queued] = await nc.queues.pull('packed', { max: 1 });
await queued.ack();
await nc.drain();
console.log(JSON.stringify({ got, reply: reply.string(), queued: queued.string() }));
`,
  );
  const result = JSON.parse(run(process.execPath, ['main.js'], app)) as Record<string, unknown>;
  assert.deepEqual(result, { got: ['greetings.en=hello'], reply: 'echo:ping', queued: 'stored' });

  // A TypeScript user gets the declarations.
  writeFileSync(
    join(app, 'typed.ts'),
    `import { connect, type Message, MessagingError } from '@messaging-system/client';
const nc = await connect({ servers: 'tcp://127.0.0.1:1', maxReconnectAttempts: 0 }).catch((e: MessagingError) => e);
const topic = (m: Message): string => m.topic;
export { nc, topic };
`,
  );
  const tsc = join(ROOT, 'node_modules/.bin/tsc');
  run(tsc, ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--types', 'node', '--typeRoots', join(ROOT, 'node_modules/@types'), 'typed.ts'], app);
});
