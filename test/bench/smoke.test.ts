/**
 * The benchmark harness runs end to end in a tiny mode against our own server (started by the harness as
 * a child process). No assertion is about speed: this only proves the bench code works.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function runBench(
  args: string[],
  limitMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/run.ts', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`bench did not finish within ${limitMs} ms\n${stdout}\n${stderr}`));
    }, limitMs);
    child.on('error', reject);
    child.on('close', (code) => {
      // 'close': after stdout and stderr are read to the end ('exit' can come before)
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('bench harness (smoke)', () => {
  it('runs pub/sub and request/reply against our server and prints a table', async () => {
    const r = await runBench(
      [
        '--suite',
        'pubsub,reqrep',
        '--messages',
        '2000',
        '--requests',
        '200',
        '--rounds',
        '1',
        '--systems',
        'ours',
        '--quiet',
      ],
      90_000,
    );
    assert.equal(r.code, 0, `exit code ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    assert.match(r.stdout, /^Scenario\s+System\s+Result/m, 'table header');
    assert.match(r.stdout, /pub\/sub 1→1.*messaging-system\s+[\d,.]+ msg\/s/, 'pub/sub 1→1 row with a rate');
    assert.match(r.stdout, /pub\/sub 1→4.*messaging-system\s+[\d,.]+ msg\/s/, 'pub/sub 1→4 row with a rate');
    assert.match(r.stdout, /request\/reply.*messaging-system\s+p50 [\d,.]+/, 'request/reply row with a p50');
    assert.doesNotMatch(r.stdout, /skipped|FAILED/, 'our server must run, not be skipped');
    assert.match(r.stdout, /^Machine: .+ cores/m, 'machine facts');
  });

  it('reports a rival that is not reachable as skipped, with the reason', async () => {
    // Port 9 (discard) is closed on 127.0.0.1; nothing is sent anywhere else.
    const r = await runBench(
      [
        '--suite',
        'pubsub',
        '--messages',
        '1000',
        '--rounds',
        '1',
        '--systems',
        'nats',
        '--nats-url',
        'nats://127.0.0.1:9',
        '--quiet',
      ],
      30_000,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /NATS core\s+skipped: 127\.0\.0\.1:9 not reachable/);
  });
});
