/**
 * The `postgres` engine: the whole storage conformance suite (each case in a fresh schema), then what only
 * a shared database has — two engine instances on one schema standing in for two servers — and a
 * database that goes away.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { createStorage, type Storage, type StorageEvent, type TaskRecord } from '../../src/storage/index.ts';
import { dropSchemas, PG, uniqueSchema } from '../helpers/postgres.ts';
import { runStorageConformance } from './conformance.ts';
import { task } from './task-conformance.ts';

const schemas: string[] = [];
after(() => dropSchemas(schemas));

/** Small pools that give idle connections back quickly: the suite keeps ~60 engines open at once. */
function open(schema: string, now?: () => number): Promise<Storage> {
  return createStorage({
    engine: 'postgres',
    postgres: { ...PG, schema, poolMax: 4, idleTimeoutMs: 500 },
    ...(now ? { now } : {}),
  });
}

runStorageConformance('postgres', ({ now }) => {
  const schema = uniqueSchema('conf');
  schemas.push(schema);
  return open(schema, now);
});

const enc = new TextEncoder();

describe('postgres engine: two servers on one schema', () => {
  const opened: Storage[] = [];
  after(async () => {
    for (const s of opened) await s.close();
  });

  async function pair(): Promise<[Storage, Storage]> {
    const schema = uniqueSchema('pair');
    schemas.push(schema);
    // Opened together: the migrations must not race each other.
    const both = await Promise.all([open(schema), open(schema)]);
    opened.push(...both);
    return both;
  }

  it('concurrent takes never deliver one message twice', async () => {
    const [a, b] = await pair();
    await a.declareQueue({ name: 'q' });
    const n = 300;
    for (let i = 0; i < n; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, j) =>
          b.append('q', { topic: 't', payload: enc.encode(String(i + j)) }),
        ),
      );
    }
    const seen: string[] = [];
    const drain = async (s: Storage, consumer: string) => {
      for (;;) {
        const ds = await s.take('q', consumer, 7);
        if (ds.length === 0) return;
        for (const d of ds) seen.push(d.message.id);
        await Promise.all(ds.map((d) => s.ack('q', consumer, d.delivery_id)));
      }
    };
    await Promise.all([drain(a, 'c1'), drain(b, 'c1'), drain(a, 'c2'), drain(b, 'c2')]);
    assert.equal(new Set(seen).size, seen.length, 'no message delivered twice');
    assert.equal(seen.length, n);
    const st = await a.stats('q');
    assert.deepEqual([st.depth, st.in_flight, st.acked_total, st.published_total], [0, 0, n, n]);
  });

  it("a consumer id is one server's own: releasing it on A leaves B's deliveries alone", async () => {
    const [a, b] = await pair();
    await a.declareQueue({ name: 'q' });
    await a.append('q', { topic: 't', payload: enc.encode('x') });
    await a.append('q', { topic: 't', payload: enc.encode('y') });
    const [da] = await a.take('q', 'conn-1:q', 1);
    const [db] = await b.take('q', 'conn-1:q', 1);
    assert.ok(da && db);
    assert.equal(await a.releaseConsumer('conn-1:q'), 1);
    await b.ack('q', 'conn-1:q', db.delivery_id);
    // A's delivery id means nothing on B, even under the same consumer name.
    await assert.rejects(b.ack('q', 'conn-1:q', da.delivery_id), { code: 'UNKNOWN_DELIVERY' });
  });

  it('max_length holds under concurrent publishers on both', async () => {
    const [a, b] = await pair();
    await a.declareQueue({ name: 'small', max_length: 25 });
    const results = await Promise.allSettled(
      Array.from({ length: 60 }, (_, i) =>
        (i % 2 ? a : b).append('small', { topic: 't', payload: enc.encode(String(i)) }),
      ),
    );
    const stored = results.filter((r) => r.status === 'fulfilled').length;
    const full = results.filter(
      (r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'QUEUE_FULL',
    ).length;
    assert.deepEqual([stored, full], [25, 35]);
    assert.equal((await b.stats('small')).depth, 25);
  });

  it('concurrent claimScheduleTick: exactly one winner per tick', async () => {
    const [a, b] = await pair();
    const t0 = Date.now();
    await a.putSchedule({
      id: 'every',
      task: { name: 'beat' },
      every_ms: 100,
      enabled: true,
      created_at: t0,
      anchor: t0,
      last_tick: 0,
      runs: 0,
    });
    const ticks = 25;
    let wins = 0;
    for (let k = 1; k <= ticks; k++) {
      const tick = t0 + k * 100;
      const claim = (s: Storage) =>
        s.claimScheduleTick('every', tick, task({ name: 'beat', schedule: { id: 'every', tick } }));
      const results = await Promise.all([claim(a), claim(b), claim(a), claim(b)]);
      assert.equal(results.filter(Boolean).length, 1, `tick ${k}`);
      wins++;
    }
    const runs = await b.listTasks({ name: 'beat', limit: 1000 });
    assert.equal(runs.length, ticks);
    assert.equal(new Set(runs.map((t) => t.schedule?.tick)).size, ticks);
    const s = (await a.getSchedule('every'))!;
    assert.deepEqual([s.runs, s.last_tick], [wins, t0 + ticks * 100]);
  });

  it('concurrent claimTasks never claim one task twice', async () => {
    const [a, b] = await pair();
    const n = 200;
    const records: TaskRecord[] = Array.from({ length: n }, () => task({ priority: 2 }));
    await a.submitTasks(records);
    const claimed: string[] = [];
    const worker = async (s: Storage, name: string) => {
      for (;;) {
        const r = await s.claimTasks([{ queue: 'default' }], name, 5, 60_000);
        if (r.claimed.length === 0) return;
        for (const t of r.claimed) {
          assert.equal(t.worker, name);
          claimed.push(t.id);
        }
      }
    };
    await Promise.all([worker(a, 'w1'), worker(b, 'w2'), worker(a, 'w3'), worker(b, 'w4')]);
    assert.equal(new Set(claimed).size, claimed.length, 'no task claimed twice');
    assert.equal(claimed.length, n);
    assert.equal((await b.taskCounts()).queues['default']!.running, n);
  });

  it('a message published through one is read by the other (queues and streams)', async () => {
    const [a, b] = await pair();
    await a.declareQueue({ name: 'q' });
    await a.declareStream({ name: 'st' });
    assert.deepEqual(
      (await b.listQueues()).map((q) => q.name),
      ['q'],
    );
    const r1 = await a.publish({ queues: ['q'], streams: ['st'] }, { topic: 't', payload: enc.encode('1') });
    const r2 = await b.publish({ queues: ['q'], streams: ['st'] }, { topic: 't', payload: enc.encode('2') });
    assert.deepEqual([r1.streams, r2.streams], [{ st: 1 }, { st: 2 }]);
    const read = await a.streamRead('st', { from: 'earliest', max: 10 });
    assert.deepEqual(
      read.messages.map((m) => m.message.id),
      [r1.id, r2.id],
    );
    const ds = await b.take('q', 'c', 10);
    assert.deepEqual(
      ds.map((d) => d.message.id),
      [r1.id, r2.id],
    );
  });
});

describe('postgres engine: watch (cross-server wake-ups)', () => {
  it('reports what the other instance committed, not its own writes nor rolled-back ones', async () => {
    const schema = uniqueSchema('watch');
    schemas.push(schema);
    const [a, b] = await Promise.all([open(schema), open(schema)]);
    try {
      const events: StorageEvent[] = [];
      const stop = a.watch!((e) => events.push(e));
      // LISTEN runs on its own connection: wait until it hears something.
      await until(async () => {
        await b.putSchedule({
          id: 'probe',
          task: { name: 'x' },
          every_ms: 1000,
          enabled: false,
          created_at: 0,
          anchor: 0,
          last_tick: 0,
          runs: 0,
        });
        return events.some((e) => e.kind === 'schedules');
      });
      events.length = 0;
      await a.declareQueue({ name: 'mine' });
      await b.declareQueue({ name: 'q' });
      await b.declareQueue({ name: 'small', max_length: 1 });
      await b.append('small', { topic: 't', payload: enc.encode('1') });
      await assert.rejects(b.append(['q', 'small'], { topic: 't', payload: enc.encode('2') }), {
        code: 'QUEUE_FULL',
      });
      await b.append('q', { topic: 't', payload: enc.encode('3') });
      const [t1] = await b.submitTasks([task({ queue: 'jobs' })]);
      await b.updateTasks([{ id: t1!.task.id, from: ['queued'], to: 'cancelled' }]);
      await until(() => events.some((e) => e.kind === 'task-ended'));
      // (A late echo of the probe may still arrive: schedule events are left out.)
      assert.deepEqual(
        events.filter((e) => e.kind !== 'schedules'),
        [
          { kind: 'declared' },
          { kind: 'declared' },
          { kind: 'queue', queue: 'small' },
          { kind: 'queue', queue: 'q' },
          { kind: 'tasks', queue: 'jobs' },
          { kind: 'task-ended', id: t1!.task.id },
        ],
      );
      stop();
    } finally {
      await a.close();
      await b.close();
    }
  });
});

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('postgres engine: an unreachable database', () => {
  it('opening against a port where nothing listens fails with STORAGE_FAILURE saying what to check', async () => {
    const port = await freePort();
    await assert.rejects(
      createStorage({
        engine: 'postgres',
        postgres: { ...PG, port, schema: 'never_created', connectionTimeoutMs: 2000 },
      }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'STORAGE_FAILURE');
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
        assert.match(err.message, /host and port/);
        assert.equal(err.constructor.name !== 'DatabaseError', true);
        return true;
      },
    );
  });

  it('a database that goes away mid-run turns operations into STORAGE_FAILURE, not raw pg errors', async () => {
    const proxy = await tcpProxy(PG.port);
    const schema = uniqueSchema('dead');
    schemas.push(schema);
    const s = await createStorage({
      engine: 'postgres',
      postgres: { ...PG, port: proxy.port, schema, poolMax: 2, connectionTimeoutMs: 2000 },
    });
    try {
      await s.declareQueue({ name: 'q' });
      await s.append('q', { topic: 't', payload: enc.encode('x') });
      await proxy.kill();
      for (const op of [
        () => s.listQueues(),
        () => s.append('q', { topic: 't', payload: enc.encode('y') }),
      ]) {
        await assert.rejects(op(), (err: Error & { code?: string }) => {
          assert.equal(err.code, 'STORAGE_FAILURE', String(err));
          assert.match(err.message, /PostgreSQL/);
          return true;
        });
      }
      // The database is back: the pool opens new connections by itself.
      await proxy.revive();
      assert.deepEqual(
        (await s.listQueues()).map((q) => q.name),
        ['q'],
      );
      assert.equal((await s.stats('q')).depth, 1);
    } finally {
      await s.close();
      await proxy.kill();
    }
  });

  it('the database name is checked with a readable error', async () => {
    await assert.rejects(
      createStorage({ engine: 'postgres', postgres: { ...PG, database: 'no_such_db_here', schema: 'x' } }),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'STORAGE_FAILURE');
        assert.match(err.message, /database "no_such_db_here" does not exist/);
        return true;
      },
    );
  });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Forwards a local port to PostgreSQL until `kill`, which cuts every connection and stops listening;
 * `revive` listens on the same port again.
 */
async function tcpProxy(
  target: number,
): Promise<{ port: number; kill(): Promise<void>; revive(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const forward = (client: Socket): void => {
    const upstream = connect(target, PG.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
  };
  let server: Server = createServer(forward);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    kill: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
    revive: async () => {
      server = createServer(forward);
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    },
  };
}
