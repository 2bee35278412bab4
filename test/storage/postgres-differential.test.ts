/**
 * Differential test of the `postgres` engine: one random sequence of queue and stream operations runs
 * against the memory engine (the reference: the shared state machine) and the PostgreSQL engine, with
 * periodic close and reopen. The PostgreSQL engine re-expresses the rules as SQL, so any difference in
 * what they return is a bug in that translation. (`tick().ready_queues` is a wake-up hint that may name
 * more queues than the memory engine does, so it is left out.)
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { MemoryStorage, PostgresStorage, type Delivery, type Storage } from '../../src/storage/index.ts';
import { seededRandom } from '../helpers/random.ts';
import { dropSchemas, PG, uniqueSchema } from '../helpers/postgres.ts';

const schemas: string[] = [];
after(() => dropSchemas(schemas));
const dec = new TextDecoder();
const enc = new TextEncoder();

const rng = seededRandom;

/** What a result looks like minus engine-specific ids. */
function view(ds: Delivery[]): string[] {
  return ds.map((d) => `${d.message.id}:${d.delivery_count}:${dec.decode(d.message.payload).length}`);
}

async function settle<T>(p: Promise<T>): Promise<string> {
  try {
    return JSON.stringify(await p);
  } catch (err) {
    return `error ${(err as { code?: string }).code}`;
  }
}

for (const seed of [11, 22]) {
  it(
    `memory and postgres engines agree on a random workload (seed ${seed})`,
    { timeout: 120_000 },
    async () => {
      const r = rng(seed);
      let t = 1_700_000_000_000;
      const now = () => t;
      const schema = uniqueSchema('diff');
      schemas.push(schema);
      const seen = { reopened: 0 };
      const open = () => PostgresStorage.open({ ...PG, schema, poolMax: 4, now });
      const mem: Storage = new MemoryStorage({ now });
      let file: Storage = await open();
      const queues = ['qa', 'qb', 'qc'];
      const both = async <T>(f: (s: Storage) => Promise<T>): Promise<[string, string]> => [
        await settle(f(mem)),
        await settle(f(file)),
      ];
      for (const s of [mem, file]) {
        await s.declareQueue({ name: 'qa', max_deliveries: 3, ack_timeout_ms: 500 });
        await s.declareQueue({ name: 'qb', max_length: 30, overflow: 'drop-oldest' });
        await s.declareQueue({ name: 'qc', max_length: 40, max_deliveries: 0 });
        await s.declareStream({ name: 'st', max_msgs: 50, max_age_ms: 20_000 });
      }
      // Deliveries held by the "same" consumer in both engines, side by side.
      let held: { q: string; mem: Delivery; file: Delivery }[] = [];
      let n = 0;
      const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;

      for (let step = 0; step < 1500; step++) {
        const op = r();
        const ctx = `seed ${seed} step ${step}`;
        if (op < 0.35) {
          const targets = queues.filter(() => r() < 0.5);
          const msg = {
            id: `m${n++}`,
            topic: 't',
            payload: enc.encode('x'.repeat(Math.floor(r() * 300))),
            priority: Math.floor(r() * 6) as 0,
            ...(r() < 0.1 ? { ttl_ms: 1 + Math.floor(r() * 3000) } : {}),
            ...(r() < 0.1 ? { deliver_at: t + Math.floor(r() * 3000) } : {}),
          };
          const streams = r() < 0.3 ? ['st'] : [];
          const [a, b] = await both((s) => s.publish({ queues: targets, streams }, msg));
          assert.equal(b, a, ctx);
        } else if (op < 0.55) {
          const q = pick(queues);
          const max = 1 + Math.floor(r() * 5);
          const dm = await mem.take(q, 'c', max);
          const df = await file.take(q, 'c', max);
          assert.deepEqual(view(df), view(dm), ctx);
          dm.forEach((d, i) => held.push({ q, mem: d, file: df[i]! }));
        } else if (op < 0.75 && held.length) {
          const i = Math.floor(r() * held.length);
          const h = held[i]!;
          held.splice(i, 1);
          const kind = r();
          const nack =
            kind < 0.5
              ? null
              : {
                  requeue: kind < 0.85,
                  ...(r() < 0.5 ? { delay_ms: Math.floor(r() * 2000) } : {}),
                  error: 'e',
                };
          const a = await settle(
            nack ? mem.nack(h.q, 'c', h.mem.delivery_id, nack) : mem.ack(h.q, 'c', h.mem.delivery_id),
          );
          const b = await settle(
            nack ? file.nack(h.q, 'c', h.file.delivery_id, nack) : file.ack(h.q, 'c', h.file.delivery_id),
          );
          assert.equal(b, a, ctx);
        } else if (op < 0.85) {
          t += Math.floor(r() * 800);
          const [a, b] = await both((s) => s.tick().then(({ ready_queues: _hint, ...rest }) => rest));
          assert.equal(b, a, ctx);
        } else if (op < 0.88) {
          const from = r() < 0.5 ? ('earliest' as const) : { seq: Math.floor(r() * n) };
          const [a, b] = await both((s) =>
            s
              .streamRead('st', { from, max: 20 })
              .then((x) => ({ ...x, messages: x.messages.map((m) => `${m.seq}:${m.message.id}`) })),
          );
          assert.equal(b, a, ctx);
        } else if (op < 0.9) {
          const q = pick(queues);
          const replay = r() < 0.5;
          const [a, b] = await both((s) =>
            replay ? s.replayDeadLetters(q) : s.purgeDeadLetters(q, { olderThanMs: 3000 }),
          );
          assert.equal(b, a, ctx);
        } else if (op < 0.91) {
          const q = pick(queues);
          const [a, b] = await both((s) => s.purgeQueue(q));
          assert.equal(b, a, ctx);
        } else if (op < 0.93) {
          await file.compact();
        } else if (op < 0.935) {
          // Reopen: deliveries do not survive a restart, so hand them back in both engines first.
          for (const h of held) {
            await settle(mem.nack(h.q, 'c', h.mem.delivery_id, { requeue: true }));
            await settle(file.nack(h.q, 'c', h.file.delivery_id, { requeue: true }));
          }
          held = [];
          await file.close();
          file = await open();
          seen.reopened++;
        }
        if (step % 50 === 0) {
          for (const q of queues) {
            const [a, b] = await both((s) => s.stats(q));
            assert.equal(b, a, `${ctx} stats ${q}`);
            const [la, lb] = await both((s) =>
              s
                .listDeadLetters(q, { limit: 1000 })
                .then((x) => x.map((d) => `${d.message.id}:${d.reason}:${d.failures}:${d.dead_lettered_at}`)),
            );
            assert.equal(lb, la, `${ctx} dead letters ${q}`);
          }
          const [a, b] = await both((s) => s.getStream('st'));
          assert.equal(b, a, `${ctx} stream`);
        }
      }
      await mem.close();
      await file.close();
      console.log(`seed ${seed}: ${JSON.stringify(seen)}`);
      assert.ok(seen.reopened > 0, JSON.stringify(seen));
    },
  );
}
