/**
 * Every launcher of the server runs Node.js with `--no-memory-reducer` (why: bin/messaging_server.js).
 * The binary is started the way systemd's ExecStart and the Debian package's /usr/bin link start it — as
 * an executable, through its `#!` line — and the running process's command line is read from /proc.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitReady } from '../helpers/child-server.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const FLAG = '--no-memory-reducer';

describe('server launchers', () => {
  it('the messaging_server executable runs Node.js with --no-memory-reducer', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'launch-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const adminPort = await freePort();
    const child = spawn(
      join(ROOT, 'bin/messaging_server.js'),
      ['--data', dir, '--port', String(port), '--metrics-port', String(adminPort)],
      { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      await waitReady(adminPort, () => (child.exitCode !== null ? `server exited: ${out}` : undefined));
      const argv = readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').split('\0');
      assert.ok(argv.includes(FLAG), `command line: ${argv.join(' ')}`);
      assert.match(argv[0]!, /node/);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('npm start and the server image pass it too', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } };
    assert.match(pkg.scripts.start, /^node --no-memory-reducer bin\/messaging_server\.js/);
    const dockerfile = readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8');
    const serverCmd = dockerfile.split(/^FROM .* AS server$/m)[1]?.match(/^CMD (\[.*\])$/m)?.[1];
    assert.ok(serverCmd, 'the server stage has a CMD');
    assert.deepEqual((JSON.parse(serverCmd) as string[]).slice(0, 3), [
      'node',
      FLAG,
      '/opt/messaging-system/bin/messaging_server.js',
    ]);
  });
});
