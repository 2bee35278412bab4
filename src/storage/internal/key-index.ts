/**
 * Message key → body slot, as an open-addressing hash table that stores only the slot (an int32): the
 * key itself is read back from `BodyTable.key`, where it lives anyway. Half the bytes of a map that keeps
 * its own copy of every key (a float64 each), on the biggest per-message structure after the tables.
 *
 * Callers keep the body table and the index in step: a slot is `set` once its key is written into the
 * table, and `delete`d before the slot is released.
 */
import type { BodyTable } from './tables.ts';

const EMPTY = -1;
const TOMBSTONE = -2;

export class KeyIndex {
  private slots: Int32Array;
  private mask: number;
  private used = 0; // live + tombstones, drives rehashing
  private live = 0;

  constructor(
    private readonly bodies: BodyTable,
    capacity = 64,
  ) {
    let cap = 16;
    while (cap < capacity * 2) cap *= 2;
    this.slots = new Int32Array(cap).fill(EMPTY);
    this.mask = cap - 1;
  }

  get size(): number {
    return this.live;
  }

  get(key: number): number | undefined {
    const keys = this.bodies.key;
    let i = hash(key) & this.mask;
    for (;;) {
      const h = this.slots[i]!;
      if (h === EMPTY) return undefined;
      if (h >= 0 && keys[h] === key) return h;
      i = (i + 1) & this.mask;
    }
  }

  /** Maps `key` to body slot `h`, whose `BodyTable.key` must already be `key`. */
  set(key: number, h: number): void {
    const keys = this.bodies.key;
    let i = hash(key) & this.mask;
    let reuse = -1;
    for (;;) {
      const s = this.slots[i]!;
      if (s === EMPTY) break;
      if (s === TOMBSTONE) {
        if (reuse < 0) reuse = i;
      } else if (keys[s] === key) {
        this.slots[i] = h;
        return;
      }
      i = (i + 1) & this.mask;
    }
    if (reuse >= 0) i = reuse;
    else this.used++;
    this.slots[i] = h;
    this.live++;
    // Keep the load (tombstones included) under 3/4 so probes stay short.
    if (this.used * 4 > this.slots.length * 3)
      this.rehash(this.live * 2 > this.slots.length / 2 ? this.slots.length * 2 : this.slots.length);
  }

  /** Forgets `key`; its slot must still hold it in `BodyTable.key`. */
  delete(key: number): boolean {
    const keys = this.bodies.key;
    let i = hash(key) & this.mask;
    for (;;) {
      const h = this.slots[i]!;
      if (h === EMPTY) return false;
      if (h >= 0 && keys[h] === key) {
        this.slots[i] = TOMBSTONE;
        this.live--;
        if (this.slots.length > 1024 && this.live * 8 < this.slots.length) this.rehash(this.slots.length / 2);
        return true;
      }
      i = (i + 1) & this.mask;
    }
  }

  private rehash(capacity: number): void {
    const old = this.slots;
    const keys = this.bodies.key;
    this.slots = new Int32Array(capacity).fill(EMPTY);
    this.mask = capacity - 1;
    this.used = 0;
    this.live = 0;
    for (let i = 0; i < old.length; i++) {
      const h = old[i]!;
      if (h < 0) continue;
      let j = hash(keys[h]!) & this.mask;
      while (this.slots[j] !== EMPTY) j = (j + 1) & this.mask;
      this.slots[j] = h;
      this.used++;
      this.live++;
    }
  }
}

function hash(key: number): number {
  // Mix the low and high 32-bit halves; keys are mostly sequential, so multiply to spread them.
  const lo = key >>> 0;
  const hi = (key / 4294967296) >>> 0;
  return Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> 0;
}
