/**
 * The random workload of the differential tests: one seeded sequence of queue and stream operations
 * (publish, take, ack/nack with delays, ticks with a moving clock, stream reads, dead-letter replay and
 * purge, queue purge, compaction, close and reopen) runs against the memory engine — the reference — and
 * the engine under test, and every answer must be the same. Ids are compared, engine-specific delivery
 * ids are not.
 */
import assert from 'node:assert/strict';
import { MemoryStorage, type Delivery, type Storage } from '../../src/storage/index.ts';
import { seededRandom } from '../helpers/random.ts';

const dec = new TextDecoder();
const enc = new TextEncoder();

export interface DifferentialOptions {
  seed: number;
  steps: number;
  /** Opens the engine under test on the workload's clock (again after each close). */
  open(now: () => number): Promise<Storage>;
  /** false: `tick().ready_queues` is a wake-up hint the engine may answer more broadly; not compared. */
  compareReadyQueues?: boolean;
}

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

/** Runs the workload; resolves with how often the engine under test was reopened. */
export async function runDifferential(options: DifferentialOptions): Promise<{ reopened: number }> {
  const { seed } = options;
  const r = seededRandom(seed);
  let t = 1_700_000_000_000;
  const now = (): number => t;
  let reopened = 0;
  const mem: Storage = new MemoryStorage({ now });
  let other: Storage = await options.open(now);
  const queues = ['qa', 'qb', 'qc'];
  const both = async <T>(f: (s: Storage) => Promise<T>): Promise<[string, string]> => [
    await settle(f(mem)),
    await settle(f(other)),
  ];
  for (const s of [mem, other]) {
    await s.declareQueue({ name: 'qa', max_deliveries: 3, ack_timeout_ms: 500 });
    await s.declareQueue({ name: 'qb', max_length: 30, overflow: 'drop-oldest' });
    await s.declareQueue({ name: 'qc', max_length: 40, max_deliveries: 0 });
    await s.declareStream({ name: 'st', max_msgs: 50, max_age_ms: 20_000 });
  }
  // Deliveries held by the "same" consumer in both engines, side by side.
  let held: { q: string; mem: Delivery; other: Delivery }[] = [];
  let n = 0;
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;

  for (let step = 0; step < options.steps; step++) {
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
      const df = await other.take(q, 'c', max);
      assert.deepEqual(view(df), view(dm), ctx);
      dm.forEach((d, i) => held.push({ q, mem: d, other: df[i]! }));
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
        nack ? other.nack(h.q, 'c', h.other.delivery_id, nack) : other.ack(h.q, 'c', h.other.delivery_id),
      );
      assert.equal(b, a, ctx);
    } else if (op < 0.85) {
      t += Math.floor(r() * 800);
      const [a, b] = await both((s) =>
        s.tick().then((x) => (options.compareReadyQueues === false ? { ...x, ready_queues: [] } : x)),
      );
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
      await other.compact();
    } else if (op < 0.94) {
      // Reopen: deliveries do not survive a restart, so hand them back in both engines first.
      for (const h of held) {
        await settle(mem.nack(h.q, 'c', h.mem.delivery_id, { requeue: true }));
        await settle(other.nack(h.q, 'c', h.other.delivery_id, { requeue: true }));
      }
      held = [];
      await other.close();
      other = await options.open(now);
      reopened++;
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
  await other.close();
  return { reopened };
}
