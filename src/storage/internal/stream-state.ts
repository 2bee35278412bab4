/**
 * A stream's index: sequence → message slot in chunks of 1024, so lookups are O(1), a trim frees whole
 * chunks, and replay may fill sequences out of order (compaction rewrites old messages after newer ones).
 */
import type { StreamSpec } from '../types.ts';

const CHUNK_BITS = 10;
const CHUNK = 1 << CHUNK_BITS;

export class StreamState {
  private chunks = new Map<number, Int32Array>();
  /** First retained sequence (last + 1 when empty). */
  first = 1;
  /** Last sequence ever assigned. */
  last = 0;
  count = 0;
  bytes = 0;
  readonly readers = new Map<string, number>();

  constructor(public spec: StreamSpec) {}

  get(seq: number): number {
    const c = this.chunks.get(Math.floor(seq / CHUNK));
    return c ? c[seq % CHUNK]! : -1;
  }

  /** Stores `h` at `seq`; returns false when the slot was already taken. */
  set(seq: number, h: number): boolean {
    const ci = Math.floor(seq / CHUNK);
    let c = this.chunks.get(ci);
    if (!c) {
      c = new Int32Array(CHUNK).fill(-1);
      this.chunks.set(ci, c);
    }
    if (c[seq % CHUNK] !== -1) return false;
    c[seq % CHUNK] = h;
    this.count++;
    return true;
  }

  /** Clears `seq`; returns the slot it held or -1. */
  clear(seq: number): number {
    const ci = Math.floor(seq / CHUNK);
    const c = this.chunks.get(ci);
    if (!c) return -1;
    const h = c[seq % CHUNK]!;
    if (h === -1) return -1;
    c[seq % CHUNK] = -1;
    this.count--;
    return h;
  }

  /** Drops chunks wholly below `seq` (they are empty by then). */
  dropChunksBelow(seq: number): void {
    const limit = Math.floor(seq / CHUNK);
    for (const ci of this.chunks.keys()) if (ci < limit) this.chunks.delete(ci);
  }

  /** Next occupied sequence ≥ seq, or last + 1. Skips empty chunks in one step. */
  nextPresent(seq: number): number {
    let s = Math.max(seq, this.first);
    while (s <= this.last) {
      const c = this.chunks.get(Math.floor(s / CHUNK));
      if (!c) {
        s = (Math.floor(s / CHUNK) + 1) * CHUNK;
        continue;
      }
      if (c[s % CHUNK] !== -1) return s;
      s++;
    }
    return this.last + 1;
  }

  /** Every occupied (seq, slot), ascending. */
  *entries(): Generator<[number, number]> {
    for (const ci of [...this.chunks.keys()].sort((a, b) => a - b)) {
      const c = this.chunks.get(ci);
      if (!c) continue;
      for (let i = 0; i < CHUNK; i++) if (c[i] !== -1) yield [ci * CHUNK + i, c[i]!];
    }
  }
}
