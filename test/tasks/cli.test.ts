/**
 * `messaging task …` as a child process against a real server with an in-process worker: submit (and
 * --wait with its exit code), status, cancel, ls, stats, watch, and schedules.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { TaskContext } from '../../src/worker/index.ts';
import { setup, uniqueQueue, until, type Env } from './helpers.ts';

const BIN = fileURLToPath(new URL('../../bin/messaging.js', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(
  url: string,
  args: string[],
): { done: Promise<Result>; stdout: () => string; stderr: () => string } {
  const child = spawn(process.execPath, [BIN, '--server', url, ...args], {
    env: { PATH: process.env['PATH'] ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const done = new Promise<Result>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
  return { done, stdout: () => stdout, stderr: () => stderr };
}

const run = (url: string, args: string[]): Promise<Result> => cli(url, args).done;

describe('messaging task (CLI)', () => {
  let env: Env;
  let queue: string;
  let url: string;
  before(async () => {
    env = await setup();
    url = env.server.url;
    queue = uniqueQueue('cli');
    await env.worker(
      {
        add: ([a, b]: [number, number]) => a + b,
        fail: () => {
          throw new Error('it broke');
        },
        steps: async (_a: unknown, ctx: TaskContext) => {
          ctx.progress(0.5, 'halfway');
          await new Promise((r) => setTimeout(r, 200));
          return 'ok';
        },
      },
      { queues: [queue] },
    );
  });
  after(async () => {
    await env.close();
  });

  it('submit --wait prints the result and exits 0', async () => {
    const r = await run(url, ['task', 'submit', 'add', '--args', '[1,2]', '--queue', queue, '--wait']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '3');
  });

  it('submit --wait exits non-zero when the task failed, with the error', async () => {
    const r = await run(url, [
      'task',
      'submit',
      'fail',
      '--queue',
      queue,
      '--max-retries',
      '1',
      '--retry-delay',
      '10',
      '--wait',
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /failed: Error: it broke/);
  });

  it('submit prints the id; status, ls and cancel follow it', async () => {
    const idle = uniqueQueue('cli-idle');
    const r = await run(url, [
      'task',
      'submit',
      'later',
      '--args',
      '{"x":1}',
      '--queue',
      idle,
      '--priority',
      'high',
      '--countdown',
      '60000',
      '--max-retries',
      '2',
      '--timeout',
      '5000',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    const rec = await env.conn.tasks.get(id);
    assert.deepEqual(
      [rec.state, rec.priority, rec.max_retries, rec.timeout_ms, rec.args],
      ['pending', 3, 2, 5000, { x: 1 }],
    );
    const status = await run(url, ['task', 'status', id]);
    assert.match(status.stdout, /state\s+pending/);
    assert.match(status.stdout, /attempts\s+0 of 3/);
    const ls = await run(url, ['task', 'ls', '--queue', idle, '--json']);
    assert.deepEqual(
      (JSON.parse(ls.stdout) as { id: string }[]).map((t) => t.id),
      [id],
    );
    const cancel = await run(url, ['task', 'cancel', id]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal((await env.conn.tasks.get(id)).state, 'cancelled');
    const again = await run(url, ['task', 'cancel', id]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /TASK_CONFLICT/);
    const table = await run(url, ['task', 'ls', '--state', 'cancelled']);
    assert.match(table.stdout, new RegExp(`${id}\\s+later\\s+cancelled`));
    const missing = await run(url, ['task', 'status', '01NOPE']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /does not exist/);
  });

  it('stats shows queues, task names and workers', async () => {
    const r = await run(url, ['task', 'stats']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${queue}\\s`, 'm'));
    assert.match(r.stdout, /^add\s/m);
    assert.match(r.stdout, /WORKER\s+POOLS/);
    const json = JSON.parse((await run(url, ['task', 'stats', '--json'])).stdout) as { workers: unknown[] };
    assert.ok(json.workers.length >= 1);
  });

  it('watch follows tasks live until --count tasks finished', async () => {
    const w = cli(url, ['task', 'watch', '--queue', queue, '--count', '1']);
    // Subscribed once it says so; then run a task with progress.
    await until(() => w.stderr().includes('watching tasks'), 30_000, 'watch to subscribe');
    const h = await env.conn.tasks.submit('steps', null, { queue });
    const r = await w.done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`started\\s+steps ${h.id}`));
    assert.match(r.stdout, new RegExp(`progress\\s+steps ${h.id} 50% halfway`));
    assert.match(r.stdout, new RegExp(`succeeded\\s+steps ${h.id}`));
  });

  it('schedule add / ls / trigger / disable / rm', async () => {
    const add = await run(url, [
      'task',
      'schedule',
      'add',
      'cli-nightly',
      '--name',
      'add',
      '--args',
      '[2,2]',
      '--queue',
      queue,
      '--cron',
      '0 3 * * *',
      '--tz',
      'Europe/Paris',
    ]);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stderr, /cron '0 3 \* \* \*' Europe\/Paris/);
    const ls = await run(url, ['task', 'schedule', 'ls']);
    assert.match(ls.stdout, /cli-nightly\s+add\s+cron 0 3 \* \* \* Europe\/Paris\s+yes/);
    const trig = await run(url, ['task', 'schedule', 'trigger', 'cli-nightly']);
    assert.equal(await env.conn.tasks.wait(trig.stdout.trim(), 10_000), 4);
    assert.equal((await run(url, ['task', 'schedule', 'disable', 'cli-nightly'])).code, 0);
    assert.equal((await env.conn.tasks.schedules.get('cli-nightly')).enabled, false);
    assert.equal((await run(url, ['task', 'schedule', 'rm', 'cli-nightly'])).code, 0);
    const bad = await run(url, ['task', 'schedule', 'add', 'x', '--name', 'add']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /exactly one of --every and --cron/);
  });
});
