/**
 * The SDK's durable queues and streams against the real messaging_server with the file storage engine:
 * declarations, confirmed publishes (by binding and direct), consumers with prefetch, ack batching,
 * nack/requeue/delay/reject, dead letters, ack timeouts, priorities, pull, streams (read from every kind
 * of position, durable readers, live tails) and the typed errors.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  MessagingError,
  NotFoundError,
  connect,
  type Connection,
  type ConnectOptions,
  type PublishOptions,
  type QueueDeclareOptions,
  type QueueMessage,
  type StreamMessage,
} from '../../src/client/index.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

let server: TestServer;
const open: Connection[] = [];
let unique = 0;
/** A name no other test uses (valid as a queue, stream and topic token). */
const name = (what: string): string => `d${process.pid}-${++unique}-${what}`;

async function client(options: ConnectOptions = {}): Promise<Connection> {
  const c = await connect({ servers: server.url, timeoutMs: 3000, ...options });
  open.push(c);
  return c;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Takes `n` items from an async iterable (or an iterator already taken from one, since a subscription
 * allows only one), failing after `timeoutMs`; leaves it open.
 */
async function take<T>(
  source: AsyncIterable<T> | AsyncIterator<T>,
  n: number,
  timeoutMs = 3000,
): Promise<T[]> {
  const out: T[] = [];
  const it = Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source;
  const deadline = Date.now() + timeoutMs;
  while (out.length < n) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const r = await Promise.race([
      it.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`only ${out.length} of ${n} arrived`)),
          Math.max(1, deadline - Date.now()),
        );
      }),
    ]);
    clearTimeout(timer);
    if (r.done) break;
    out.push(r.value);
  }
  return out;
}

/** The next item of an iterator, failing after `timeoutMs`. */
async function next<T>(it: AsyncIterator<T>, timeoutMs = 3000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const r = await Promise.race([
    it.next(),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`nothing arrived within ${timeoutMs} ms`)), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (r.done) throw new Error('the iteration ended');
  return r.value;
}

/** Declares queue `q` bound to the topic `q.in`. */
async function declareBound(
  c: Connection,
  q: string,
  options: Omit<QueueDeclareOptions, 'name'> = {},
): Promise<void> {
  await c.queues.declare({ name: q, bindings: [`${q}.in`], ...options });
}

/** Publishes into queue `q` through its binding (see `declareBound`) with a confirm. */
async function put(c: Connection, q: string, payload: string, options: PublishOptions = {}): Promise<void> {
  await c.publish(`${q}.in`, payload, { ...options, confirm: true });
}

/** Polls `check` until it returns true, failing after `timeoutMs`. */
async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 3000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<MessagingError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MessagingError, `expected a MessagingError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

before(async () => {
  server = await startTestServer({ 'message_bus.storage': 'file' });
});

after(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
  await server.close();
});

describe('queues: declarations', () => {
  it('declares (idempotently), lists, shows info with stats, purges and deletes', async () => {
    const c = await client();
    const q = name('decl');
    const spec = await c.queues.declare({
      name: q,
      bindings: [`${q}.#`],
      maxLength: 100,
      ackTimeoutMs: 5000,
    });
    assert.equal(spec.name, q);
    assert.deepEqual(spec.bindings, [`${q}.#`]);
    assert.equal(spec.max_length, 100);
    assert.equal(spec.ack_timeout_ms, 5000);
    assert.equal(spec.overflow, 'reject-publish');
    assert.deepEqual(
      await c.queues.declare({ name: q, bindings: [`${q}.#`], maxLength: 100, ackTimeoutMs: 5000 }),
      spec,
    );
    await rejectsWith(c.queues.declare({ name: q, bindings: ['other'] }), 'ALREADY_EXISTS');

    for (let i = 0; i < 3; i++) await c.publish(`${q}.x`, `m${i}`, { confirm: true });
    const info = await c.queues.info(q);
    assert.equal(info.name, q);
    assert.equal(info.stats.depth, 3);
    assert.equal(info.stats.in_flight, 0);
    assert.equal(info.stats.published_total, 3);
    assert.equal(typeof info.stats.publish_rate, 'number');
    const listed = (await c.queues.list()).find((x) => x.name === q);
    assert.ok(listed, 'the queue is listed');
    assert.equal(listed.stats.depth, 3);

    assert.equal(await c.queues.purge(q), 3);
    assert.equal((await c.queues.info(q)).stats.depth, 0);
    await c.queues.delete(q);
    assert.equal(
      (await c.queues.list()).some((x) => x.name === q),
      false,
    );
  });

  it('answers NotFoundError for a queue that does not exist', async () => {
    const c = await client();
    const missing = name('missing');
    const err = await rejectsWith(c.queues.info(missing), 'NOT_FOUND');
    assert.ok(err instanceof NotFoundError);
    await rejectsWith(c.queues.purge(missing), 'NOT_FOUND');
    await rejectsWith(c.queues.publish(missing, 'x'), 'NOT_FOUND');
    const consumer = c.queues.consume(missing);
    await assert.rejects(consumer.ready(), NotFoundError);
  });
});

describe('queues: publishing', () => {
  it('confirms a topic publish once every bound queue and stream stored it', async () => {
    const c = await client();
    const q1 = name('route1');
    const q2 = name('route2');
    const s = name('routes');
    const t = `${q1}.orders.created`;
    await c.queues.declare({ name: q1, bindings: [`${q1}.orders.*`] });
    await c.queues.declare({ name: q2, bindings: [`${q1}.#`] });
    await c.streams.declare({ name: s, bindings: [`${q1}.orders.#`] });
    const ack = await c.publish(t, 'hello', { confirm: true });
    assert.match(String(ack.id), /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.deepEqual([...(ack.queues ?? [])].sort(), [q1, q2].sort());
    assert.deepEqual(ack.streams, { [s]: 1 });
    // A topic no binding matches is confirmed but stored nowhere.
    const none = await c.publish(`${q1}.unbound`, 'x', { confirm: true });
    assert.deepEqual(none.queues ?? [], [q2]);
    const nothing = await c.publish(`${name('nowhere')}.x`, 'x', { confirm: true });
    assert.deepEqual(nothing.queues ?? [], []);
    assert.equal((await c.queues.info(q1)).stats.depth, 1);
    assert.equal((await c.queues.info(q2)).stats.depth, 2);
  });

  it('publishes directly to a queue by name, bypassing bindings, and resolves with the id', async () => {
    const c = await client();
    const q = name('direct');
    await c.queues.declare({ name: q, bindings: ['never.matches'] });
    const ack = await c.queues.publish(q, 'direct', {
      headers: { k: 'v' },
      type: 'command',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    assert.match(ack.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    const [m] = await c.queues.pull(q);
    assert.ok(m);
    assert.equal(m.id, ack.id);
    assert.equal(m.string(), 'direct');
    assert.equal(m.topic, q);
    assert.deepEqual(m.headers, { k: 'v' });
    assert.equal(m.type, 'command');
    assert.equal(m.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    await m.ack();
  });

  it('refuses a publish to a full reject-publish queue with QUEUE_FULL', async () => {
    const c = await client();
    const q = name('full');
    await c.queues.declare({ name: q, bindings: [`${q}.*`], maxLength: 1 });
    await c.publish(`${q}.a`, '1', { confirm: true });
    await rejectsWith(c.publish(`${q}.a`, '2', { confirm: true }), 'QUEUE_FULL');
    await rejectsWith(c.queues.publish(q, '3'), 'QUEUE_FULL');
    assert.equal((await c.queues.info(q)).stats.depth, 1);
  });
});

describe('queues: consumers', () => {
  it('never has more than prefetch deliveries unacknowledged', async () => {
    const c = await client();
    const q = name('prefetch');
    await declareBound(c, q);
    for (let i = 0; i < 10; i++) await put(c, q, `m${i}`);
    const got: QueueMessage[] = [];
    const consumer = c.queues.consume(q, { prefetch: 3, callback: (m) => void got.push(m) });
    await consumer.ready();
    await eventually(() => got.length === 3, '3 deliveries');
    await sleep(200);
    assert.equal(got.length, 3, 'no fourth delivery before an ack');
    await got[0]!.ack();
    await eventually(() => got.length === 4, 'a fourth delivery after one ack');
    await sleep(100);
    assert.equal(got.length, 4);
    await Promise.all(got.slice(1).map((m) => m.ack()));
    await eventually(() => got.length === 7, 'three more after three acks');
    assert.deepEqual(
      got.map((m) => m.string()),
      ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6'],
    );
    for (const m of got) {
      assert.equal(m.queue, q);
      assert.equal(m.deliveryCount, 1);
      assert.equal(typeof m.deliveryId, 'string');
      assert.equal(m.sid, consumer.sid);
    }
    assert.equal(typeof consumer.consumer, 'string');
    await consumer.stop();
  });

  it('iterates deliveries and batches the acks of one tick into one queue.ack', async () => {
    const c = await client();
    const q = name('batch');
    await declareBound(c, q);
    for (let i = 0; i < 20; i++) await put(c, q, `m${i}`);
    const ops: Array<{ op: string; args: Record<string, unknown> }> = [];
    const original = c.command.bind(c);
    c.command = (op, args, options) => {
      ops.push({ op, args: args ?? {} });
      return original(op, args, options);
    };
    const consumer = c.queues.consume(q, { prefetch: 20 });
    const msgs = await take(consumer, 20);
    const acks = msgs.map((m) => m.ack());
    await Promise.all(acks);
    const ackOps = ops.filter((o) => o.op === 'queue.ack');
    assert.equal(ackOps.length, 1, `one queue.ack for 20 acks, got ${ackOps.length}`);
    assert.equal((ackOps[0]!.args['delivery_ids'] as string[]).length, 20);
    const info = await c.queues.info(q);
    assert.equal(info.stats.acked_total, 20);
    assert.equal(info.stats.in_flight, 0);
    await consumer.stop();
  });

  it('rejects a double ack with UNKNOWN_DELIVERY', async () => {
    const c = await client();
    const q = name('double');
    await declareBound(c, q);
    await put(c, q, 'x');
    const [m] = await c.queues.pull(q);
    await m!.ack();
    await rejectsWith(m!.ack(), 'UNKNOWN_DELIVERY');
    await rejectsWith(c.queues.ack(q, 'no-such-delivery'), 'UNKNOWN_DELIVERY');
  });

  it('settles each ack of a batch on its own when one of them is unknown', async () => {
    const c = await client();
    const q = name('mixed');
    await declareBound(c, q);
    await put(c, q, 'a');
    await put(c, q, 'b');
    const [a, b] = await c.queues.pull(q, { max: 2 });
    const results = await Promise.allSettled([a!.ack(), c.queues.ack(q, 'bogus'), b!.ack()]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.equal(((results[1] as PromiseRejectedResult).reason as MessagingError).code, 'UNKNOWN_DELIVERY');
    assert.equal((await c.queues.info(q)).stats.acked_total, 2);
  });

  it('nack requeues (at once or after a delay) with delivery_count + 1', async () => {
    const c = await client();
    const q = name('nack');
    await declareBound(c, q);
    await put(c, q, 'x');
    const consumer = c.queues.consume(q, { prefetch: 1 });
    const it = consumer[Symbol.asyncIterator]();
    const first = await next(it);
    assert.equal(first.deliveryCount, 1);
    await first.nack();
    const second = await next(it);
    assert.equal(second.string(), 'x');
    assert.equal(second.deliveryCount, 2);
    const t0 = Date.now();
    await second.nack({ delayMs: 300 });
    assert.equal((await c.queues.info(q)).stats.delayed, 1);
    const third = await next(it);
    assert.ok(Date.now() - t0 >= 280, `redelivered after ${Date.now() - t0} ms`);
    assert.equal(third.deliveryCount, 3);
    await third.ack();
    await consumer.stop();
  });

  it('nack without requeue dead-letters; dead letters can be listed, replayed and purged', async () => {
    const c = await client();
    const q = name('dlq');
    await declareBound(c, q);
    await put(c, q, 'poison', { headers: { n: '1' } });
    await put(c, q, 'poison2');
    const [m1, m2] = await c.queues.pull(q, { max: 2 });
    await m1!.nack({ requeue: false, error: new Error('bad input') });
    await m2!.nack({ requeue: false, error: 'also bad' });
    const info = await c.queues.info(q);
    assert.equal(info.stats.dead_letters, 2);
    assert.equal(info.stats.depth, 0);

    const dead = await c.queues.deadLetters(q);
    assert.equal(dead.length, 2);
    const d1 = dead.find((d) => d.message.string() === 'poison');
    assert.ok(d1);
    assert.equal(d1.reason, 'rejected');
    assert.equal(d1.lastError, 'bad input');
    assert.equal(d1.failures, 1);
    assert.ok(d1.deadLetteredAt > Date.now() - 10_000);
    assert.deepEqual(d1.message.headers, { n: '1' });
    assert.equal(d1.message.id, m1!.id);
    assert.equal((await c.queues.deadLetters(q, { limit: 1, offset: 1 })).length, 1);

    assert.equal(await c.queues.replayDeadLetters(q, [d1.id]), 1);
    const [again] = await c.queues.pull(q);
    assert.equal(again!.string(), 'poison');
    await again!.ack();
    assert.equal(await c.queues.purgeDeadLetters(q, { olderThanMs: 60_000 }), 0);
    assert.equal(await c.queues.purgeDeadLetters(q), 1);
    assert.equal((await c.queues.deadLetters(q)).length, 0);
  });

  it('redelivers after the ack timeout with a higher delivery_count, then dead-letters at max_deliveries', async () => {
    const c = await client();
    const q = name('timeout');
    await declareBound(c, q, { ackTimeoutMs: 200, maxDeliveries: 2 });
    await put(c, q, 'slow');
    const consumer = c.queues.consume(q, { prefetch: 5 });
    const [first, second] = await take(consumer, 2, 4000);
    assert.equal(first!.deliveryCount, 1);
    assert.equal(second!.deliveryCount, 2);
    assert.equal(second!.id, first!.id);
    await rejectsWith(first!.ack(), 'UNKNOWN_DELIVERY');
    await eventually(async () => (await c.queues.info(q)).stats.dead_letters === 1, 'the dead letter', 4000);
    const [dead] = await c.queues.deadLetters(q);
    assert.equal(dead!.reason, 'max_deliveries');
    await consumer.stop();
  });

  it('serves higher priority first, FIFO within a priority', async () => {
    const c = await client();
    const q = name('prio');
    await declareBound(c, q);
    await put(c, q, 'low', { priority: 'low' });
    await put(c, q, 'normal-1');
    await put(c, q, 'critical', { priority: 5 });
    await put(c, q, 'normal-2', { priority: 'normal' });
    await put(c, q, 'high', { priority: 'high' });
    const msgs = await c.queues.pull(q, { max: 10 });
    assert.deepEqual(
      msgs.map((m) => m.string()),
      ['critical', 'high', 'normal-1', 'normal-2', 'low'],
    );
    assert.deepEqual(
      msgs.map((m) => m.priority),
      [5, 3, 2, 2, 1],
    );
    await Promise.all(msgs.map((m) => m.ack()));
  });

  it('holds a message until deliver_at', async () => {
    const c = await client();
    const q = name('delay');
    await declareBound(c, q);
    await put(c, q, 'later', { deliverAt: Date.now() + 300 });
    assert.deepEqual(await c.queues.pull(q), []);
    assert.equal((await c.queues.info(q)).stats.delayed, 1);
    await sleep(450);
    const [m] = await c.queues.pull(q);
    assert.equal(m!.string(), 'later');
    await m!.ack();
  });

  it('re-opens a consumer after a reconnect; the lost deliveries come again', async () => {
    const c = await client({ reconnectBackoff: { initialMs: 20, maxMs: 50, jitter: 0 } });
    const q = name('reconnect');
    await declareBound(c, q);
    await put(c, q, 'one');
    const consumer = c.queues.consume(q, { prefetch: 1 });
    const it = consumer[Symbol.asyncIterator]();
    const first = await next(it);
    assert.equal(first.deliveryCount, 1);
    const reconnected = c.next('reconnect');
    // Cut the link from under the connection, as a network failure would.
    (c as unknown as { link: { drop(e: MessagingError): void } }).link.drop(
      new MessagingError('CONNECTION_CLOSED', 'test cut'),
    );
    await reconnected;
    const again = await next(it);
    assert.equal(again.string(), 'one');
    assert.equal(again.id, first.id);
    await rejectsWith(first.ack(), 'UNKNOWN_DELIVERY');
    await again.ack();
    await put(c, q, 'two');
    const two = await next(it);
    assert.equal(two.string(), 'two');
    await two.ack();
    assert.equal(consumer.isActive, true);
    await consumer.stop();
  });

  it('stop() ends the iteration; its unacknowledged deliveries can still be acked', async () => {
    const c = await client();
    const q = name('stop');
    await declareBound(c, q);
    await put(c, q, 'a');
    await put(c, q, 'b');
    const consumer = c.queues.consume(q, { prefetch: 1 });
    const it = consumer[Symbol.asyncIterator]();
    const a = await next(it);
    await consumer.stop();
    assert.equal(consumer.isActive, false);
    await a.ack();
    const info = await c.queues.info(q);
    assert.equal(info.stats.acked_total, 1);
    assert.equal(info.stats.depth, 1);
    assert.deepEqual(await it.next(), { value: undefined, done: true });
  });
});

describe('streams', () => {
  it('declares, lists, shows info and deletes', async () => {
    const c = await client();
    const s = name('sdecl');
    const spec = await c.streams.declare({
      name: s,
      bindings: [`${s}.#`],
      maxMsgs: 1000,
      maxAgeMs: 3_600_000,
    });
    assert.equal(spec.name, s);
    assert.equal(spec.max_msgs, 1000);
    assert.equal(spec.max_age_ms, 3_600_000);
    await c.publish(`${s}.a`, 'x', { confirm: true });
    const info = await c.streams.info(s);
    assert.equal(info.first_seq, 1);
    assert.equal(info.last_seq, 1);
    assert.equal(info.messages, 1);
    assert.ok((await c.streams.list()).some((x) => x.name === s));
    await c.streams.delete(s);
    await assert.rejects(c.streams.info(s), NotFoundError);
  });

  it('reads from earliest, a sequence, a time, last and latest', async () => {
    const c = await client();
    const s = name('sread');
    await c.streams.declare({ name: s, bindings: [`${s}.#`] });
    for (let i = 1; i <= 3; i++) await c.publish(`${s}.e`, `m${i}`, { confirm: true });
    await sleep(30);
    const midpoint = new Date();
    await sleep(30);
    for (let i = 4; i <= 5; i++)
      await c.publish(`${s}.e`, `m${i}`, { confirm: true, headers: { i: String(i) } });

    const all = await c.streams.read(s, { from: 'earliest' });
    assert.deepEqual(
      all.messages.map((m) => [m.seq, m.string()]),
      [
        [1, 'm1'],
        [2, 'm2'],
        [3, 'm3'],
        [4, 'm4'],
        [5, 'm5'],
      ],
    );
    assert.equal(all.nextSeq, 6);
    assert.equal(all.firstSeq, 1);
    assert.equal(all.lastSeq, 5);
    assert.equal(all.messages[0]!.topic, `${s}.e`);
    assert.equal(all.messages[4]!.stream, s);
    assert.deepEqual(all.messages[4]!.headers, { i: '5' });

    const page = await c.streams.read(s, { from: { seq: 2 }, max: 2 });
    assert.deepEqual(
      page.messages.map((m) => m.seq),
      [2, 3],
    );
    assert.equal(page.nextSeq, 4);
    const byTime = await c.streams.read(s, { from: { time: midpoint } });
    assert.deepEqual(
      byTime.messages.map((m) => m.string()),
      ['m4', 'm5'],
    );
    const byMs = await c.streams.read(s, { from: { time: midpoint.getTime() } });
    assert.equal(byMs.messages.length, 2);
    const last = await c.streams.read(s, { from: 'last' });
    assert.deepEqual(
      last.messages.map((m) => m.seq),
      [5],
    );
    const latest = await c.streams.read(s, { from: 'latest' });
    assert.deepEqual(latest.messages, []);
    assert.equal(latest.nextSeq, 6);
  });

  it('keeps a durable reader position', async () => {
    const c = await client();
    const s = name('sreader');
    await c.streams.declare({ name: s, bindings: [`${s}.#`] });
    for (let i = 1; i <= 5; i++) await c.publish(`${s}.e`, `m${i}`, { confirm: true });
    assert.equal(await c.streams.readerPosition(s, 'r1'), undefined);
    // A reader that never saved a position starts at the earliest message (like a new durable consumer).
    const fresh = await c.streams.read(s, { reader: 'r0', max: 1 });
    assert.deepEqual(
      fresh.messages.map((m) => m.seq),
      [1],
    );
    assert.equal(await c.streams.readerPosition(s, 'r0'), 2);
    const first = await c.streams.read(s, { from: 'earliest', reader: 'r1', max: 2 });
    assert.deepEqual(
      first.messages.map((m) => m.seq),
      [1, 2],
    );
    assert.equal(await c.streams.readerPosition(s, 'r1'), 3);
    const second = await c.streams.read(s, { reader: 'r1', max: 2 });
    assert.deepEqual(
      second.messages.map((m) => m.seq),
      [3, 4],
    );
    await c.streams.commit(s, 'r1', 2);
    const c2 = await client();
    const third = await c2.streams.read(s, { reader: 'r1' });
    assert.deepEqual(
      third.messages.map((m) => m.seq),
      [2, 3, 4, 5],
    );
    assert.deepEqual((await c2.streams.info(s)).readers, { r0: 2, r1: 6 });
  });

  it('follows a stream live: replays from a position, then new messages, with their seq', async () => {
    const c = await client();
    const s = name('stail');
    await c.streams.declare({ name: s, bindings: [`${s}.#`] });
    for (let i = 1; i <= 3; i++) await c.publish(`${s}.e`, `m${i}`, { confirm: true });

    const fromTwo = c.streams.subscribe(s, { from: { seq: 2 }, reader: 'tail' });
    const latest = c.streams.subscribe(s);
    await Promise.all([fromTwo.ready(), latest.ready()]);
    assert.equal(latest.nextSeq, 4);
    const tailIt = fromTwo[Symbol.asyncIterator]();
    const latestIt = latest[Symbol.asyncIterator]();
    const replayed = await take(tailIt, 2);
    assert.deepEqual(
      replayed.map((m) => [m.seq, m.string()]),
      [
        [2, 'm2'],
        [3, 'm3'],
      ],
    );
    await c.publish(`${s}.e`, 'm4', { confirm: true });
    const live = await next(tailIt);
    assert.equal(live.seq, 4);
    const fromLatest: StreamMessage = await next(latestIt);
    assert.equal(fromLatest.seq, 4);
    assert.equal(fromTwo.lastSeq, 4);
    assert.equal(fromTwo.nextSeq, 5);
    await fromTwo.commit();
    assert.equal(await c.streams.readerPosition(s, 'tail'), 5);
    await fromTwo.stop();
    await latest.stop();
  });

  it('resumes a live tail after a reconnect without gaps or repeats', async () => {
    const c = await client({ reconnectBackoff: { initialMs: 20, maxMs: 50, jitter: 0 } });
    const p = await client();
    const s = name('sresume');
    await c.streams.declare({ name: s, bindings: [`${s}.#`] });
    const got: number[] = [];
    const tail = c.streams.subscribe(s, { from: 'earliest', callback: (m) => void got.push(m.seq) });
    await tail.ready();
    await p.publish(`${s}.e`, '1', { confirm: true });
    await eventually(() => got.length === 1, 'the first message');
    const disconnected = c.next('disconnect');
    const reconnected = c.next('reconnect');
    (c as unknown as { link: { drop(e: MessagingError): void } }).link.drop(
      new MessagingError('CONNECTION_CLOSED', 'test cut'),
    );
    await disconnected;
    await p.publish(`${s}.e`, '2', { confirm: true });
    await reconnected;
    await p.publish(`${s}.e`, '3', { confirm: true });
    await eventually(() => got.length >= 3, 'all three messages');
    await sleep(100);
    assert.deepEqual(got, [1, 2, 3]);
    await tail.stop();
  });

  it('answers NotFoundError for a stream that does not exist', async () => {
    const c = await client();
    const missing = name('nostream');
    await assert.rejects(c.streams.read(missing), NotFoundError);
    await assert.rejects(c.streams.subscribe(missing).ready(), NotFoundError);
  });
});
