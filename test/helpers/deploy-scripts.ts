/** Runs the operator scripts of `deploy/scripts/` as a child bash process, as an operator would. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const SCRIPTS = new URL('../../deploy/scripts/', import.meta.url).pathname;

/**
 * Runs `script` with only PATH and `env` in its environment, without blocking the event loop (a test
 * may keep publishing meanwhile). Fails the test unless it exits 0; resolves with its output and time.
 */
export async function runDeployScript(
  script: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs = 120_000,
): Promise<{ stdout: string; stderr: string; ms: number }> {
  const started = performance.now();
  const child = spawn('bash', [join(SCRIPTS, script), ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const status = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  assert.equal(status, 0, `${script} failed (${status}):\n${stdout}\n${stderr}`);
  return { stdout, stderr, ms: performance.now() - started };
}
