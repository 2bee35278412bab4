/**
 * Struct-of-arrays tables for stored messages ("bodies") and their per-queue entries. The file engine
 * must stay near 100 bytes of RAM per stored message, which rules out an object per message: every field
 * lives in a typed array indexed by a slot number, and freed slots are reused through a free list.
 */

function grow<T extends Float64Array | Int32Array | Uint32Array | Uint16Array | Uint8Array>(
  a: T,
  n: number,
): T {
  const b = new (a.constructor as new (n: number) => T)(n);
  b.set(a);
  return b;
}

/** One row per stored message, shared by all the queues and streams that hold it. */
export class BodyTable {
  /** Message key: unique, increasing in append order; the identity used by journal records. */
  key = new Float64Array(0);
  /** Message timestamp (ms), for age, TTL and stream time lookups. */
  ts = new Float64Array(0);
  /**
   * `messageSize`, for stream byte retention: kept only for messages in a stream (through `sizeOf` and
   * `setSize`), and allocated once the first one arrives, so queue-only stores do not pay for it.
   */
  private size = new Uint32Array(0);
  /** Queue entries (dead ones included) + stream slots holding it; freed at zero. */
  refs = new Uint32Array(0);
  /** Head of the list of this message's queue entries (EntryTable.next), -1 when none. */
  firstEntry = new Int32Array(0);
  /** Where the file engine's record lives; unused by the memory engine. */
  seg = new Uint32Array(0);
  off = new Uint32Array(0);
  len = new Uint32Array(0);

  private free: number[] = [];
  private top = 0;
  count = 0;

  alloc(): number {
    const h = this.free.pop() ?? this.top++;
    if (h >= this.key.length) this.resize(Math.max(64, Math.ceil(this.key.length * 1.5)));
    this.refs[h] = 0;
    this.firstEntry[h] = -1;
    this.count++;
    return h;
  }

  release(h: number): void {
    this.key[h] = -1;
    this.count--;
    this.free.push(h);
  }

  sizeOf(h: number): number {
    return this.size[h] ?? 0;
  }

  setSize(h: number, bytes: number): void {
    if (h >= this.size.length) this.size = grow(this.size, this.key.length);
    this.size[h] = bytes;
  }

  /** Upper bound of slot numbers in use, for full scans. */
  get limit(): number {
    return this.top;
  }

  isLive(h: number): boolean {
    return h >= 0 && h < this.top && this.key[h]! >= 0;
  }

  private resize(n: number): void {
    this.key = grow(this.key, n);
    this.ts = grow(this.ts, n);
    if (this.size.length) this.size = grow(this.size, n);
    this.refs = grow(this.refs, n);
    this.firstEntry = grow(this.firstEntry, n);
    this.seg = grow(this.seg, n);
    this.off = grow(this.off, n);
    this.len = grow(this.len, n);
  }
}

export const FREE = 0;
export const READY = 1;
export const DELAYED = 2;
export const IN_FLIGHT = 3;
export const DEAD = 4;

/** One row per (message, queue). */
export class EntryTable {
  /**
   * FIFO position within the queue where it is not the message key (a dead-letter replay gives a fresh
   * one): rare, so kept aside rather than as a float64 column on every entry. See `State.orderOf`.
   */
  readonly reordered = new Map<number, number>();
  body = new Int32Array(0);
  /** Next entry of the same body (linked list from BodyTable.firstEntry). */
  next = new Int32Array(0);
  queue = new Int32Array(0);
  prio = new Uint8Array(0);
  state = new Uint8Array(0);
  /** Deliveries so far. */
  dc = new Uint16Array(0);
  /**
   * Not deliverable before (ms; 0 = now) and expires at (ms; 0 = never), through `notBeforeOf`/`expiresAtOf`
   * and their setters. Each column is allocated only once some entry needs a non-zero time: a store of
   * messages without delays or TTLs then saves 16 bytes per entry.
   */
  private notBefore = new Float64Array(0);
  private expiresAt = new Float64Array(0);

  private free: number[] = [];
  private top = 0;

  alloc(): number {
    const s = this.free.pop() ?? this.top++;
    if (s >= this.body.length) this.resize(Math.max(64, Math.ceil(this.body.length * 1.5)));
    return s;
  }

  release(s: number): void {
    this.state[s] = FREE;
    this.queue[s] = -1;
    if (this.reordered.size) this.reordered.delete(s);
    this.free.push(s);
  }

  get limit(): number {
    return this.top;
  }

  notBeforeOf(s: number): number {
    return this.notBefore[s] ?? 0;
  }

  expiresAtOf(s: number): number {
    return this.expiresAt[s] ?? 0;
  }

  setNotBefore(s: number, at: number): void {
    if (s < this.notBefore.length) this.notBefore[s] = at;
    else if (at !== 0) {
      this.notBefore = grow(this.notBefore, this.body.length);
      this.notBefore[s] = at;
    }
  }

  setExpiresAt(s: number, at: number): void {
    if (s < this.expiresAt.length) this.expiresAt[s] = at;
    else if (at !== 0) {
      this.expiresAt = grow(this.expiresAt, this.body.length);
      this.expiresAt[s] = at;
    }
  }

  private resize(n: number): void {
    this.body = grow(this.body, n);
    this.next = grow(this.next, n);
    this.queue = grow(this.queue, n);
    this.prio = grow(this.prio, n);
    this.state = grow(this.state, n);
    this.dc = grow(this.dc, n);
    if (this.notBefore.length) this.notBefore = grow(this.notBefore, n);
    if (this.expiresAt.length) this.expiresAt = grow(this.expiresAt, n);
  }
}
