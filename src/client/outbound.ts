/**
 * The outbound frame queue. The first write of a tick schedules one flush (a microtask), and every frame
 * queued until then leaves in one `send` — one syscall, or one WebSocket message holding whole frames.
 * A tick that queues a lot flushes at once instead of growing without bound.
 */
import { FrameType } from '../protocol/index.ts';

/** Flush at once when this much is queued, instead of waiting for the end of the tick. */
export const FLUSH_THRESHOLD = 64 * 1024;

export interface FrameSink {
  send(bytes: Uint8Array): void;
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

export class Outbound {
  // Whole frames, kept separate until the flush so a reconnect can drop the ones tied to the old link.
  private frames: Uint8Array[] = [];
  private bytes = 0;
  private scheduled = false;
  /**
   * Batches written so far. A frame queued when this is N leaves in batch N + 1, so after a disconnect
   * at count F, anything dated N < F was written to the lost link and anything else is still here.
   */
  flushCount = 0;

  /** `onTick` runs the scheduled flush (the owner decides which link, if any, gets the bytes). */
  constructor(private readonly onTick: () => void) {}

  /** Bytes queued and not yet written. */
  get size(): number {
    return this.bytes;
  }

  /** Queues a frame; when `live` (a link is up) schedules a flush or, past the threshold, asks for one now. */
  push(frame: Uint8Array, live: boolean): boolean {
    this.frames.push(frame);
    this.bytes += frame.length;
    if (!live) return false;
    if (this.bytes >= FLUSH_THRESHOLD) return true;
    if (!this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => {
        this.scheduled = false;
        this.onTick();
      });
    }
    return false;
  }

  /** Writes everything queued to `sink` as one buffer. */
  flushTo(sink: FrameSink): void {
    if (this.frames.length === 0) return;
    const bytes = concat(this.frames, this.bytes);
    this.frames = [];
    this.bytes = 0;
    this.flushCount++;
    sink.send(bytes);
  }

  /**
   * Before resubscribing on a new link: takes out what is still worth sending there. SUB and UNSUB are
   * regenerated from the live subscriptions, and PONGs answered PINGs of the old link.
   */
  takeForNewLink(): Uint8Array[] {
    const held = this.frames.filter(
      (f) => f[4] !== FrameType.SUB && f[4] !== FrameType.UNSUB && f[4] !== FrameType.PONG,
    );
    this.clear();
    return held;
  }

  clear(): void {
    this.frames = [];
    this.bytes = 0;
  }
}
