/**
 * examples/tasks runs with the two commands of its README against a real server: the worker binary on
 * the example's handlers, and the submit script (whose output is checked line by line).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('examples/tasks', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    await server.close();
  });

  it('runs with the README commands', async () => {
    const env = { PATH: process.env['PATH'] ?? '', MESSAGING_URL: server.url };
    // `npx messaging_worker …` resolves to this package's bin; run it directly to skip npx's start-up.
    const worker = spawn(
      process.execPath,
      ['bin/messaging_worker.js', '--tasks', 'examples/tasks/handlers.js'],
      {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let workerOut = '';
    worker.stderr.on('data', (d: Buffer) => (workerOut += d.toString()));
    const workerExit = new Promise<number | null>((r) => worker.once('exit', (code) => r(code)));
    try {
      const submit = spawn(process.execPath, ['examples/tasks/submit.js'], {
        cwd: ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      submit.stdout.on('data', (d: Buffer) => (out += d.toString()));
      submit.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const timer = setTimeout(() => submit.kill('SIGKILL'), 120_000);
      const code = await new Promise<number | null>((r) => submit.once('exit', (c) => r(c)));
      clearTimeout(timer);
      assert.equal(code, 0, `submit.js failed:\n${err}\nworker:\n${workerOut}`);
      const lines = out.trim().split('\n');
      assert.deepEqual(lines.slice(0, 5), [
        'email.send → {"delivered":true,"to":"ada@example.com","subject":"Hello"}',
        'image.resize → {"image":"cat.png","width":320,"bytes":10240}',
        'chain square(square(3)) → 81',
        'group of squares → [1,4,9,16]',
        'chord sum of squares → 30',
      ]);
      assert.match(lines[5]!, /^hash\.iterate → [0-9a-f]{16}$/);
      assert.match(lines[6]!, /^order\.validate → TASK_FAILED: .*UnrecoverableError: bad quantity 0$/);
    } finally {
      worker.kill('SIGTERM');
      assert.equal(await workerExit, 0, workerOut);
    }
  });
});
