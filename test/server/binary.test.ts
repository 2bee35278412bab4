import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeControl, FrameType } from '../../src/protocol/index.ts';
import { RawClient } from '../helpers/raw-client.ts';

const BIN = new URL('../../bin/messaging_server.js', import.meta.url).pathname;
const FIXTURES = new URL('../fixtures/config/', import.meta.url).pathname;

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', ...env },
    timeout: 30_000,
  });
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const address = srv.address();
  await new Promise((r) => srv.close(r));
  return typeof address === 'object' && address ? address.port : 0;
}

describe('messaging_server binary', () => {
  it('--help explains the options with examples', () => {
    const r = run(['--help']);
    assert.equal(r.status, 0);
    for (const word of ['--config', '--validate-config', '--print-config', '--port', 'Examples'])
      assert.ok(r.stdout.includes(word), word);
  });

  it("--validate-config accepts the guide's own example file when its secrets are set", () => {
    const r = run(['--config', join(FIXTURES, 'config.ini'), '--validate-config'], {
      JWT_SECRET: 'a-jwt-secret-that-is-long-enough-for-hs256',
      DB_PASSWORD: 'pw',
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /config OK/);
  });

  it('--validate-config accepts every tuning fragment of the guide, warning about keys that mean nothing on Node.js', () => {
    for (const fragment of [
      'thread_pool',
      'memory',
      'network_optimization',
      'database_pool',
      'logging',
      'database_replicas',
      'database_sharding',
      'security_ssl',
      'security_rate_limit',
      'audit',
      'security_encryption',
      'k8s_configmap',
    ]) {
      const r = run(['--config', join(FIXTURES, `${fragment}.ini`), '--validate-config']);
      assert.equal(r.status, 0, `${fragment}: ${r.stdout}${r.stderr}`);
    }
    const memory = run(['--config', join(FIXTURES, 'memory.ini'), '--validate-config']);
    assert.match(memory.stdout, /warning: .*arena_size_mb.*Node/i);
  });

  it('--validate-config names file, line and the nearest key for a typo, and exits non-zero', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    try {
      const file = join(dir, 'bad.ini');
      writeFileSync(
        file,
        '[network]\nlisten_port = 8080\nlisten_prot = 9\n[message_bus]\nfsync = sometimes\n',
      );
      const r = run(['--config', file, '--validate-config']);
      assert.equal(r.status, 1);
      assert.match(r.stdout, /bad\.ini:3: .*listen_prot.*did you mean 'listen_port'/);
      assert.match(r.stdout, /bad\.ini:5: .*fsync/);
      const start = run(['--config', file]);
      assert.equal(start.status, 2, 'the server refuses to start on a bad config');
      assert.match(start.stderr, /listen_prot/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--print-config shows the effective config with secrets redacted', () => {
    const r = run(['--config', join(FIXTURES, 'config.ini'), '--print-config'], {
      JWT_SECRET: 'super-secret-value-0123456789abcdef',
      DB_PASSWORD: 'db-pass-xyz',
      MESSAGING_PORT: '7070',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(!r.stdout.includes('super-secret-value'), 'jwt secret must not be printed');
    assert.ok(!r.stdout.includes('db-pass-xyz'), 'db password must not be printed');
    assert.match(r.stdout, /listen_port = 7070/, 'environment overrides the file');
    assert.match(r.stdout, /instance_id = prod-server-01/);
  });

  it('runs with JSON logs carrying instance_id, serves, and exits 0 after draining on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'srv-'));
    const port = await freePort();
    const adminPort = await freePort();
    const child = spawn(
      process.execPath,
      [BIN, '--port', String(port), '--metrics-port', String(adminPort), '--data', dir],
      {
        env: {
          PATH: process.env.PATH ?? '',
          MESSAGING_INSTANCE_ID: 'bin-test-1',
          MESSAGING_LOG_LEVEL: 'info',
        },
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    try {
      const deadline = Date.now() + 20_000;
      while (!out.includes('listening')) {
        if (Date.now() > deadline) throw new Error(`server did not start: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const first = JSON.parse(out.split('\n').find((l) => l.includes('listening'))!) as Record<
        string,
        unknown
      >;
      assert.equal(first.instance_id, 'bin-test-1');
      assert.equal(first.level, 'info');
      const health = (await (await fetch(`http://127.0.0.1:${adminPort}/health`)).json()) as Record<
        string,
        unknown
      >;
      assert.equal(health.instance_id, 'bin-test-1');
      const client = await RawClient.ready(port);
      client.write(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: 'x' }));
      await client.next((f) => f.type === FrameType.OK);
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((r) => child.on('close', (c) => r(c))); // output read to the end
      assert.equal(code, 0, out);
      const err = await client.error();
      assert.equal(err.code, 'SERVER_SHUTTING_DOWN');
      assert.match(out, /graceful shutdown/);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
