/**
 * Several servers on one PostgreSQL database (the seed's high-availability layout): two real
 * `messaging_server` processes with `storage = postgres` share one fresh database. Both run their
 * schedulers, yet every tick of a schedule runs once; a task submitted through one is run by a worker on
 * the other; a queue declared and fed through one is consumed through the other.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { connect, type Connection, type QueueMessage } from '../../src/client/index.ts';
import { Worker } from '../../src/worker/index.ts';
import type { ChildServer } from '../helpers/child-server.ts';
import {
  createDatabase,
  dropDatabase,
  PG,
  startPostgresServer,
  uniqueDatabase,
} from '../helpers/postgres.ts';
import { until } from './helpers.ts';

describe('cluster: two servers on one PostgreSQL database', () => {
  const database = uniqueDatabase('cluster');
  const servers: ChildServer[] = [];
  const conns: Connection[] = [];
  const workers: Worker[] = [];
  let a: Connection;
  let b: Connection;

  before(async () => {
    await createDatabase(database);
    // Started together: both create the tables at once, which the migration lock must serialise.
    servers.push(...(await Promise.all([startPostgresServer(database), startPostgresServer(database)])));
    for (const s of servers)
      conns.push(await connect({ servers: `tcp://127.0.0.1:${s.port}`, timeoutMs: 10_000 }));
    [a, b] = conns as [Connection, Connection];
  });

  after(async () => {
    await Promise.all(workers.map((w) => w.close({ timeoutMs: 500 }).catch(() => undefined)));
    await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
    await Promise.all(servers.map((s) => s.kill('SIGTERM')));
    await dropDatabase(database);
  });

  /** Task records straight from the shared tables: what ran, whichever server created it. */
  async function scheduledTicks(scheduleId: string): Promise<number[]> {
    const client = new pg.Client({ ...PG, password: PG.password ?? '', database });
    await client.connect();
    try {
      const r = await client.query<{ tick: string }>(
        `SELECT rec->'schedule'->>'tick' AS tick FROM messaging.tasks WHERE rec->'schedule'->>'id' = $1`,
        [scheduleId],
      );
      return r.rows.map((row) => Number(row.tick)).sort((x, y) => x - y);
    } finally {
      await client.end();
    }
  }

  it('a periodic schedule runs exactly once per tick although both servers run their schedulers', async () => {
    const every = 200;
    await a.tasks.schedules.create({
      id: 'beat',
      task: a.tasks.sig('cluster.beat', {}, { queue: 'cluster-beats' }),
      everyMs: every,
    });
    // The other server's scheduler sees the new schedule through the database.
    await until(async () => (await b.tasks.schedules.get('beat')).runs >= 1, 10_000, 'first run');
    await until(async () => (await scheduledTicks('beat')).length >= 10, 15_000, 'ten runs');
    await b.tasks.schedules.disable('beat');
    const ticks = await scheduledTicks('beat');
    assert.equal(new Set(ticks).size, ticks.length, `one run per tick: ${ticks.join(', ')}`);
    for (let i = 1; i < ticks.length; i++) {
      const step = ticks[i]! - ticks[i - 1]!;
      assert.equal(step % every, 0, `ticks fall on the schedule's grid: ${ticks.join(', ')}`);
      // A loaded machine may let a tick or two pass unclaimed (then only the latest missed one runs);
      // a long gap would mean the schedulers stalled.
      assert.ok(step <= 5 * every, `no long gap: ${ticks.join(', ')}`);
    }
    const s = await a.tasks.schedules.get('beat');
    assert.equal(s.runs, ticks.length);
  });

  it('a task submitted through one server is run by a worker connected to the other', async () => {
    const ranOn: string[] = [];
    const w = new Worker(
      b,
      {
        'cluster.double': (n: number) => {
          ranOn.push('b');
          return n * 2;
        },
      },
      { queues: ['cluster-work'], concurrency: 2 },
    );
    workers.push(w);
    await w.ready();
    const handles = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => a.tasks.submit('cluster.double', n, { queue: 'cluster-work' })),
    );
    // Waited for through the submitting server: it hears of the results the other server stored.
    const results = await Promise.all(handles.map((h) => h.wait(15_000)));
    assert.deepEqual(results, [2, 4, 6, 8, 10]);
    assert.equal(ranOn.length, 5);
    const info = await a.tasks.get(handles[0]!.id);
    assert.equal(info.state, 'succeeded');
  });

  it('each server reports its database work in the messaging_db_* metrics', async () => {
    for (const server of servers) {
      const text = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
      const queries = Number(/^messaging_db_queries_total (\d+)/m.exec(text)?.[1] ?? 0);
      assert.ok(queries > 0, 'queries counted');
      assert.match(text, /^messaging_db_query_duration_seconds_count [1-9]/m);
    }
  });

  it('a durable-queue message published on one server is delivered to a consumer on the other', async () => {
    const q = 'cluster-orders';
    await a.queues.declare({ name: q, bindings: ['cluster.orders.#'] });
    const got: QueueMessage[] = [];
    // The other server learns of the declaration through the database (a notification, then a reload).
    await until(
      async () => {
        const consumer = b.queues.consume(q, { prefetch: 10, callback: (m) => void got.push(m) });
        return consumer.ready().then(
          () => true,
          () => false,
        );
      },
      10_000,
      'the queue known on the second server',
    );
    await a.publish('cluster.orders.eu', 'from-a', { confirm: true });
    await until(() => got.length >= 1, 10_000, 'delivery on the other server');
    // And the other way round, through the second server's router.
    await b.publish('cluster.orders.us', 'from-b', { confirm: true });
    await until(() => got.length >= 2, 10_000, 'second delivery');
    assert.deepEqual(got.map((m) => m.string()).sort(), ['from-a', 'from-b']);
    await Promise.all(got.map((m) => m.ack()));
    await until(async () => (await a.queues.info(q)).stats.acked_total === 2, 10_000, 'acks counted');
  });
});
