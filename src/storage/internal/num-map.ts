/**
 * Open-addressing hash map from a non-negative integer key (< 2^53) to an int32 value, on typed arrays.
 * Replay resolves every record's message key through it, and a `Map<number, number>` would cost ~3× the
 * bytes per stored message.
 */
const EMPTY = -1;
const TOMBSTONE = -2;

export class NumMap {
  private keys: Float64Array;
  private vals: Int32Array;
  private mask: number;
  private used = 0; // live + tombstones, drives rehashing
  private live = 0;

  constructor(capacity = 64) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.keys = new Float64Array(cap).fill(EMPTY);
    this.vals = new Int32Array(cap);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.live;
  }

  get(key: number): number | undefined {
    let i = hash(key) & this.mask;
    for (;;) {
      const k = this.keys[i]!;
      if (k === key) return this.vals[i];
      if (k === EMPTY) return undefined;
      i = (i + 1) & this.mask;
    }
  }

  set(key: number, val: number): void {
    let i = hash(key) & this.mask;
    let reuse = -1;
    for (;;) {
      const k = this.keys[i]!;
      if (k === key) {
        this.vals[i] = val;
        return;
      }
      if (k === TOMBSTONE && reuse < 0) reuse = i;
      if (k === EMPTY) break;
      i = (i + 1) & this.mask;
    }
    if (reuse >= 0) i = reuse;
    else this.used++;
    this.keys[i] = key;
    this.vals[i] = val;
    this.live++;
    // Keep the load (tombstones included) under 3/4 so probes stay short.
    if (this.used * 4 > this.keys.length * 3)
      this.rehash(this.live * 2 > this.keys.length / 2 ? this.keys.length * 2 : this.keys.length);
  }

  delete(key: number): boolean {
    let i = hash(key) & this.mask;
    for (;;) {
      const k = this.keys[i]!;
      if (k === key) {
        this.keys[i] = TOMBSTONE;
        this.live--;
        if (this.keys.length > 1024 && this.live * 8 < this.keys.length) this.rehash(this.keys.length / 2);
        return true;
      }
      if (k === EMPTY) return false;
      i = (i + 1) & this.mask;
    }
  }

  clear(): void {
    this.keys = new Float64Array(16).fill(EMPTY);
    this.vals = new Int32Array(16);
    this.mask = 15;
    this.used = 0;
    this.live = 0;
  }

  private rehash(capacity: number): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    this.keys = new Float64Array(capacity).fill(EMPTY);
    this.vals = new Int32Array(capacity);
    this.mask = capacity - 1;
    this.used = 0;
    this.live = 0;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i]!;
      if (k >= 0) this.set(k, oldVals[i]!);
    }
  }
}

function hash(key: number): number {
  // Mix the low and high 32-bit halves; keys are mostly sequential, so multiply to spread them.
  const lo = key >>> 0;
  const hi = (key / 4294967296) >>> 0;
  return Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> 0;
}
