/** Unit tests for the storage building blocks: checksum, heap, key index, record codec, body cache. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeRecord, encodeHeader, encodeRecord, readHeader } from '../../src/storage/file/codec.ts';
import { BodyCache } from '../../src/storage/file/cache.ts';
import { crc32c } from '../../src/storage/file/crc32c.ts';
import { PairHeap } from '../../src/storage/internal/heap.ts';
import { KeyIndex } from '../../src/storage/internal/key-index.ts';
import { BodyTable } from '../../src/storage/internal/tables.ts';
import type { Rec } from '../../src/storage/internal/records.ts';
import type { Message } from '../../src/storage/types.ts';
import { seededRandom } from '../helpers/random.ts';

const rng = seededRandom;

describe('crc32c', () => {
  it('matches the RFC 3720 test vectors', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
    assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
    assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
    assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  });

  it('agrees with the bit-by-bit definition at every alignment and length', () => {
    const slow = (data: Uint8Array, start: number, end: number): number => {
      let c = 0xffffffff;
      for (let i = start; i < end; i++) {
        c ^= data[i]!;
        for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      }
      return ~c >>> 0;
    };
    const r = rng(3);
    const data = Uint8Array.from({ length: 400 }, () => Math.floor(r() * 256));
    for (let start = 0; start < 8; start++)
      for (const len of [0, 1, 7, 8, 15, 16, 17, 63, 64, 65, 71, 72, 79, 80, 81, 100, 255, 333])
        assert.equal(
          crc32c(data, start, start + len),
          slow(data, start, start + len),
          `at ${start}, ${len} bytes`,
        );
  });

  it('is the same whether computed at once, in pieces, or over a sub-range', () => {
    const r = rng(1);
    const data = Uint8Array.from({ length: 1000 }, () => Math.floor(r() * 256));
    const whole = crc32c(data);
    assert.equal(crc32c(data, 300, 1000, crc32c(data, 0, 300)), whole);
    const padded = new Uint8Array(1010);
    padded.set(data, 5);
    assert.equal(crc32c(padded, 5, 1005), whole);
  });
});

describe('PairHeap', () => {
  it('pops pairs in (key, value) order under random pushes, pops and retains', () => {
    const r = rng(2);
    const heap = new PairHeap(2);
    let model: [number, number][] = [];
    for (let i = 0; i < 20_000; i++) {
      const op = r();
      if (op < 0.55) {
        const k = Math.floor(r() * 500);
        const v = Math.floor(r() * 1000);
        heap.push(k, v);
        model.push([k, v]);
      } else if (op < 0.99) {
        model.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        const top = model.shift();
        if (top) {
          assert.deepEqual([heap.peekKey(), heap.peekVal()], top);
          heap.pop();
        } else assert.equal(heap.size, 0);
      } else {
        heap.retain((k) => k % 3 !== 0);
        model = model.filter(([k]) => k % 3 !== 0);
      }
      assert.equal(heap.size, model.length);
    }
  });
});

describe('KeyIndex', () => {
  it('behaves like a Map under random inserts and deletes, across growth and shrinking', () => {
    const r = rng(3);
    const bodies = new BodyTable();
    const index = new KeyIndex(bodies, 4);
    const model = new Map<number, number>();
    for (let i = 0; i < 100_000; i++) {
      // Mostly sequential keys (like message keys), some large ones.
      const key = r() < 0.9 ? Math.floor(r() * 5000) : Math.floor(r() * 2 ** 52);
      const h = model.get(key);
      if (h === undefined && r() < 0.6) {
        // As the state does: the slot holds its key before the index learns it.
        const slot = bodies.alloc();
        bodies.key[slot] = key;
        index.set(key, slot);
        model.set(key, slot);
      } else if (h !== undefined) {
        assert.equal(index.delete(key), true);
        bodies.release(h);
        model.delete(key);
      } else assert.equal(index.delete(key), false);
      if (i % 1000 === 0) {
        assert.equal(index.size, model.size);
        for (const [k, v] of model) assert.equal(index.get(k), v);
      }
    }
    for (const [k, h] of [...model]) {
      index.delete(k);
      bodies.release(h);
    }
    assert.equal(index.size, 0);
    assert.equal(index.get(1), undefined);
  });
});

describe('record codec', () => {
  const msg: Rec = {
    t: 'msg',
    key: 42,
    head: { id: 'x', topic: 'a.b', headers: { h: 'v' }, priority: 3, timestamp: 1 },
    payload: Uint8Array.from([1, 2, 3, 0, 255]),
    queues: [{ q: 'q', o: 42, dc: 0, nb: 0, ex: 0 }],
    streams: [{ s: 's', seq: 7 }],
  };
  const ack: Rec = { t: 'ack', q: 'q', key: 42 };

  it('round-trips records, several in one buffer', () => {
    const buf = Buffer.concat([encodeRecord(msg), encodeRecord(ack)]);
    const a = decodeRecord(buf, 0);
    assert.ok(a.ok);
    assert.deepEqual(a.rec, msg);
    assert.ok(!(a.rec.t === 'msg' && Buffer.isBuffer(a.rec.payload)), 'payload is a plain Uint8Array');
    const b = decodeRecord(buf, a.len);
    assert.ok(b.ok);
    assert.deepEqual(b.rec, ack);
    assert.equal(a.len + b.len, buf.length);
  });

  it('round-trips every message field, dead-letter facts, carried marks and non-ASCII names', () => {
    const recs: Rec[] = [
      {
        t: 'msg',
        key: 2 ** 40 + 3,
        head: {
          id: '01JABCDEFGHJKMNPQRSTVWXYZ0',
          topic: 'ordérs.ü',
          headers: {},
          priority: 0,
          timestamp: 1_700_000_000_123,
          ttl_ms: 5000,
          deliver_at: 1_700_000_001_000,
          correlation_id: 'c',
          reply_to: 'inbox',
          type: 'command',
          trace_id: '00-1-2-01',
        },
        payload: new Uint8Array(0),
        queues: [
          { q: 'q1', o: 7, dc: 3, nb: 1_700_000_001_000, ex: 1_700_000_005_123 },
          { q: 'quëue', o: 9, dc: 5, nb: 0, ex: 0, dead: { reason: 'rejected', at: 12, error: 'nö' } },
        ],
        streams: [
          { s: 's1', seq: 1 },
          { s: 'strëam', seq: 2 ** 33 },
        ],
        carried: true,
      },
      // Too wide for the binary head: written with the JSON head instead.
      {
        t: 'msg',
        key: 1,
        head: { id: 'i'.repeat(70_000), topic: 't', headers: { a: 'b' }, priority: 2, timestamp: 1 },
        payload: Uint8Array.from([9]),
        queues: [{ q: 'q', o: 1, dc: 0, nb: 0, ex: 0 }],
        streams: [],
      },
      { t: 'ack', q: 'quëue', key: 2 ** 40 + 3 },
      { t: 'requeue', q: 'q', key: 5, dc: 1, nb: 0 },
    ];
    for (const rec of recs) {
      const r = decodeRecord(encodeRecord(rec), 0);
      assert.ok(r.ok);
      assert.deepEqual(r.rec, rec);
    }
  });

  it('reports every truncation as torn and every flipped byte as corrupt', () => {
    const buf = encodeRecord(msg);
    for (let cut = 0; cut < buf.length; cut++) {
      const r = decodeRecord(buf.subarray(0, cut), 0);
      assert.ok(!r.ok && r.why === 'torn', `cut at ${cut}`);
    }
    for (let i = 4; i < buf.length; i++) {
      const bad = Buffer.from(buf);
      bad[i]! ^= 0x10;
      const r = decodeRecord(bad, 0);
      assert.ok(!r.ok, `flip at ${i}`);
    }
  });

  it('checks segment headers', () => {
    const h = encodeHeader(12);
    assert.equal(readHeader(h), 12);
    h[9]! ^= 1;
    assert.equal(readHeader(h), -1);
    assert.equal(readHeader(new Uint8Array(3)), -1);
  });
});

describe('BodyCache', () => {
  const msg = (n: number): Message => ({
    id: String(n),
    topic: 't',
    headers: {},
    payload: new Uint8Array(744), // 1000 bytes with the per-entry overhead
    priority: 2,
    timestamp: n,
  });

  it('keeps the oldest messages of a backlog and leaves the newest out once written', () => {
    let written = 0;
    const cache = new BodyCache(10_000, () => written);
    for (let h = 0; h < 20; h++) cache.put(h, h, msg(h), h + 1);
    // Nothing was written yet: every entry is pinned, so all are still there.
    for (let h = 0; h < 20; h++) assert.ok(cache.get(h, h), `pinned ${h}`);
    written = 20;
    cache.put(20, 20, msg(20), 21);
    // The backlog's head stays; the spilled newer ones went once on disk.
    for (let h = 0; h < 10; h++) assert.ok(cache.get(h, h), `head ${h}`);
    assert.equal(cache.get(15, 15), undefined);
  });

  it('drops a delivered message only once its record is on disk', () => {
    let written = 0;
    const cache = new BodyCache(100_000, () => written);
    cache.put(1, 1, msg(1), 1);
    assert.ok(cache.get(1, 1, true));
    assert.ok(cache.get(1, 1), 'pinned: still cached');
    written = 1;
    assert.ok(cache.get(1, 1, true));
    assert.equal(cache.get(1, 1), undefined);
  });

  it('answers only for the key a slot was put with, at any slot number', () => {
    const cache = new BodyCache(1_000_000, () => Infinity);
    cache.put(5000, 7, msg(7)); // past the initial per-slot tables
    assert.equal(cache.get(5000, 7)?.id, '7');
    assert.equal(cache.get(5000, 8), undefined, 'the slot now holds another key');
    cache.put(5000, 8, msg(8));
    assert.equal(cache.get(5000, 7), undefined);
    assert.equal(cache.get(5000, 8)?.id, '8');
    cache.delete(5000);
    assert.equal(cache.get(5000, 8), undefined);
  });

  it('finds entries across pages of slots, also after a page emptied and filled again', () => {
    const cache = new BodyCache(10_000_000, () => Infinity);
    const slots = [0, 1023, 1024, 5000, 70_000];
    for (const h of slots) cache.add(h, h, msg(h));
    for (const h of slots) assert.equal(cache.get(h, h)?.id, String(h));
    cache.delete(1024);
    cache.delete(0);
    cache.delete(1023);
    assert.equal(cache.get(1024, 1024), undefined);
    assert.equal(cache.get(0, 0), undefined);
    cache.add(1023, 9, msg(9));
    assert.equal(cache.get(1023, 9)?.id, '9');
    assert.equal(cache.get(5000, 5000)?.id, '5000');
    assert.equal(cache.get(70_000, 70_000)?.id, '70000');
  });

  it('lets idle entries give way so new messages are cached again', () => {
    const cache = new BodyCache(10_000, () => Infinity);
    for (let h = 0; h < 10; h++) cache.put(h, h, msg(h));
    // Four budgets of newer messages later, the never-read first ten are idle.
    for (let h = 10; h < 60; h++) cache.put(h, h, msg(h));
    assert.equal(cache.get(0, 0), undefined);
    assert.ok(cache.get(59, 59));
  });
});
