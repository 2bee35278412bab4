/**
 * deploy/scripts/backup.sh and recovery.sh end to end: a running server (the real binary, file engine,
 * temp dirs) with durable queues, dead letters, a stream, a durable stream reader, and tasks in every
 * lasting state (queued, waiting for an ETA, succeeded with a result, failed with an error) plus a
 * schedule, is backed up while a publisher keeps writing; the server is stopped and its data and config
 * wiped; recovery.sh restores, starts and waits for /health; every message and task is back, and the
 * queued tasks run. The times measured are the RPO/RTO figures of docs/operations.md.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Connection } from '../../src/client/index.ts';
import { UnrecoverableError, Worker } from '../../src/worker/index.ts';
import { freePort } from '../helpers/child-server.ts';
import { runDeployScript } from '../helpers/deploy-scripts.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/messaging_server.js');
const dir = mkdtempSync(join(tmpdir(), 'messaging-backup-test-'));
const pids: number[] = [];
after(() => {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

const configDir = join(dir, 'etc-messaging');
const dataDir = join(dir, 'var-lib-messaging', 'queue');
const backupDir = join(dir, 'backup');
const configFile = join(configDir, 'config.ini');
const JWT_SECRET = 'backup-test-secret-0123456789abcdef0123';

async function waitHealthy(adminPort: number, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await fetch(`http://127.0.0.1:${adminPort}/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('server not ready in time');
}

/** Pulls a queue empty (acking nothing): returns the payloads. */
async function drain(nc: Connection, queue: string): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const batch = await nc.queues.pull(queue, { max: 100 });
    if (batch.length === 0) return out;
    out.push(...batch.map((m) => m.string()));
  }
}

test('backup.sh of a live server, wipe, recovery.sh: every message is back', async (t) => {
  mkdirSync(configDir, { recursive: true });
  writeFileSync(
    configFile,
    [
      '[system]',
      'instance_id = backup-test',
      '[message_bus]',
      'storage = file',
      `persistence_path = ${dataDir}`,
      '[security]',
      'jwt_secret = ${JWT_SECRET}',
      '[logging]',
      'level = warn',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const adminPort = await freePort();
  const serverArgs = [BIN, '--config', configFile, '--port', String(port), '--metrics-port', String(adminPort)];
  const env = { PATH: process.env.PATH ?? '', JWT_SECRET };
  const first = spawn(process.execPath, serverArgs, { env, stdio: 'ignore' });
  pids.push(first.pid!);
  const firstExit = new Promise((r) => first.once('exit', r));
  await waitHealthy(adminPort);

  // State to survive: queued, acked (must not come back), in flight, dead-lettered, stream + reader.
  const nc = await connect({ servers: `tcp://127.0.0.1:${port}` });
  await nc.queues.declare({ name: 'orders', bindings: ['orders.#'] });
  await nc.queues.declare({ name: 'audit', bindings: ['audit.*'], ackTimeoutMs: 1000 });
  await nc.queues.declare({ name: 'fragile', bindings: ['fragile.*'], maxDeliveries: 1 });
  await nc.streams.declare({ name: 'events', bindings: ['events.#'] });
  const orders = Array.from({ length: 200 }, (_, i) => `order-${i}`);
  const audit = Array.from({ length: 100 }, (_, i) => `audit-${i}`);
  const events = Array.from({ length: 300 }, (_, i) => `event-${i}`);
  await Promise.all(orders.map((p) => nc.publish('orders.eu.created', p, { confirm: true })));
  await Promise.all(audit.map((p) => nc.publish('audit.login', p, { confirm: true })));
  await Promise.all(events.map((p, i) => nc.publish(`events.${i % 3}`, p, { confirm: true })));
  for (let i = 0; i < 5; i++) await nc.publish('fragile.x', `fragile-${i}`, { confirm: true });
  // Acked: the first 50 orders (FIFO among equal priority).
  const acked = await nc.queues.pull('orders', { max: 50 });
  assert.equal(acked.length, 50);
  await Promise.all(acked.map((m) => m.ack()));
  // In flight at backup time: 10 audit messages taken and never settled.
  assert.equal((await nc.queues.pull('audit', { max: 10 })).length, 10);
  // Dead letters: every fragile message fails once.
  for (const m of await nc.queues.pull('fragile', { max: 5 })) await m.nack({ requeue: false, error: 'bad' });
  assert.equal((await nc.queues.deadLetters('fragile')).length, 5);
  // A durable reader at position 101.
  const read = await nc.streams.read('events', { from: 'earliest', max: 100, reader: 'r1' });
  assert.equal(read.nextSeq, 101);

  // Tasks: one that succeeded (with its result), one that failed (with its error), queued ones that no
  // worker has taken yet, one waiting for its ETA, and a schedule.
  const worker = new Worker(
    nc,
    {
      add: async (args: { a: number; b: number }) => args.a + args.b,
      broken: async () => {
        throw new UnrecoverableError('disk on fire');
      },
    },
    { queues: ['math'], concurrency: 2 },
  );
  await worker.ready();
  const added = await nc.tasks.submit('add', { a: 2, b: 40 }, { queue: 'math' });
  assert.equal(await added.wait(10_000), 42);
  const broken = await nc.tasks.submit('broken', {}, { queue: 'math' });
  await assert.rejects(broken.wait(10_000), /disk on fire/);
  await worker.close({ timeoutMs: 1000 });
  const queuedTasks = await Promise.all(
    Array.from({ length: 20 }, (_, i) => nc.tasks.submit('report', { n: i }, { queue: 'reports' })),
  );
  const later = await nc.tasks.submit('report', { n: 'later' }, { queue: 'reports', countdownMs: 3_600_000 });
  await nc.tasks.schedules.create({
    id: 'nightly-report',
    cron: '0 3 * * *',
    task: nc.tasks.sig('report', { n: 'nightly' }, { queue: 'reports' }),
  });

  // Backup while a publisher keeps writing: what it confirms during the backup may or may not be in it,
  // but whatever is in it must be whole.
  let live = 0;
  let publishing = true;
  const publisher = (async () => {
    while (publishing) await nc.publish('orders.live', `live-${live++}`, { confirm: true });
  })();
  const backup = await runDeployScript('backup.sh', [], {
    MESSAGING_CONFIG: configFile,
    BACKUP_DIR: backupDir,
  });
  publishing = false;
  await publisher;
  const archive = backup.stdout.trim();
  assert.match(archive, /messaging_\d{8}_\d{6}\.tar\.gz$/);
  assert.ok(existsSync(archive));
  const storeBytes = readdirSync(dataDir)
    .filter((n) => n.endsWith('.seg'))
    .reduce((sum, n) => sum + readFileSync(join(dataDir, n)).length, 0);
  await nc.close();

  // Disaster: stop, wipe the store and the config.
  first.kill('SIGTERM');
  await firstExit;
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(configDir, { recursive: true, force: true });

  const pidFile = join(dir, 'restored.pid');
  const logFile = join(dir, 'restored.log');
  const start = [process.execPath, ...serverArgs].map((a) => `'${a}'`).join(' ');
  const recovery = await runDeployScript('recovery.sh', [archive], {
    MESSAGING_CONFIG_DIR: configDir,
    MESSAGING_STOP_CMD: '', // already stopped above
    MESSAGING_START_CMD: `JWT_SECRET='${JWT_SECRET}' ${start} >'${logFile}' 2>&1 & echo $! >'${pidFile}'`,
    MESSAGING_HEALTH_URL: `http://127.0.0.1:${adminPort}/health`,
    HEALTH_TIMEOUT_S: '90',
  });
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  pids.push(pid);
  assert.ok(existsSync(configFile), 'config restored');
  await waitHealthy(adminPort);

  const restored = await connect({ servers: `tcp://127.0.0.1:${port}` });
  try {
    const ordersBack = await drain(restored, 'orders');
    const expectedOrders = orders.slice(50);
    assert.deepEqual(
      ordersBack.filter((p) => p.startsWith('order-')),
      expectedOrders,
      'unacked orders back, in order; acked ones gone',
    );
    const liveBack = ordersBack.filter((p) => p.startsWith('live-'));
    assert.ok(liveBack.every((p) => /^live-\d+$/.test(p)));
    assert.deepEqual(
      liveBack,
      liveBack.map((_, i) => `live-${i}`),
      'messages written during the backup: an unbroken prefix of what was confirmed',
    );
    assert.deepEqual((await drain(restored, 'audit')).sort(), [...audit].sort(), 'in-flight ones too');
    const dead = await restored.queues.deadLetters('fragile');
    assert.deepEqual(dead.map((d) => d.message.string()).sort(), [0, 1, 2, 3, 4].map((i) => `fragile-${i}`));
    const all = await restored.streams.read('events', { from: 'earliest', max: 1000 });
    assert.deepEqual(
      all.messages.map((m) => m.string()),
      events,
    );
    assert.deepEqual(
      all.messages.map((m) => m.seq),
      events.map((_, i) => i + 1),
    );
    assert.equal(await restored.streams.readerPosition('events', 'r1'), 101);

    // Tasks: finished ones with their result and error, waiting ones as they were, the schedule.
    const addedBack = await restored.tasks.get(added.id);
    assert.deepEqual([addedBack.state, addedBack.result], ['succeeded', 42]);
    const brokenBack = await restored.tasks.get(broken.id);
    assert.equal(brokenBack.state, 'failed');
    assert.match(String(brokenBack.error?.message), /disk on fire/);
    const laterBack = await restored.tasks.get(later.id);
    assert.deepEqual([laterBack.state, laterBack.args], ['pending', { n: 'later' }]);
    const schedule = await restored.tasks.schedules.get('nightly-report');
    assert.deepEqual([schedule.enabled, schedule.cron], [true, '0 3 * * *']);
    // The queued tasks are still queued — and run once a worker comes.
    const ran: unknown[] = [];
    const reporter = new Worker(restored, { report: async (args: { n: number }) => void ran.push(args.n) }, {
      queues: ['reports'],
      concurrency: 4,
    });
    await reporter.ready();
    for (const h of queuedTasks) await restored.tasks.wait(h.id, 10_000);
    await reporter.close({ timeoutMs: 1000 });
    assert.deepEqual(
      [...ran].sort((a, b) => Number(a) - Number(b)),
      queuedTasks.map((_, i) => i),
      'every queued task ran exactly once after the restore',
    );

    t.diagnostic(
      `store ${(storeBytes / 1024).toFixed(0)} KiB; backup ${backup.ms.toFixed(0)} ms (server online, ` +
        `${live} confirmed publishes during it, ${liveBack.length} in the backup); ` +
        `RTO (verify + restore + start + healthy) ${recovery.ms.toFixed(0)} ms`,
    );
  } finally {
    await restored.close();
    process.kill(pid, 'SIGTERM');
  }
});
