/**
 * The outbound frame queue. The first write of a tick schedules one flush (a microtask), and every frame
 * queued until then leaves in one `send` — one syscall, or one WebSocket message holding whole frames.
 * A tick that queues a lot flushes at once instead of growing without bound.
 *
 * Frames queued after that first flush, in the same turn of the event loop, wait for a macrotask
 * (`setImmediate`) instead: a socket read of many confirms resumes each awaiting publisher in its own
 * microtask, and a microtask flush would write each of their next publishes with its own syscall (one
 * write per message, measured: a quarter of the client's CPU in the durable benchmark). The first flush
 * of a turn stays a microtask, so a lone request still leaves at once.
 *
 * Frames are written straight into one slab (publishes are encoded in place, see `reserve`), so queueing
 * costs no allocation per frame and a flush hands the transport a view of the slab instead of a
 * concatenated copy. The written part is never touched again — the next frames go after it, and a fresh
 * slab is taken when little room is left — so a transport may keep the view until the bytes are sent.
 *
 * Frames stay self-delimiting in the slab (each starts with its length), which is all a reconnect needs
 * to sort what is still queued (`takeForNewLink`).
 */
import { FrameType } from '../protocol/index.ts';

/** Flush at once when this much is queued, instead of waiting for the end of the tick. */
export const FLUSH_THRESHOLD = 64 * 1024;

/**
 * First slab of a connection: small, since most connections send little. A busy one grows its slab to
 * fit what it queues per flush, and fresh slabs keep that size.
 */
const INITIAL_SLAB_BYTES = 16 * 1024;
/** Fresh slabs are not made bigger than this, even after one grew for a large message. */
const MAX_FRESH_SLAB_BYTES = 256 * 1024;
/** After a flush, start a fresh slab when less than this is left of the current one. */
const MIN_ROOM = 4 * 1024;

/** Runs `fn` after the I/O of this turn of the event loop (a zero timeout in browsers). */
const afterIo: (fn: () => void) => void =
  typeof globalThis.setImmediate === 'function'
    ? (fn) => void globalThis.setImmediate(fn)
    : (fn) => void setTimeout(fn, 0);

export interface FrameSink {
  send(bytes: Uint8Array): void;
}

export class Outbound {
  private slab = new Uint8Array(INITIAL_SLAB_BYTES);
  /** Queued bytes are `slab[start..end)`. */
  private start = 0;
  private end = 0;
  private scheduled = false;
  /** A flush already ran in this turn of the event loop: later frames of the turn wait for `afterIo`. */
  private flushedThisTurn = false;
  private readonly runTick = (): void => {
    this.scheduled = false;
    this.onTick();
  };
  private readonly endTurn = (): void => {
    this.flushedThisTurn = false;
  };
  /**
   * Positions (relative to `start`) of queued frames that a reconnect regenerates itself, such as the
   * open commands of queue consumers: a copy still queued for the lost link must not go out as well.
   */
  private regenerated: number[] = [];
  /**
   * Batches written so far. A frame queued when this is N leaves in batch N + 1, so after a disconnect
   * at count F, anything dated N < F was written to the lost link and anything else is still here.
   */
  flushCount = 0;

  /** `onTick` runs the scheduled flush (the owner decides which link, if any, gets the bytes). */
  constructor(private readonly onTick: () => void) {}

  /** Bytes queued and not yet written. */
  get size(): number {
    return this.end - this.start;
  }

  /** The slab `reserve` returned an offset into (valid until the next reserve or push). */
  get buffer(): Uint8Array {
    return this.slab;
  }

  /**
   * Room for a frame of `n` bytes: returns the offset in `buffer` to write it at. The caller writes
   * exactly `n` bytes there, then calls `commit(n, live)`.
   */
  reserve(n: number): number {
    if (this.end + n > this.slab.length) this.grow(n);
    return this.end;
  }

  /**
   * Queues the `n` bytes written after `reserve`; when `live` (a link is up) schedules a flush or, past
   * the threshold, returns true: the owner should flush now.
   */
  commit(n: number, live: boolean): boolean {
    this.end += n;
    if (!live) return false;
    if (this.end - this.start >= FLUSH_THRESHOLD) return true;
    if (!this.scheduled) {
      this.scheduled = true;
      if (this.flushedThisTurn) afterIo(this.runTick);
      else queueMicrotask(this.runTick);
    }
    return false;
  }

  /**
   * Queues a frame (copied); see `commit` for `live` and the result. `regenerated` marks a frame the
   * owner re-creates after a reconnect, so `takeForNewLink` leaves it out.
   */
  push(frame: Uint8Array, live: boolean, regenerated = false): boolean {
    const at = this.reserve(frame.length);
    if (regenerated) this.regenerated.push(at - this.start);
    this.slab.set(frame, at);
    return this.commit(frame.length, live);
  }

  /** Writes everything queued to `sink` as one buffer. */
  flushTo(sink: FrameSink): void {
    if (this.end === this.start) return;
    const bytes = this.slab.subarray(this.start, this.end);
    this.start = this.end;
    if (this.regenerated.length > 0) this.regenerated = [];
    if (this.slab.length - this.end < MIN_ROOM) this.fresh(Math.min(this.slab.length, MAX_FRESH_SLAB_BYTES));
    this.flushCount++;
    if (!this.flushedThisTurn) {
      this.flushedThisTurn = true;
      afterIo(this.endTurn);
    }
    sink.send(bytes);
  }

  /**
   * Before resubscribing on a new link: takes out what is still worth sending there. SUB and UNSUB are
   * regenerated from the live subscriptions (and so are frames pushed as `regenerated`), and PONGs
   * answered PINGs of the old link.
   */
  takeForNewLink(): Uint8Array[] {
    const held: Uint8Array[] = [];
    const skip = new Set(this.regenerated);
    const slab = this.slab;
    for (let o = this.start; o < this.end;) {
      const size = 4 + (((slab[o]! << 24) | (slab[o + 1]! << 16) | (slab[o + 2]! << 8) | slab[o + 3]!) >>> 0);
      const type = slab[o + 4];
      if (
        type !== FrameType.SUB &&
        type !== FrameType.UNSUB &&
        type !== FrameType.PONG &&
        !skip.has(o - this.start)
      ) {
        held.push(slab.slice(o, o + size));
      }
      o += size;
    }
    this.clear();
    return held;
  }

  clear(): void {
    this.fresh(INITIAL_SLAB_BYTES);
  }

  private grow(n: number): void {
    // Queued bytes move to a new slab big enough for them and the new frame; the old slab may still be
    // referenced by a transport (a view handed out by `flushTo`), so it is never written again.
    const pending = this.slab.subarray(this.start, this.end);
    const next = new Uint8Array(Math.max(this.slab.length, (pending.length + n) * 2));
    next.set(pending, 0);
    this.slab = next;
    this.start = 0;
    this.end = pending.length;
  }

  private fresh(size: number): void {
    this.slab = new Uint8Array(size);
    this.start = 0;
    this.end = 0;
    this.regenerated = [];
  }
}
