/**
 * deploy/Dockerfile, built without Docker: the `server` target's steps are replayed on the host in a
 * temporary directory (test/deploy/dockerfile.ts says how), from a build context made exactly as the
 * Dockerfile's .dockerignore admits it; then the image's CMD is started and its HEALTHCHECK run.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/child-server.ts';
import { buildContext, mapImagePaths, parseDockerfile, replayBuild, stageChain } from './dockerfile.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const DOCKERFILE = join(ROOT, 'deploy/Dockerfile');
const work = mkdtempSync(join(tmpdir(), 'messaging-dockerfile-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('the Dockerfile has the guide’s two images, a non-root user, health check and ports', () => {
  const file = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
  const names = file.stages.map((s) => s.name);
  assert.ok(names.includes('server') && names.includes('worker'), names.join(', '));
  assert.equal(file.stages.at(-1)!.name, 'server', 'a plain docker build builds the server');
  assert.match(file.args['NODE_IMAGE'] ?? '', /^node:20[-.]/, 'Node.js 20 base');
  for (const target of ['server', 'worker']) {
    const ops = stageChain(file, target).flatMap((s) => s.instructions);
    const user = ops.filter((i) => i.op === 'USER').at(-1)?.args;
    assert.ok(user && user !== 'root' && user !== '0', `${target} runs as a non-root user`);
    const cmd = ops.filter((i) => i.op === 'CMD').at(-1)?.args ?? '';
    assert.match(cmd, target === 'server' ? /messaging_server\.js/ : /messaging_worker\.js/);
    assert.ok(ops.some((i) => i.op === 'EXPOSE' && /8080/.test(i.args) && /9090/.test(i.args)));
  }
  const run = file.stages.flatMap((s) => s.instructions).filter((i) => i.op === 'RUN');
  assert.ok(run.some((i) => /npm ci --omit=dev/.test(i.args)), 'production dependencies only');
  const health = stageChain(file, 'server')
    .flatMap((s) => s.instructions)
    .find((i) => i.op === 'HEALTHCHECK');
  assert.match(health?.args ?? '', /9090.*\/health/);
});

test('replaying the server target’s build steps gives a server that starts and passes its HEALTHCHECK', async (t) => {
  const file = parseDockerfile(readFileSync(DOCKERFILE, 'utf8'));
  const context = join(work, 'context');
  const admitted = buildContext(ROOT, join(ROOT, 'deploy/Dockerfile.dockerignore'), context);
  t.diagnostic(`build context: ${admitted.join(', ')}`);
  const started = performance.now();
  const image = replayBuild(file, 'server', context, join(work, 'stages'));
  t.diagnostic(`build replayed in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  for (const note of image.notes) t.diagnostic(note);

  const app = join(image.root, image.workdir);
  assert.ok(existsSync(join(app, 'node_modules/tsx')), 'tsx is installed: the binaries run TypeScript');
  assert.ok(existsSync(join(app, 'node_modules/pino')));
  for (const dev of ['typescript', 'eslint', 'prettier', 'kubernetes-models']) {
    assert.ok(!existsSync(join(app, 'node_modules', dev)), `dev dependency ${dev} is not in the image`);
  }
  assert.ok(!existsSync(join(app, 'test')) && !existsSync(join(app, 'bench')), 'no tests in the image');

  // The image's config refers to image paths (/var/lib/messaging, /var/log/messaging): map them too.
  const config = join(image.root, 'etc/messaging/config.ini');
  writeFileSync(config, mapImagePaths(readFileSync(config, 'utf8'), image.root));
  const port = await freePort();
  const adminPort = await freePort();
  const [exe, ...args] = image.cmd.map((a) => mapImagePaths(a, image.root));
  assert.equal(exe, 'node');
  const env = {
    ...image.env,
    PATH: process.env.PATH ?? '',
    JWT_SECRET: 'dockerfile-test-secret-0123456789abcdef',
    MESSAGING_PORT: String(port),
    MESSAGING_METRICS_PORT: String(adminPort),
  };
  const server = spawn(process.execPath, args, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  server.stdout.on('data', (d: Buffer) => (out += d.toString()));
  server.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise((r) => server.once('exit', r));
  try {
    const deadline = Date.now() + 90_000; // generous: a cold tsx compile on a loaded 2-core machine
    let health: Response | undefined;
    while (Date.now() < deadline && server.exitCode === null) {
      health = await fetch(`http://127.0.0.1:${adminPort}/health`).catch(() => undefined);
      if (health?.ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(health?.status, 200, out);
    assert.equal(((await health!.json()) as { status: string }).status, 'healthy');

    // The HEALTHCHECK command itself, as Docker would run it inside the container.
    const [hcExe, ...hcArgs] = image.healthcheck ?? [];
    assert.equal(hcExe, 'node');
    const hc = spawnSync(process.execPath, hcArgs, { env, encoding: 'utf8', timeout: 10_000 });
    assert.equal(hc.status, 0, `HEALTHCHECK failed: ${hc.stderr}`);
    assert.ok(existsSync(join(image.root, 'var/log/messaging/messaging.log')), 'file logging to /var/log/messaging');
  } finally {
    server.kill('SIGTERM');
    await exited;
  }
  // A stopped server fails the HEALTHCHECK.
  const [, ...hcArgs] = image.healthcheck ?? [];
  assert.notEqual(spawnSync(process.execPath, hcArgs, { env, timeout: 10_000 }).status, 0);
});
