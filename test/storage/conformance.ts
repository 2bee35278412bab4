/**
 * The storage conformance suite: every engine runs it (memory, file, and the PostgreSQL engine of a later
 * issue). It speaks only the `Storage` interface and drives time through the injected clock, never sleeps.
 * An engine that must skip a case passes its name in `skip` with the reason.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { MessageInput, Storage } from '../../src/storage/index.ts';
import { taskConformanceCases } from './task-conformance.ts';

export interface ConformanceOptions {
  /** Test names to skip, with the reason printed. */
  skip?: Record<string, string>;
}

export type StorageFactory = (options: { now: () => number }) => Promise<Storage>;

const enc = new TextEncoder();
const dec = new TextDecoder();
const T0 = 1_700_000_000_000;

function msg(text: string, extra: Partial<MessageInput> = {}): MessageInput {
  return { topic: 'orders.eu.created', payload: enc.encode(text), ...extra };
}

function text(p: Uint8Array): string {
  return dec.decode(p);
}

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.equal((err as { code?: string }).code, code, `expected ${code}, got ${String(err)}`);
    return true;
  });
}

export function runStorageConformance(
  name: string,
  factory: StorageFactory,
  options: ConformanceOptions = {},
): void {
  describe(`storage conformance: ${name}`, () => {
    const open: Storage[] = [];
    after(async () => {
      for (const s of open) await s.close().catch(() => undefined);
    });

    /** A fresh storage with a controllable clock. */
    async function setup(): Promise<{ s: Storage; clock: { t: number; advance(ms: number): void } }> {
      const clock = {
        t: T0,
        advance(ms: number) {
          this.t += ms;
        },
      };
      const s = await factory({ now: () => clock.t });
      open.push(s);
      return { s, clock };
    }

    function test(title: string, fn: () => Promise<void>): void {
      const why = options.skip?.[title];
      if (why !== undefined) it(title, { skip: why }, fn);
      else it(title, fn);
    }

    // ---- queues: declaration -----------------------------------------------------------------------

    test('declareQueue applies defaults, is idempotent, and refuses a different spec', async () => {
      const { s } = await setup();
      const spec = await s.declareQueue({ name: 'q1', bindings: ['orders.#'] });
      assert.deepEqual(spec, {
        name: 'q1',
        bindings: ['orders.#'],
        overflow: 'reject-publish',
        ack_timeout_ms: 30000,
        max_deliveries: 5,
      });
      assert.deepEqual(await s.declareQueue({ name: 'q1', bindings: ['orders.#'] }), spec);
      await rejects(s.declareQueue({ name: 'q1', bindings: ['other'] }), 'ALREADY_EXISTS');
      await rejects(s.declareQueue({ name: 'q1', bindings: ['orders.#'], max_length: 5 }), 'ALREADY_EXISTS');
      await rejects(s.declareQueue({ name: 'bad name' }), 'BAD_REQUEST');
      await rejects(s.declareQueue({ name: 'q2', max_length: 0 }), 'BAD_REQUEST');
    });

    test('listQueues, getQueue and deleteQueue', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'b' });
      await s.declareQueue({ name: 'a', max_length: 10, overflow: 'drop-oldest' });
      assert.deepEqual(
        (await s.listQueues()).map((q) => q.name),
        ['a', 'b'],
      );
      assert.equal((await s.getQueue('a')).max_length, 10);
      await s.append('a', msg('x'));
      await s.deleteQueue('a');
      await rejects(s.getQueue('a'), 'NOT_FOUND');
      await rejects(s.deleteQueue('a'), 'NOT_FOUND');
      await rejects(s.append('a', msg('y')), 'NOT_FOUND');
      assert.deepEqual(
        (await s.listQueues()).map((q) => q.name),
        ['b'],
      );
      // A re-declared queue starts empty.
      await s.declareQueue({ name: 'a' });
      assert.equal((await s.stats('a')).depth, 0);
    });

    // ---- append and take ---------------------------------------------------------------------------

    test('append stores the whole message and take returns it with a delivery', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q' });
      const res = await s.append(
        'q',
        msg('hello', {
          headers: { a: '1' },
          correlation_id: 'c-1',
          reply_to: '_inbox.1',
          type: 'command',
          trace_id: '00-abc-def-01',
          priority: 3,
        }),
      );
      assert.equal(typeof res.id, 'string');
      const [d, ...rest] = await s.take('q', 'c1', 10);
      assert.equal(rest.length, 0);
      assert.ok(d);
      assert.equal(d.queue, 'q');
      assert.equal(d.delivery_count, 1);
      assert.equal(typeof d.delivery_id, 'string');
      assert.equal(d.message.id, res.id);
      assert.equal(text(d.message.payload), 'hello');
      assert.equal(d.message.topic, 'orders.eu.created');
      assert.deepEqual(d.message.headers, { a: '1' });
      assert.equal(d.message.priority, 3);
      assert.equal(d.message.timestamp, T0);
      assert.equal(d.message.correlation_id, 'c-1');
      assert.equal(d.message.reply_to, '_inbox.1');
      assert.equal(d.message.type, 'command');
      assert.equal(d.message.trace_id, '00-abc-def-01');
      assert.deepEqual(await s.take('q', 'c1', 10), []);
    });

    test('ids are assigned, time-ordered, and a given id is kept', async () => {
      const { s, clock } = await setup();
      await s.declareQueue({ name: 'q' });
      const a = await s.append('q', msg('a'));
      clock.advance(5);
      const b = await s.append('q', msg('b'));
      assert.ok(a.id < b.id, `${a.id} < ${b.id}`);
      const c = await s.append('q', msg('c', { id: 'my-id' }));
      assert.equal(c.id, 'my-id');
    });

    test('append validates the message', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q' });
      await rejects(s.append('q', msg('x', { priority: 6 as 5 })), 'BAD_REQUEST');
      await rejects(s.append('q', { topic: '', payload: new Uint8Array() }), 'BAD_REQUEST');
      await rejects(s.append([], msg('x')), 'BAD_REQUEST');
      await rejects(s.append('nope', msg('x')), 'NOT_FOUND');
    });

    test('the stored payload is a copy of the publisher buffer', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q' });
      const buf = enc.encode('abc');
      await s.append('q', { topic: 't', payload: buf });
      buf[0] = 0x7a;
      const [d] = await s.take('q', 'c', 1);
      assert.equal(text(d!.message.payload), 'abc');
    });

    test('FIFO within a priority, higher priorities first', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q' });
      const plan: [string, number][] = [
        ['n1', 2],
        ['l1', 0],
        ['c1', 5],
        ['n2', 2],
        ['h1', 3],
        ['c2', 5],
        ['l2', 0],
        ['n3', 2],
        ['low', 1],
        ['hi', 4],
      ];
      for (const [t, p] of plan) await s.append('q', msg(t, { priority: p as 0 }));
      const got: string[] = [];
      for (;;) {
        const ds = await s.take('q', 'c', 3);
        if (!ds.length) break;
        got.push(...ds.map((d) => text(d.message.payload)));
      }
      assert.deepEqual(got, ['c1', 'c2', 'hi', 'h1', 'n1', 'n2', 'n3', 'low', 'l1', 'l2']);
    });

    test('take honours max and a message goes to one consumer only', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q' });
      for (let i = 0; i < 5; i++) await s.append('q', msg(`m${i}`));
      const a = await s.take('q', 'a', 2);
      const b = await s.take('q', 'b', 2);
      const c = await s.take('q', 'c', 2);
      assert.deepEqual([a.length, b.length, c.length], [2, 2, 1]);
      const ids = new Set([...a, ...b, ...c].map((d) => d.message.id));
      assert.equal(ids.size, 5);
      assert.deepEqual(await s.take('q', 'a', 0), []);
      await rejects(s.take('nope', 'a', 1), 'NOT_FOUND');
    });

    test('deliver_at holds a message back until its time', async () => {
      const { s, clock } = await setup();
      await s.declareQueue({ name: 'q' });
      await s.append('q', msg('later', { deliver_at: T0 + 1000 }));
      await s.append('q', msg('now'));
      assert.deepEqual(
        (await s.take('q', 'c', 10)).map((d) => text(d.message.payload)),
        ['now'],
      );
      const st = await s.stats('q');
      assert.equal(st.delayed, 1);
      assert.equal(st.depth, 0);
      clock.advance(999);
      assert.deepEqual(await s.take('q', 'c', 10), []);
      clock.advance(1);
      assert.deepEqual(
        (await s.take('q', 'c', 10)).map((d) => text(d.message.payload)),
        ['later'],
      );
    });

    test('a delayed message of high priority overtakes once due', async () => {
      const { s, clock } = await setup();
      await s.declareQueue({ name: 'q' });
      await s.append('q', msg('n1'));
      await s.append('q', msg('urgent', { priority: 5, deliver_at: T0 + 10 }));
      await s.append('q', msg('n2'));
      clock.advance(10);
      assert.deepEqual(
        (await s.take('q', 'c', 3)).map((d) => text(d.message.payload)),
        ['urgent', 'n1', 'n2'],
      );
    });

    test('TTL: an expired message is never delivered and is dead-lettered as expired (take)', async () => {
      const { s, clock } = await setup();
      await s.declareQueue({ name: 'q' });
      await s.append('q', msg('short', { ttl_ms: 100 }));
      await s.append('q', msg('long', { ttl_ms: 10_000 }));
      await s.append('q', msg('forever'));
      clock.advance(100);
      assert.deepEqual(
        (await s.take('q', 'c', 10)).map((d) => text(d.message.payload)),
        ['long', 'forever'],
      );
      const dls = await s.listDeadLetters('q');
      assert.equal(dls.length, 1);
      assert.equal(dls[0]!.reason, 'expired');
      assert.equal(text(dls[0]!.message.payload), 'short');
      assert.equal(dls[0]!.dead_lettered_at, T0 + 100);
    });

    test('TTL: tick dead-letters expired waiting messages without a consumer', async () => {
      const { s, clock } = await setup();
      await s.declareQueue({ name: 'q' });
      await s.append('q', msg('a', { ttl_ms: 50 }));
      await s.append('q', msg('b', { ttl_ms: 50, deliver_at: T0 + 1000 }));
      let r = await s.tick();
      assert.equal(r.dead_lettered, 0);
      assert.equal(r.next_due_at, T0 + 50);
      clock.advance(60);
      r = await s.tick();
      assert.equal(r.dead_lettered, 2);
      const st = await s.stats('q');
      assert.deepEqual([st.depth, st.delayed, st.dead_letters], [0, 0, 2]);
      assert.ok((await s.listDeadLetters('q')).every((d) => d.reason === 'expired'));
    });

    // ---- settling ----------------------------------------------------------------------------------

    test('ack settles; a second ack, a foreign consumer or an unknown id is UNKNOWN_DELIVERY', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q' });
      await s.append('q', msg('a'));
      const [d] = await s.take('q', 'c1', 1);
      await rejects(s.ack('q', 'c2', d!.delivery_id), 'UNKNOWN_DELIVERY');
      await rejects(s.nack('q', 'c2', d!.delivery_id, { requeue: true }), 'UNKNOWN_DELIVERY');
      await s.ack('q', 'c1', d!.delivery_id);
      await rejects(s.ack('q', 'c1', d!.delivery_id), 'UNKNOWN_DELIVERY');
      await rejects(s.ack('q', 'c1', 'no-such-delivery'), 'UNKNOWN_DELIVERY');
      await rejects(s.ack('nope', 'c1', d!.delivery_id), 'NOT_FOUND');
      const st = await s.stats('q');
      assert.deepEqual([st.depth, st.in_flight, st.acked_total, st.published_total], [0, 0, 1, 1]);
      assert.deepEqual(await s.take('q', 'c1', 1), []);
    });

    test('ackMany settles a batch, each on its own: unknown, foreign and repeated ids come back unacked', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q' });
      for (const p of ['a', 'b', 'c', 'd']) await s.append('q', msg(p));
      const [da, db, dc] = await s.take('q', 'c1', 3);
      const [dd] = await s.take('q', 'c2', 1);
      const unknown = await s.ackMany('q', 'c1', [
        da!.delivery_id,
        'no-such-delivery',
        db!.delivery_id,
        dd!.delivery_id, // held by c2
        da!.delivery_id, // a repeat: settled by its first mention
      ]);
      assert.deepEqual(unknown, ['no-such-delivery', dd!.delivery_id, da!.delivery_id]);
      assert.deepEqual(await s.ackMany('q', 'c1', []), []);
      let st = await s.stats('q');
      assert.deepEqual([st.depth, st.in_flight, st.acked_total], [0, 2, 2]);
      assert.deepEqual(await s.ackMany('q', 'c1', [dc!.delivery_id]), []);
      assert.deepEqual(await s.ackMany('q', 'c2', [dd!.delivery_id]), []);
      st = await s.stats('q');
      assert.deepEqual([st.depth, st.in_flight, st.acked_total], [0, 0, 4]);
      await rejects(s.ackMany('nope', 'c1', [da!.delivery_id]), 'NOT_FOUND');
    });

    test('nack with requeue redelivers in original order with delivery_count incremented', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q' });
      await s.append('q', msg('a'));
      await s.append('q', msg('b'));
      const [da] = await s.take('q', 'c', 1);
      await s.nack('q', 'c', da!.delivery_id, { requeue: true });
      await rejects(s.ack('q', 'c', da!.delivery_id), 'UNKNOWN_DELIVERY');
      const ds = await s.take('q', 'c', 2);
      assert.deepEqual(
        ds.map((d) => [text(d.message.payload), d.delivery_count]),
        [
          ['a', 2],
          ['b', 1],
        ],
      );
      assert.notEqual(ds[0]!.delivery_id, da!.delivery_id);
    });

    test('nack with delay keeps the message back for delay_ms', async () => {
      const { s, clock } = await setup();
      await s.declareQueue({ name: 'q' });
      await s.append('q', msg('a'));
      const [d] = await s.take('q', 'c', 1);
      await s.nack('q', 'c', d!.delivery_id, { requeue: true, delay_ms: 500 });
      assert.equal((await s.stats('q')).delayed, 1);
      assert.deepEqual(await s.take('q', 'c', 1), []);
      const r = await s.tick();
      assert.equal(r.next_due_at, T0 + 500);
      clock.advance(500);
      const [d2] = await s.take('q', 'c', 1);
      assert.equal(d2!.delivery_count, 2);
    });

    test('nack without requeue dead-letters as rejected with the error', async () => {
      const { s, clock } = await setup();
      await s.declareQueue({ name: 'q' });
      await s.append('q', msg('a'));
      const [d] = await s.take('q', 'c', 1);
      clock.advance(7);
      await s.nack('q', 'c', d!.delivery_id, { requeue: false, error: 'bad input' });
      const [dl] = await s.listDeadLetters('q');
      assert.equal(dl!.reason, 'rejected');
      assert.equal(dl!.last_error, 'bad input');
      assert.equal(dl!.failures, 1);
      assert.equal(dl!.dead_lettered_at, T0 + 7);
      assert.equal(dl!.queue, 'q');
      const st = await s.stats('q');
      assert.deepEqual([st.depth, st.in_flight, st.dead_letters, st.dead_lettered_total], [0, 0, 1, 1]);
    });

    test('ack timeout redelivers with delivery_count incremented; the old delivery id is dead', async () => {
      const { s, clock } = await setup();
      await s.declareQueue({ name: 'q', ack_timeout_ms: 1000 });
      await s.append('q', msg('a'));
      const [d1] = await s.take('q', 'c1', 1);
      clock.advance(999);
      assert.equal((await s.tick()).redelivered, 0);
      clock.advance(1);
      const r = await s.tick();
      assert.equal(r.redelivered, 1);
      assert.deepEqual(r.ready_queues, ['q']);
      await rejects(s.ack('q', 'c1', d1!.delivery_id), 'UNKNOWN_DELIVERY');
      const [d2] = await s.take('q', 'c2', 1);
      assert.equal(d2!.delivery_count, 2);
      assert.equal(text(d2!.message.payload), 'a');
      await s.ack('q', 'c2', d2!.delivery_id);
    });

    test('take itself notices expired ack deadlines', async () => {
      const { s, clock } = await setup();
      await s.declareQueue({ name: 'q', ack_timeout_ms: 100 });
      await s.append('q', msg('a'));
      await s.take('q', 'c1', 1);
      clock.advance(100);
      const [d] = await s.take('q', 'c2', 1);
      assert.equal(d!.delivery_count, 2);
    });

    test('touch restarts the ack timeout', async () => {
      const { s, clock } = await setup();
      await s.declareQueue({ name: 'q', ack_timeout_ms: 100 });
      await s.append('q', msg('a'));
      const [d] = await s.take('q', 'c', 1);
      clock.advance(80);
      await s.touch('q', 'c', d!.delivery_id);
      clock.advance(80);
      assert.equal((await s.tick()).redelivered, 0);
      await s.ack('q', 'c', d!.delivery_id);
      await rejects(s.touch('q', 'c', d!.delivery_id), 'UNKNOWN_DELIVERY');
    });

    test('after max_deliveries failed deliveries a message is dead-lettered as max_deliveries', async () => {
      const { s, clock } = await setup();
      await s.declareQueue({ name: 'q', max_deliveries: 3, ack_timeout_ms: 100 });
      await s.append('q', msg('poison'));
      let d = (await s.take('q', 'c', 1))[0]!;
      await s.nack('q', 'c', d.delivery_id, { requeue: true, error: 'e1' });
      d = (await s.take('q', 'c', 1))[0]!;
      clock.advance(100); // second failure: ack timeout
      await s.tick();
      d = (await s.take('q', 'c', 1))[0]!;
      assert.equal(d.delivery_count, 3);
      await s.nack('q', 'c', d.delivery_id, { requeue: true, error: 'e3' });
      assert.deepEqual(await s.take('q', 'c', 1), []);
      const [dl] = await s.listDeadLetters('q');
      assert.equal(dl!.reason, 'max_deliveries');
      assert.equal(dl!.failures, 3);
      assert.equal(dl!.last_error, 'e3');
    });

    test('max_deliveries 0 never dead-letters', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q', max_deliveries: 0 });
      await s.append('q', msg('a'));
      for (let i = 1; i <= 20; i++) {
        const [d] = await s.take('q', 'c', 1);
        assert.equal(d!.delivery_count, i);
        await s.nack('q', 'c', d!.delivery_id, { requeue: true });
      }
      assert.equal((await s.stats('q')).dead_letters, 0);
    });

    test('releaseConsumer returns its deliveries to the queue', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q' });
      await s.declareQueue({ name: 'r' });
      await s.append('q', msg('a'));
      await s.append('q', msg('b'));
      await s.append('r', msg('c'));
      const [da] = await s.take('q', 'gone', 1);
      await s.take('q', 'stays', 1);
      await s.take('r', 'gone', 1);
      assert.equal(await s.releaseConsumer('gone'), 2);
      await rejects(s.ack('q', 'gone', da!.delivery_id), 'UNKNOWN_DELIVERY');
      assert.deepEqual([(await s.stats('q')).depth, (await s.stats('q')).in_flight], [1, 1]);
      const [again] = await s.take('q', 'new', 1);
      assert.equal(text(again!.message.payload), 'a');
      assert.equal(again!.delivery_count, 2);
      assert.equal(await s.releaseConsumer('nobody'), 0);
    });

    // ---- overflow ----------------------------------------------------------------------------------

    test('overflow reject-publish refuses with QUEUE_FULL and stores nowhere', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'small', max_length: 2 });
      await s.declareQueue({ name: 'big' });
      await s.append(['small', 'big'], msg('1'));
      await s.append(['small', 'big'], msg('2'));
      await rejects(s.append(['big', 'small'], msg('3')), 'QUEUE_FULL');
      assert.equal((await s.stats('big')).depth, 2);
      assert.equal((await s.stats('small')).depth, 2);
      // In-flight messages do not count toward max_length.
      const [d] = await s.take('small', 'c', 1);
      await s.append('small', msg('3'));
      await rejects(s.append('small', msg('4')), 'QUEUE_FULL');
      await s.ack('small', 'c', d!.delivery_id);
      await rejects(s.append('small', msg('4')), 'QUEUE_FULL');
    });

    test('overflow drop-oldest dead-letters the oldest as overflow', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q', max_length: 2, overflow: 'drop-oldest' });
      await s.append('q', msg('1'));
      await s.append('q', msg('2', { priority: 5 }));
      await s.append('q', msg('3'));
      const st = await s.stats('q');
      assert.equal(st.depth, 2);
      const dls = await s.listDeadLetters('q');
      assert.deepEqual(
        dls.map((d) => [text(d.message.payload), d.reason]),
        [['1', 'overflow']],
      );
      assert.deepEqual(
        (await s.take('q', 'c', 5)).map((d) => text(d.message.payload)),
        ['2', '3'],
      );
    });

    // ---- purge, fan-out ----------------------------------------------------------------------------

    test('purgeQueue drops ready and delayed messages, keeps deliveries in flight', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q' });
      await s.append('q', msg('held'));
      const [d] = await s.take('q', 'c', 1);
      await s.append('q', msg('a'));
      await s.append('q', msg('b', { deliver_at: T0 + 10_000 }));
      assert.equal(await s.purgeQueue('q'), 2);
      const st = await s.stats('q');
      assert.deepEqual([st.depth, st.delayed, st.in_flight], [0, 0, 1]);
      await s.ack('q', 'c', d!.delivery_id);
      await s.append('q', msg('c'));
      assert.deepEqual(
        (await s.take('q', 'c', 5)).map((x) => text(x.message.payload)),
        ['c'],
      );
      await rejects(s.purgeQueue('nope'), 'NOT_FOUND');
    });

    test('a message appended to several queues is settled in each independently', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q1' });
      await s.declareQueue({ name: 'q2' });
      const { id } = await s.append(['q1', 'q2'], msg('shared'));
      const [d1] = await s.take('q1', 'c', 1);
      await s.ack('q1', 'c', d1!.delivery_id);
      const [d2] = await s.take('q2', 'c', 1);
      assert.equal(d2!.message.id, id);
      assert.equal(text(d2!.message.payload), 'shared');
      await s.deleteQueue('q1');
      await s.nack('q2', 'c', d2!.delivery_id, { requeue: true });
      assert.equal((await s.take('q2', 'c', 1))[0]!.message.id, id);
    });

    // ---- dead letters ------------------------------------------------------------------------------

    async function withDeadLetters(
      s: Storage,
      clock: { advance(ms: number): void },
      n: number,
    ): Promise<void> {
      await s.declareQueue({ name: 'q' });
      for (let i = 0; i < n; i++) await s.append('q', msg(`m${i}`, { id: `id-${i}` }));
      for (let i = 0; i < n; i++) {
        const [d] = await s.take('q', 'c', 1);
        await s.nack('q', 'c', d!.delivery_id, { requeue: false, error: `err${i}` });
        clock.advance(1000);
      }
    }

    test('listDeadLetters pages in dead-letter order', async () => {
      const { s, clock } = await setup();
      await withDeadLetters(s, clock, 5);
      const all = await s.listDeadLetters('q');
      assert.deepEqual(
        all.map((d) => text(d.message.payload)),
        ['m0', 'm1', 'm2', 'm3', 'm4'],
      );
      assert.deepEqual(
        (await s.listDeadLetters('q', { limit: 2, offset: 1 })).map((d) => d.last_error),
        ['err1', 'err2'],
      );
      assert.equal(new Set(all.map((d) => d.id)).size, 5);
      await rejects(s.listDeadLetters('nope'), 'NOT_FOUND');
    });

    test('replayDeadLetters by dead-letter id, by message id, and all', async () => {
      const { s, clock } = await setup();
      await withDeadLetters(s, clock, 4);
      await s.append('q', msg('live'));
      const all = await s.listDeadLetters('q');
      assert.equal(await s.replayDeadLetters('q', [all[2]!.id]), 1);
      assert.equal(await s.replayDeadLetters('q', ['id-0', 'unknown']), 1);
      let st = await s.stats('q');
      assert.deepEqual([st.depth, st.dead_letters], [3, 2]);
      // Replayed messages go to the tail, with a fresh delivery count.
      const ds = await s.take('q', 'c', 10);
      assert.deepEqual(
        ds.map((d) => [text(d.message.payload), d.delivery_count]),
        [
          ['live', 1],
          ['m2', 1],
          ['m0', 1],
        ],
      );
      assert.equal(await s.replayDeadLetters('q'), 2);
      st = await s.stats('q');
      assert.deepEqual([st.depth, st.dead_letters], [2, 0]);
      assert.equal(await s.replayDeadLetters('q'), 0);
    });

    test('a replayed expired message is delivered (its TTL no longer applies)', async () => {
      const { s, clock } = await setup();
      await s.declareQueue({ name: 'q' });
      await s.append('q', msg('x', { ttl_ms: 10 }));
      clock.advance(20);
      await s.tick();
      assert.equal(await s.replayDeadLetters('q'), 1);
      const [d] = await s.take('q', 'c', 1);
      assert.equal(text(d!.message.payload), 'x');
    });

    test('purgeDeadLetters all or older than a given age', async () => {
      const { s, clock } = await setup();
      await withDeadLetters(s, clock, 5); // dead at T0, +1s, +2s, +3s, +4s; now T0+5s
      assert.equal(await s.purgeDeadLetters('q', { olderThanMs: 2500 }), 3);
      assert.deepEqual(
        (await s.listDeadLetters('q')).map((d) => text(d.message.payload)),
        ['m3', 'm4'],
      );
      assert.equal(await s.purgeDeadLetters('q'), 2);
      assert.deepEqual(await s.listDeadLetters('q'), []);
      assert.equal((await s.stats('q')).dead_letters, 0);
    });

    // ---- stats -------------------------------------------------------------------------------------

    test('stats reports depth, in flight, delayed, dead letters, oldest age and totals', async () => {
      const { s, clock } = await setup();
      await s.declareQueue({ name: 'q' });
      let st = await s.stats('q');
      assert.deepEqual(st, {
        queue: 'q',
        depth: 0,
        in_flight: 0,
        delayed: 0,
        dead_letters: 0,
        oldest_message_age_ms: null,
        published_total: 0,
        acked_total: 0,
        dead_lettered_total: 0,
      });
      await s.append('q', msg('a'));
      clock.advance(100);
      await s.append('q', msg('b'));
      await s.append('q', msg('c'));
      await s.append('q', msg('d', { deliver_at: T0 + 10_000 }));
      clock.advance(50);
      st = await s.stats('q');
      assert.equal(st.oldest_message_age_ms, 150);
      const [da, db] = await s.take('q', 'c', 2);
      await s.ack('q', 'c', da!.delivery_id);
      await s.nack('q', 'c', db!.delivery_id, { requeue: false });
      await s.take('q', 'c', 1);
      st = await s.stats('q');
      assert.deepEqual(st, {
        queue: 'q',
        depth: 0,
        in_flight: 1,
        delayed: 1,
        dead_letters: 1,
        oldest_message_age_ms: null,
        published_total: 4,
        acked_total: 1,
        dead_lettered_total: 1,
      });
      await rejects(s.stats('nope'), 'NOT_FOUND');
    });

    // ---- streams -----------------------------------------------------------------------------------

    test('declareStream is idempotent and refuses a different spec', async () => {
      const { s } = await setup();
      const spec = await s.declareStream({ name: 'st', bindings: ['orders.>'], max_msgs: 10 });
      assert.deepEqual(spec, { name: 'st', bindings: ['orders.>'], max_msgs: 10 });
      assert.deepEqual(await s.declareStream({ name: 'st', bindings: ['orders.>'], max_msgs: 10 }), spec);
      await rejects(s.declareStream({ name: 'st', bindings: ['orders.>'] }), 'ALREADY_EXISTS');
      const [info] = await s.listStreams();
      assert.deepEqual(info, { ...spec, first_seq: 1, last_seq: 0, messages: 0, bytes: 0, readers: {} });
    });

    test('streamAppend assigns 1, 2, 3… per stream and reads replay exactly in order', async () => {
      const { s } = await setup();
      await s.declareStream({ name: 'a' });
      await s.declareStream({ name: 'b' });
      assert.deepEqual((await s.streamAppend('a', msg('a1'))).streams, { a: 1 });
      assert.deepEqual((await s.streamAppend(['a', 'b'], msg('ab2'))).streams, { a: 2, b: 1 });
      for (let i = 3; i <= 10; i++) await s.streamAppend('a', msg(`a${i}`));
      const r = await s.streamRead('a', { from: 'earliest', max: 100 });
      assert.deepEqual(
        r.messages.map((m) => m.seq),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      );
      assert.deepEqual(r.messages.map((m) => text(m.message.payload)).slice(0, 3), ['a1', 'ab2', 'a3']);
      assert.deepEqual([r.first_seq, r.last_seq, r.next_seq], [1, 10, 11]);
      const page = await s.streamRead('a', { from: { seq: 4 }, max: 3 });
      assert.deepEqual(
        page.messages.map((m) => m.seq),
        [4, 5, 6],
      );
      assert.equal(page.next_seq, 7);
      const rb = await s.streamRead('b', { from: 'earliest', max: 10 });
      assert.deepEqual(
        rb.messages.map((m) => [m.seq, text(m.message.payload)]),
        [[1, 'ab2']],
      );
      await rejects(s.streamAppend('nope', msg('x')), 'NOT_FOUND');
      await rejects(s.streamRead('nope', { from: 'earliest', max: 1 }), 'NOT_FOUND');
    });

    test('streamRead from latest, last, a sequence past the end, and a time', async () => {
      const { s, clock } = await setup();
      await s.declareStream({ name: 'st' });
      let r = await s.streamRead('st', { from: 'latest', max: 10 });
      assert.deepEqual([r.messages.length, r.next_seq], [0, 1]);
      r = await s.streamRead('st', { from: 'last', max: 10 });
      assert.deepEqual([r.messages.length, r.next_seq], [0, 1]);
      for (let i = 1; i <= 5; i++) {
        await s.streamAppend('st', msg(`m${i}`));
        clock.advance(1000);
      }
      r = await s.streamRead('st', { from: 'latest', max: 10 });
      assert.deepEqual([r.messages.length, r.next_seq], [0, 6]);
      await s.streamAppend('st', msg('m6'));
      r = await s.streamRead('st', { from: { seq: r.next_seq }, max: 10 });
      assert.deepEqual(
        r.messages.map((m) => text(m.message.payload)),
        ['m6'],
      );
      r = await s.streamRead('st', { from: 'last', max: 10 });
      assert.deepEqual(
        r.messages.map((m) => m.seq),
        [6],
      );
      r = await s.streamRead('st', { from: { time: T0 + 2000 }, max: 2 });
      assert.deepEqual(
        r.messages.map((m) => m.seq),
        [3, 4],
      );
      r = await s.streamRead('st', { from: { time: T0 + 1500 }, max: 1 });
      assert.deepEqual(
        r.messages.map((m) => m.seq),
        [3],
      );
      r = await s.streamRead('st', { from: { time: T0 + 99_999 }, max: 1 });
      assert.deepEqual([r.messages.length, r.next_seq], [0, 7]);
      r = await s.streamRead('st', { from: { seq: 100 }, max: 1 });
      assert.equal(r.messages.length, 0);
      await rejects(s.streamRead('st', { from: 'sideways' as 'earliest', max: 1 }), 'BAD_REQUEST');
    });

    test('stream retention by count', async () => {
      const { s } = await setup();
      await s.declareStream({ name: 'st', max_msgs: 3 });
      for (let i = 1; i <= 5; i++) await s.streamAppend('st', msg(`m${i}`));
      const info = await s.getStream('st');
      assert.deepEqual([info.first_seq, info.last_seq, info.messages], [3, 5, 3]);
      const r = await s.streamRead('st', { from: 'earliest', max: 10 });
      assert.deepEqual(
        r.messages.map((m) => m.seq),
        [3, 4, 5],
      );
      // Reading from a trimmed sequence starts at the first retained one.
      assert.equal((await s.streamRead('st', { from: { seq: 1 }, max: 1 })).messages[0]!.seq, 3);
    });

    test('stream retention by bytes', async () => {
      const { s } = await setup();
      await s.declareStream({ name: 'st', max_bytes: 100 });
      // Each message counts payload + topic + headers bytes: 40 + 1 = 41.
      for (let i = 0; i < 5; i++) await s.streamAppend('st', { topic: 't', payload: new Uint8Array(40) });
      const info = await s.getStream('st');
      assert.deepEqual([info.first_seq, info.last_seq, info.messages, info.bytes], [4, 5, 2, 82]);
    });

    test('stream retention by age', async () => {
      const { s, clock } = await setup();
      await s.declareStream({ name: 'st', max_age_ms: 1000 });
      await s.streamAppend('st', msg('old'));
      clock.advance(600);
      await s.streamAppend('st', msg('new'));
      let r = await s.tick();
      assert.equal(r.next_due_at, T0 + 1001);
      clock.advance(400);
      r = await s.tick();
      let info = await s.getStream('st');
      assert.deepEqual([info.first_seq, info.messages], [2, 1]);
      clock.advance(600);
      // Reads never return what has aged out, even before a tick.
      const read = await s.streamRead('st', { from: 'earliest', max: 10 });
      assert.deepEqual(read.messages, []);
      info = await s.getStream('st');
      assert.deepEqual([info.first_seq, info.last_seq, info.messages, info.bytes], [3, 2, 0, 0]);
      assert.deepEqual((await s.streamAppend('st', msg('next'))).streams, { st: 3 });
    });

    test('durable reader positions', async () => {
      const { s } = await setup();
      await s.declareStream({ name: 'st' });
      for (let i = 1; i <= 5; i++) await s.streamAppend('st', msg(`m${i}`));
      assert.equal(await s.getReaderPosition('st', 'r1'), undefined);
      await rejects(s.streamRead('st', { from: { reader: 'r1' }, max: 1 }), 'NOT_FOUND');
      await s.setReaderPosition('st', 'r1', 3);
      assert.equal(await s.getReaderPosition('st', 'r1'), 3);
      const r = await s.streamRead('st', { from: { reader: 'r1' }, max: 10 });
      assert.deepEqual(
        r.messages.map((m) => m.seq),
        [3, 4, 5],
      );
      await s.setReaderPosition('st', 'r1', r.next_seq);
      assert.deepEqual((await s.getStream('st')).readers, { r1: 6 });
      await s.deleteReader('st', 'r1');
      assert.equal(await s.getReaderPosition('st', 'r1'), undefined);
      await rejects(s.setReaderPosition('nope', 'r1', 1), 'NOT_FOUND');
      await rejects(s.setReaderPosition('st', 'r1', -1), 'BAD_REQUEST');
    });

    test('deleteStream removes the stream and its messages', async () => {
      const { s } = await setup();
      await s.declareStream({ name: 'st' });
      await s.streamAppend('st', msg('x'));
      await s.deleteStream('st');
      await rejects(s.getStream('st'), 'NOT_FOUND');
      await rejects(s.deleteStream('st'), 'NOT_FOUND');
      await s.declareStream({ name: 'st' });
      const info = await s.getStream('st');
      assert.deepEqual([info.first_seq, info.last_seq, info.messages], [1, 0, 0]);
    });

    test('publish stores once for queues and streams together', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q' });
      await s.declareStream({ name: 'st' });
      const res = await s.publish({ queues: ['q'], streams: ['st'] }, msg('both'));
      assert.deepEqual(res.streams, { st: 1 });
      const [d] = await s.take('q', 'c', 1);
      await s.ack('q', 'c', d!.delivery_id);
      const r = await s.streamRead('st', { from: 'earliest', max: 1 });
      assert.equal(r.messages[0]!.message.id, res.id);
      assert.equal(text(r.messages[0]!.message.payload), 'both');
    });

    // ---- lifecycle ---------------------------------------------------------------------------------

    test('operations after close fail with STORAGE_FAILURE', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q' });
      await s.close();
      await rejects(s.listQueues(), 'STORAGE_FAILURE');
      await rejects(s.append('q', msg('x')), 'STORAGE_FAILURE');
    });

    test('many messages keep their order through interleaved takes and acks', async () => {
      const { s } = await setup();
      await s.declareQueue({ name: 'q' });
      const n = 2000;
      await Promise.all(
        Array.from({ length: n }, (_, i) => s.append('q', msg(String(i), { priority: (i % 3) as 0 }))),
      );
      const seen: number[][] = [[], [], []];
      for (;;) {
        const ds = await s.take('q', 'c', 64);
        if (!ds.length) break;
        for (const d of ds) seen[d.message.priority]!.push(Number(text(d.message.payload)));
        await Promise.all(ds.map((d) => s.ack('q', 'c', d.delivery_id)));
      }
      for (const list of seen)
        assert.deepEqual(
          list,
          [...list].sort((a, b) => a - b),
        );
      assert.equal(seen.flat().length, n);
      const st = await s.stats('q');
      assert.deepEqual([st.depth, st.acked_total], [0, n]);
    });

    // ---- tasks (test/storage/task-conformance.ts) ----------------------------------------------------

    taskConformanceCases(test, setup);
  });
}
