/**
 * Binary min-heap of (key, value) pairs on typed arrays. The queues keep millions of these, so a pair costs
 * 12 bytes instead of an object per entry. Entries are never removed from the middle: callers validate the
 * top against their tables and drop stale pairs lazily ("lazy deletion"), and `retain` rebuilds the heap
 * when stale pairs pile up.
 */
export class PairHeap {
  private keys: Float64Array;
  private vals: Int32Array;
  private n = 0;

  /** Small start: a queue owns nine heaps and most queues are small. */
  constructor(capacity = 4) {
    this.keys = new Float64Array(capacity);
    this.vals = new Int32Array(capacity);
  }

  get size(): number {
    return this.n;
  }

  /** Key of the smallest pair; only meaningful when size > 0. */
  peekKey(): number {
    return this.keys[0] ?? Infinity;
  }

  peekVal(): number {
    return this.vals[0] ?? -1;
  }

  push(key: number, val: number): void {
    if (this.n === this.keys.length) this.resize(this.n * 2);
    let i = this.n++;
    // Sift up: ties broken by value so equal keys come out in a stable, deterministic order.
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pk = this.keys[p]!;
      if (pk < key || (pk === key && this.vals[p]! <= val)) break;
      this.keys[i] = pk;
      this.vals[i] = this.vals[p]!;
      i = p;
    }
    this.keys[i] = key;
    this.vals[i] = val;
  }

  /** Removes the smallest pair. */
  pop(): void {
    if (this.n === 0) return;
    const last = --this.n;
    if (last > 0) this.siftDown(0, this.keys[last]!, this.vals[last]!);
    if (this.keys.length > 1024 && this.n < this.keys.length >> 2) this.resize(this.keys.length >> 1);
  }

  clear(): void {
    this.n = 0;
    if (this.keys.length > 16) this.resize(16);
  }

  /** Keeps only pairs for which `keep` is true, in O(n). */
  retain(keep: (key: number, val: number) => boolean): void {
    let j = 0;
    for (let i = 0; i < this.n; i++) {
      const k = this.keys[i]!;
      const v = this.vals[i]!;
      if (keep(k, v)) {
        this.keys[j] = k;
        this.vals[j] = v;
        j++;
      }
    }
    this.n = j;
    for (let i = (j >> 1) - 1; i >= 0; i--) this.siftDown(i, this.keys[i]!, this.vals[i]!);
    if (this.keys.length > 1024 && this.n < this.keys.length >> 2) this.resize(Math.max(16, this.n * 2));
  }

  private siftDown(start: number, key: number, val: number): void {
    let i = start;
    const n = this.n;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      const r = c + 1;
      if (r < n) {
        const ck = this.keys[c]!;
        const rk = this.keys[r]!;
        if (rk < ck || (rk === ck && this.vals[r]! < this.vals[c]!)) c = r;
      }
      const ck = this.keys[c]!;
      if (key < ck || (key === ck && val <= this.vals[c]!)) break;
      this.keys[i] = ck;
      this.vals[i] = this.vals[c]!;
      i = c;
    }
    this.keys[i] = key;
    this.vals[i] = val;
  }

  private resize(capacity: number): void {
    const keys = new Float64Array(capacity);
    const vals = new Int32Array(capacity);
    keys.set(this.keys.subarray(0, this.n));
    vals.set(this.vals.subarray(0, this.n));
    this.keys = keys;
    this.vals = vals;
  }
}
