import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MessagingError } from '../../src/protocol/errors.ts';
import { PubSub, type PubSubMessage, type Subscriber, type Subscription } from '../../src/core/pubsub.ts';

class Collector implements Subscriber {
  static nextId = 1;
  readonly id = Collector.nextId++;
  readonly received: PubSubMessage[] = [];
  constructor(readonly name = `s${Collector.nextId}`) {}
  deliver(message: PubSubMessage): void {
    this.received.push(message);
  }
  topics(): string[] {
    return this.received.map((m) => m.topic);
  }
}

class Thrower implements Subscriber {
  readonly id = Collector.nextId++;
  calls = 0;
  deliver(): void {
    this.calls++;
    throw new Error('socket gone');
  }
}

function msg(topic: string, reply = ''): PubSubMessage {
  return { topic, reply, meta: undefined, payload: new Uint8Array([1, 2, 3]) };
}

for (const cacheSize of [0, 1024]) {
  describe(`PubSub (cacheSize ${cacheSize})`, () => {
    it('fans out to every matching subscription, the same message object to each', () => {
      const ps = new PubSub({ cacheSize });
      const a = new Collector();
      const b = new Collector();
      const c = new Collector();
      const d = new Collector();
      ps.subscribe('orders.*', a);
      ps.subscribe('orders.#', b);
      ps.subscribe('#', c);
      ps.subscribe('invoices.*', d);
      const m = msg('orders.created');
      assert.equal(ps.publish(m), 3);
      assert.strictEqual(a.received[0], m);
      assert.strictEqual(b.received[0], m);
      assert.strictEqual(c.received[0], m);
      assert.equal(d.received.length, 0);
      assert.equal(ps.publish(msg('orders')), 2);
      assert.deepEqual(b.topics(), ['orders.created', 'orders']);
      assert.equal(ps.publish(msg('nobody.cares')), 1);
      assert.equal(ps.messagesIn, 3);
      assert.equal(ps.deliveries, 6);
      assert.equal(ps.dropped, 0);
    });

    it('one subscriber with two matching patterns gets two copies', () => {
      const ps = new PubSub({ cacheSize });
      const a = new Collector();
      ps.subscribe('a.*', a);
      ps.subscribe('a.#', a);
      assert.equal(ps.publish(msg('a.b')), 2);
      assert.equal(a.received.length, 2);
    });

    it('splits a queue group evenly: 3 members, 300 messages, 100 each', () => {
      const ps = new PubSub({ cacheSize });
      const members = [new Collector(), new Collector(), new Collector()];
      for (const m of members) ps.subscribe('jobs.*', m, 'workers');
      for (let i = 0; i < 300; i++) assert.equal(ps.publish(msg(`jobs.${i % 7}`)), 1);
      assert.deepEqual(
        members.map((m) => m.received.length),
        [100, 100, 100],
      );
    });

    it('treats the same group name on different patterns as one group', () => {
      const ps = new PubSub({ cacheSize });
      const w1 = new Collector();
      const w2 = new Collector();
      ps.subscribe('orders.*', w1, 'workers');
      ps.subscribe('orders.#', w2, 'workers');
      for (let i = 0; i < 10; i++) assert.equal(ps.publish(msg('orders.created')), 1);
      assert.equal(w1.received.length + w2.received.length, 10);
      assert.equal(w1.received.length, 5);
      // Only w2 matches `orders`: every such message goes to it.
      for (let i = 0; i < 4; i++) assert.equal(ps.publish(msg('orders')), 1);
      assert.equal(w2.received.length, 9);
    });

    it('mixes plain subscribers and several groups', () => {
      const ps = new PubSub({ cacheSize });
      const plain1 = new Collector();
      const plain2 = new Collector();
      const g1 = [new Collector(), new Collector()];
      const g2 = [new Collector(), new Collector(), new Collector(), new Collector()];
      ps.subscribe('metrics.#', plain1);
      ps.subscribe('metrics.cpu', plain2);
      for (const m of g1) ps.subscribe('metrics.*', m, 'g1');
      for (const m of g2) ps.subscribe('#', m, 'g2');
      for (let i = 0; i < 40; i++) assert.equal(ps.publish(msg('metrics.cpu')), 4);
      assert.equal(plain1.received.length, 40);
      assert.equal(plain2.received.length, 40);
      assert.deepEqual(
        g1.map((m) => m.received.length),
        [20, 20],
      );
      assert.deepEqual(
        g2.map((m) => m.received.length),
        [10, 10, 10, 10],
      );
      assert.equal(ps.deliveries, 160);
    });

    it('request goes to exactly one responder among all candidates, in turn', () => {
      const ps = new PubSub({ cacheSize });
      const plain = new Collector();
      const grouped = [new Collector(), new Collector()];
      const other = new Collector();
      ps.subscribe('svc.echo', plain);
      for (const g of grouped) ps.subscribe('svc.*', g, 'echoers');
      ps.subscribe('svc.other', other);
      for (let i = 0; i < 30; i++) assert.equal(ps.request(msg('svc.echo', '_INBOX.1')), 1);
      const counts = [plain, ...grouped].map((c) => c.received.length);
      assert.deepEqual(counts, [10, 10, 10]);
      assert.equal(other.received.length, 0);
      assert.equal(ps.deliveries, 30);
    });

    it('request with nobody listening returns 0 and delivers nothing', () => {
      const ps = new PubSub({ cacheSize });
      const a = new Collector();
      ps.subscribe('x.y', a);
      assert.equal(ps.request(msg('svc.none', '_INBOX.1')), 0);
      assert.equal(a.received.length, 0);
      assert.equal(ps.messagesIn, 1);
      assert.equal(ps.deliveries, 0);
    });

    it('a subscriber that throws does not stop delivery to the others', () => {
      const ps = new PubSub({ cacheSize });
      const before = new Collector();
      const bad = new Thrower();
      const after = new Collector();
      ps.subscribe('t', before);
      ps.subscribe('t', bad);
      ps.subscribe('t', after);
      assert.equal(ps.publish(msg('t')), 2);
      assert.equal(before.received.length, 1);
      assert.equal(after.received.length, 1);
      assert.equal(bad.calls, 1);
      assert.equal(ps.dropped, 1);
      assert.equal(ps.deliveries, 2);
    });

    it('a throwing group member or responder hands over to the next one', () => {
      const ps = new PubSub({ cacheSize });
      const bad = new Thrower();
      const good = new Collector();
      ps.subscribe('q', bad, 'g');
      ps.subscribe('q', good, 'g');
      for (let i = 0; i < 6; i++) assert.equal(ps.publish(msg('q')), 1);
      assert.equal(good.received.length, 6);
      for (let i = 0; i < 4; i++) assert.equal(ps.request(msg('q', 'inbox')), 1);
      assert.equal(good.received.length, 10);
      assert.ok(ps.dropped > 0);
      const onlyBad = new PubSub({ cacheSize });
      onlyBad.subscribe('q', new Thrower());
      assert.equal(onlyBad.request(msg('q', 'inbox')), 0);
      assert.equal(onlyBad.dropped, 1);
    });

    it('unsubscribe stops delivery, also for a topic answered from the cache', () => {
      const ps = new PubSub({ cacheSize });
      const a = new Collector();
      const b = new Collector();
      const sa = ps.subscribe('news.*', a);
      ps.subscribe('news.#', b);
      assert.equal(ps.publish(msg('news.today')), 2);
      assert.equal(sa.unsubscribe(), true);
      assert.equal(sa.active, false);
      assert.equal(sa.unsubscribe(), false);
      assert.equal(ps.publish(msg('news.today')), 1);
      assert.equal(a.received.length, 1);
      assert.equal(ps.size, 1);
    });

    it('a subscription added after a cached match is delivered to', () => {
      const ps = new PubSub({ cacheSize });
      const early = new Collector();
      ps.subscribe('a.b', early);
      assert.equal(ps.publish(msg('a.b')), 1);
      assert.equal(ps.publish(msg('a.b')), 1);
      const late = new Collector();
      ps.subscribe('a.*', late, 'late-group');
      assert.equal(ps.publish(msg('a.b')), 2);
      assert.equal(late.received.length, 1);
      if (cacheSize > 0) assert.ok(ps.cacheHits > 0);
      else assert.equal(ps.cacheHits, 0);
    });

    it('auto-unsubscribes after max messages (NATS UNSUB sid max)', () => {
      const ps = new PubSub({ cacheSize });
      const a = new Collector();
      const keep = new Collector();
      const sub = ps.subscribe('tick', a);
      ps.subscribe('tick', keep);
      sub.autoUnsubscribe(3);
      assert.equal(sub.max, 3);
      for (let i = 0; i < 5; i++) ps.publish(msg('tick'));
      assert.equal(a.received.length, 3);
      assert.equal(sub.delivered, 3);
      assert.equal(sub.active, false);
      assert.equal(keep.received.length, 5);
      assert.equal(ps.size, 1);

      // A limit at or below what was already delivered unsubscribes at once.
      const b = new Collector();
      const sb = ps.subscribe('tick', b);
      ps.publish(msg('tick'));
      ps.publish(msg('tick'));
      sb.autoUnsubscribe(2);
      assert.equal(sb.active, false);
      assert.equal(b.received.length, 2);

      // Queue-group members count too, and the group keeps working with whoever is left.
      const g1 = new Collector();
      const g2 = new Collector();
      ps.subscribe('job', g1, 'w').autoUnsubscribe(1);
      ps.subscribe('job', g2, 'w');
      for (let i = 0; i < 5; i++) assert.equal(ps.publish(msg('job')), 1);
      assert.equal(g1.received.length, 1);
      assert.equal(g2.received.length, 4);

      assert.throws(
        () => ps.subscribe('x', new Collector()).autoUnsubscribe(0),
        (err: unknown) => err instanceof MessagingError && err.code === 'BAD_REQUEST',
      );
    });

    it('subscribers may (un)subscribe from inside deliver without disturbing the publish', () => {
      const ps = new PubSub({ cacheSize });
      const victim = new Collector();
      const late = new Collector();
      const victimSub: { current?: Subscription } = {};
      const killer: Subscriber = {
        id: 999,
        deliver: () => {
          victimSub.current?.unsubscribe();
          ps.subscribe('r', late);
        },
      };
      ps.subscribe('r', killer);
      victimSub.current = ps.subscribe('r', victim);
      assert.equal(ps.publish(msg('r')), 1, 'the victim left before its turn');
      assert.equal(victim.received.length, 0);
      assert.equal(late.received.length, 0, 'joined after the message was routed');
      ps.publish(msg('r'));
      assert.equal(late.received.length, 1);
    });

    it('rejects invalid patterns, topics and queue groups', () => {
      const ps = new PubSub({ cacheSize });
      const isCode = (code: string) => (err: unknown) => err instanceof MessagingError && err.code === code;
      assert.throws(() => ps.subscribe('ord*', new Collector()), isCode('INVALID_PATTERN'));
      assert.throws(() => ps.subscribe('a', new Collector(), ''), isCode('BAD_REQUEST'));
      assert.throws(() => ps.subscribe('a', new Collector(), 'my group'), isCode('BAD_REQUEST'));
      assert.throws(() => ps.subscribe('a..b', new Collector(), 'g'), isCode('INVALID_PATTERN'));
      assert.equal(ps.size, 0);
      assert.throws(() => ps.publish(msg('a.*')), isCode('INVALID_TOPIC'));
      assert.throws(() => ps.request(msg('')), isCode('INVALID_TOPIC'));
    });
  });
}
