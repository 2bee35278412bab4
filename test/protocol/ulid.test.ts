import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  FrameParser,
  FrameType,
  UlidGenerator,
  encodeMsg,
  ulidFromString,
  ulidInto,
  ulidTime,
  ulidToString,
  type Frame,
} from '../../src/protocol/index.ts';

describe('message ids (ULID)', () => {
  it('round-trips through the 26-character text form and keeps the time', () => {
    const gen = new UlidGenerator();
    const id = gen.next(1_700_000_000_123);
    const text = ulidToString(id);
    assert.match(text, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.deepEqual(ulidFromString(text), id);
    assert.deepEqual(ulidFromString(text.toLowerCase()), id, 'lower case reads the same');
    assert.equal(ulidTime(id), 1_700_000_000_123);
  });

  it('spells any 128 bits as the base32 digits of the number, most significant first', () => {
    const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
    const reference = (id: Uint8Array): string => {
      let n = 0n;
      for (const b of id) n = (n << 8n) | BigInt(b);
      let text = '';
      for (let i = 0; i < 26; i++, n >>= 5n) text = alphabet[Number(n & 31n)]! + text;
      return text;
    };
    assert.equal(ulidToString(new Uint8Array(16)), '0'.repeat(26));
    assert.equal(ulidToString(new Uint8Array(16).fill(0xff)), '7' + 'Z'.repeat(25));
    for (let i = 0; i < 500; i++) {
      const id = globalThis.crypto.getRandomValues(new Uint8Array(16));
      const text = ulidToString(id);
      assert.equal(text, reference(id));
      assert.deepEqual(ulidFromString(text), id);
    }
  });

  it('is strictly increasing within one millisecond, as bytes and as text', () => {
    const gen = new UlidGenerator();
    let prev = ulidToString(gen.next(5));
    for (let i = 0; i < 10_000; i++) {
      const next = ulidToString(gen.next(5));
      assert.ok(next > prev, `${next} should sort after ${prev}`);
      prev = next;
    }
  });

  it("parses into a caller's buffer at an offset, leaving the bytes around it alone", () => {
    const id = new UlidGenerator().next(42);
    const out = new Uint8Array(20).fill(0xee);
    assert.equal(ulidInto(ulidToString(id), out, 2), true);
    assert.deepEqual(out.subarray(2, 18), id);
    assert.deepEqual([out[0], out[1], out[18], out[19]], [0xee, 0xee, 0xee, 0xee]);
    assert.equal(ulidInto('8ZZZZZZZZZZZZZZZZZZZZZZZZZ', out, 0), false, 'past 128 bits');
    assert.equal(ulidInto('short', out, 0), false);
  });

  it('draws a fresh random part for every millisecond, across refills of its random pool', () => {
    const gen = new UlidGenerator();
    const parts = new Set<string>();
    for (let ms = 1; ms <= 350; ms++) {
      const id = gen.next(1_700_000_000_000 + ms);
      assert.equal(ulidTime(id), 1_700_000_000_000 + ms);
      parts.add(Buffer.from(id.subarray(6)).toString('hex'));
    }
    assert.equal(parts.size, 350, 'a random part repeated');
  });

  it('rejects text that is not a ULID', () => {
    assert.equal(ulidFromString('not-an-id'), undefined);
    assert.equal(ulidFromString('8ZZZZZZZZZZZZZZZZZZZZZZZZZ'), undefined);
    assert.equal(ulidFromString('0000000000000000000000000U'), undefined);
    assert.equal(ulidFromString('0000000000000000000000000é'), undefined);
  });

  it('travels in MSG frames as 16 binary bytes', () => {
    const id = new UlidGenerator().next();
    const frames: Frame[] = [];
    new FrameParser(1 << 20, (f) => frames.push(f)).push(
      encodeMsg(3, 'a', new Uint8Array([1]), { msgId: id }),
    );
    const msg = frames[0]!;
    assert.ok(msg.type === FrameType.MSG);
    assert.deepEqual(msg.msgId, id);
    assert.deepEqual(Array.from(msg.payload), [1]);
  });
});
