/**
 * A connection's unsent bytes. Frames are copied into one slab as they are produced and the filled part
 * is handed to the transport once per event-loop turn, so a burst of deliveries costs one write and no
 * per-frame allocation. After a flush the rest of the slab keeps being filled (the written part is a
 * separate view), and a fresh slab is taken only when little room is left.
 */
const SLAB_BYTES = 64 * 1024;
const MIN_ROOM = 4 * 1024;

export class OutboundBuffer {
  private slab: Buffer = Buffer.allocUnsafe(SLAB_BYTES);
  private start = 0;
  private end = 0;

  /** Bytes queued and not yet taken by `take`. */
  get size(): number {
    return this.end - this.start;
  }

  /** The slab `reserve` returned an offset into (valid until the next reserve or push). */
  get buffer(): Buffer {
    return this.slab;
  }

  /**
   * Room for `n` more bytes; returns the offset in `buffer` to write at (a number, not an object: this
   * runs once per delivery). The caller writes exactly `n` bytes there and then calls `commit(n)`.
   */
  reserve(n: number): number {
    if (this.end + n > this.slab.length) this.grow(n);
    return this.end;
  }

  commit(n: number): void {
    this.end += n;
  }

  push(bytes: Uint8Array): void {
    const offset = this.reserve(bytes.length);
    this.slab.set(bytes, offset);
    this.end += bytes.length;
  }

  /** Takes everything queued as one buffer (a view the caller may keep). */
  take(): Buffer | undefined {
    if (this.end === this.start) return undefined;
    const bytes = this.slab.subarray(this.start, this.end);
    this.start = this.end;
    if (this.slab.length - this.end < MIN_ROOM) this.fresh(SLAB_BYTES);
    return bytes;
  }

  clear(): void {
    this.fresh(SLAB_BYTES);
  }

  private grow(n: number): void {
    // Unsent bytes move to a new slab big enough for them and the new frame.
    const pending = this.slab.subarray(this.start, this.end);
    const next = Buffer.allocUnsafe(Math.max(SLAB_BYTES, (pending.length + n) * 2));
    pending.copy(next, 0);
    this.slab = next;
    this.start = 0;
    this.end = pending.length;
  }

  private fresh(size: number): void {
    this.slab = Buffer.allocUnsafe(size);
    this.start = 0;
    this.end = 0;
  }
}
