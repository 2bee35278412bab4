/** Unit tests for the storage building blocks: checksum, heap, hash map, record codec. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeRecord, encodeHeader, encodeRecord, readHeader } from '../../src/storage/file/codec.ts';
import { crc32c } from '../../src/storage/file/crc32c.ts';
import { PairHeap } from '../../src/storage/internal/heap.ts';
import { NumMap } from '../../src/storage/internal/num-map.ts';
import type { Rec } from '../../src/storage/internal/records.ts';
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

describe('NumMap', () => {
  it('behaves like a Map under random sets and deletes, across growth and shrinking', () => {
    const r = rng(3);
    const map = new NumMap(4);
    const model = new Map<number, number>();
    for (let i = 0; i < 100_000; i++) {
      // Mostly sequential keys (like message keys), some large ones.
      const key = r() < 0.9 ? Math.floor(r() * 5000) : Math.floor(r() * 2 ** 52);
      if (r() < 0.6) {
        map.set(key, i);
        model.set(key, i);
      } else {
        assert.equal(map.delete(key), model.delete(key));
      }
      if (i % 1000 === 0) {
        assert.equal(map.size, model.size);
        for (const [k, v] of model) assert.equal(map.get(k), v);
      }
    }
    for (const k of [...model.keys()]) map.delete(k);
    assert.equal(map.size, 0);
    assert.equal(map.get(1), undefined);
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
