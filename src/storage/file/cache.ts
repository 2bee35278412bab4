/**
 * Bounded cache of decoded messages by body slot, least recently used first out. It also holds messages
 * whose records are queued but not yet written ("pinned" until their group is on disk), so a consumer
 * can take a message the moment it is appended without reading a file that does not have it yet.
 */
import type { Message } from '../types.ts';

interface Entry {
  key: number;
  msg: Message;
  bytes: number;
  /** Journal group holding the record; pinned while the log has not written it. */
  group: number;
}

/** Rough per-entry overhead (object, headers, map slot) so tiny payloads still count. */
const OVERHEAD = 256;

export class BodyCache {
  private readonly map = new Map<number, Entry>();
  private bytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly groupsWritten: () => number,
  ) {}

  get(h: number, key: number): Message | undefined {
    const e = this.map.get(h);
    if (!e || e.key !== key) return undefined;
    // Re-insert to mark as most recently used.
    this.map.delete(h);
    this.map.set(h, e);
    return e.msg;
  }

  put(h: number, key: number, msg: Message, group = 0): void {
    this.delete(h);
    const e = { key, msg, bytes: msg.payload.byteLength + OVERHEAD, group };
    this.map.set(h, e);
    this.bytes += e.bytes;
    if (this.bytes > this.maxBytes) this.evict();
  }

  delete(h: number): void {
    const e = this.map.get(h);
    if (!e) return;
    this.map.delete(h);
    this.bytes -= e.bytes;
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }

  /**
   * Evicts down to 3/4 of the budget in one pass: scanning a Map from its front walks the holes left by
   * earlier deletions, so evicting one entry per insert would cost O(holes) each time.
   */
  private evict(): void {
    const written = this.groupsWritten();
    const target = this.maxBytes * 0.75;
    // Pinned entries may sit in front; give up after a few so a burst of appends stays cheap.
    let skipped = 0;
    for (const [h, e] of this.map) {
      if (this.bytes <= target) break;
      if (e.group > written) {
        if (++skipped > 64) break;
        continue;
      }
      this.map.delete(h);
      this.bytes -= e.bytes;
    }
  }
}
