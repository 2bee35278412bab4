/**
 * deploy/scripts/backup.sh and recovery.sh with `storage = postgres`: a running server (the real binary)
 * on a fresh database holds queued and dead-lettered messages, a stream and tasks; backup.sh takes a
 * pg_dump while it runs; the server stops and its tables are dropped; recovery.sh restores the dump; the
 * restarted server has everything back.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pg from 'pg';
import { connect } from '../../src/client/index.ts';
import { spawnServer, type ChildServer } from '../helpers/child-server.ts';
import { runDeployScript } from '../helpers/deploy-scripts.ts';
import { createDatabase, dropDatabase, PG, uniqueDatabase } from '../helpers/postgres.ts';

const dir = mkdtempSync(join(tmpdir(), 'messaging-pg-backup-'));
const database = uniqueDatabase('backup');
const pids: number[] = [];

after(async () => {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  rmSync(dir, { recursive: true, force: true });
  await dropDatabase(database);
});

function startServer(configFile: string): Promise<ChildServer> {
  return spawnServer(['--config', configFile], {}, 'SIGTERM').then((server) => {
    pids.push(server.child.pid!);
    return server;
  });
}

test('backup.sh dumps the PostgreSQL store of a live server; recovery.sh restores it', async () => {
  await createDatabase(database);
  const configDir = join(dir, 'etc-messaging');
  const configFile = join(configDir, 'config.ini');
  mkdirSync(configDir, { recursive: true });
  writeFileSync(
    configFile,
    [
      '[message_bus]',
      'storage = postgres',
      '[database]',
      `host = ${PG.host}`,
      `port = ${PG.port}`,
      `database = ${database}`,
      `username = ${PG.user}`,
      '[logging]',
      'level = warn',
      '',
    ].join('\n'),
  );

  let server = await startServer(configFile);
  let nc = await connect({ servers: `tcp://127.0.0.1:${server.port}` });
  await nc.queues.declare({ name: 'orders', bindings: ['orders.#'] });
  await nc.queues.declare({ name: 'fragile', bindings: ['fragile.*'], maxDeliveries: 1 });
  await nc.streams.declare({ name: 'events', bindings: ['events.#'] });
  for (let i = 0; i < 20; i++) await nc.publish('orders.eu', `order-${i}`, { confirm: true });
  for (let i = 0; i < 10; i++) await nc.publish(`events.${i}`, `event-${i}`, { confirm: true });
  await nc.publish('fragile.x', 'fragile', { confirm: true });
  for (const m of await nc.queues.pull('fragile', { max: 1 })) await m.nack({ requeue: false, error: 'bad' });
  const acked = await nc.queues.pull('orders', { max: 5 });
  await Promise.all(acked.map((m) => m.ack()));
  const queuedTask = await nc.tasks.submit('report', { n: 1 }, { queue: 'nobody' });

  const backupDir = join(dir, 'backup');
  const archive = (
    await runDeployScript('backup.sh', [], {
      MESSAGING_CONFIG: configFile,
      BACKUP_DIR: backupDir,
      RETENTION_DAYS: '0',
    })
  ).stdout.trim();
  assert.match(archive, /messaging_\d{8}_\d{6}\.tar\.gz$/);

  // Lose everything: the server stops and its tables go.
  await nc.close();
  await server.kill();
  const admin = new pg.Client({ ...PG, password: PG.password ?? '', database });
  await admin.connect();
  await admin.query('DROP SCHEMA messaging CASCADE');
  await admin.end();

  await runDeployScript('recovery.sh', [archive], {
    MESSAGING_CONFIG_DIR: configDir,
    RESTORE_CONFIG: '0',
    MESSAGING_STOP_CMD: '',
    MESSAGING_START_CMD: '',
    MESSAGING_HEALTH_URL: '',
    DB_HOST: PG.host,
    DB_PORT: String(PG.port),
    DB_NAME: database,
    DB_USER: PG.user,
    DB_PASSWORD: PG.password ?? '',
  });

  server = await startServer(configFile);
  nc = await connect({ servers: `tcp://127.0.0.1:${server.port}` });
  try {
    const orders = await nc.queues.pull('orders', { max: 100 });
    assert.deepEqual(
      orders.map((m) => m.string()),
      Array.from({ length: 15 }, (_, i) => `order-${i + 5}`),
    );
    const read = await nc.streams.read('events', { from: 'earliest', max: 100 });
    assert.equal(read.messages.length, 10);
    const dead = await nc.queues.deadLetters('fragile');
    assert.deepEqual(
      dead.map((d) => d.reason),
      ['rejected'],
    );
    assert.equal((await nc.tasks.get(queuedTask.id)).state, 'queued');
  } finally {
    await nc.close();
    await server.kill();
  }
});
