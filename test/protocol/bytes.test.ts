import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyBytes } from '../../src/protocol/index.ts';

describe('copyBytes', () => {
  it('returns plain Uint8Array copies that no later change of the source reaches', () => {
    const chunk = new Uint8Array(64 * 1024).map((_, i) => i & 0xff);
    const copies = Array.from({ length: 200 }, (_, i) => copyBytes(chunk.subarray(i * 300, i * 300 + 256)));
    chunk.fill(0);
    copies.forEach((c, i) => {
      assert.equal(c.constructor, Uint8Array);
      assert.equal(c.length, 256);
      assert.equal(c[0], (i * 300) & 0xff);
      assert.equal(c[255], (i * 300 + 255) & 0xff);
    });
  });

  it('keeps copies apart: writing one never changes another carved from the same slab', () => {
    const a = copyBytes(new Uint8Array([1, 2, 3]));
    const b = copyBytes(new Uint8Array([4, 5, 6]));
    a.fill(9);
    assert.deepEqual([...b], [4, 5, 6]);
    assert.deepEqual([...a], [9, 9, 9]);
  });

  it('copies large and empty ranges too', () => {
    const big = new Uint8Array(100_000).fill(7);
    const c = copyBytes(big);
    big[0] = 1;
    assert.equal(c.length, 100_000);
    assert.equal(c[0], 7);
    assert.equal(copyBytes(new Uint8Array(0)).length, 0);
  });
});
