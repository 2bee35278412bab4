/**
 * Bounded cache of decoded messages by body slot. It also holds messages whose records are queued but
 * not yet written ("pinned" until their group is on disk), so a consumer can take a message the moment
 * it is appended without reading a file that does not have it yet.
 *
 * Why not least-recently-used: queues are read oldest first. When consumers fall behind by more than
 * the cache holds, LRU evicts exactly the oldest messages — the next ones every consumer asks for — so
 * every delivery becomes a disk read. Here, instead:
 * - a message delivered from a queue leaves the cache (`get(…, true)`): only a redelivery needs it again,
 *   and that may read the disk;
 * - when the cache is full, the newest message is the one left out ("spilled": kept only until its group
 *   is on disk), so the backlog's head stays cached and is read from memory;
 * - an entry nobody read while four cache-fulls of newer messages went by is idle (a queue without
 *   consumers, an old stream message) and gives way, so idle data cannot keep live data out for good.
 */
import type { Message } from '../types.ts';

/** Rough per-entry overhead (object, headers, map slot) so tiny payloads still count. */
const OVERHEAD = 256;
/** An entry unread while this many cache budgets of newer entries went by is idle. */
const IDLE_BUDGETS = 4;

export class BodyCache {
  /** Cached messages by body slot, in put order: the order idle entries are evicted in. */
  private readonly map = new Map<number, Message>();
  // What the cache knows of each entry, by slot, in typed arrays instead of an object per entry: a
  // backlog keeps tens of thousands of messages cached, and each young-generation GC copies every
  // object they own.
  /** The body key the slot held when it was put (slots are reused). */
  private keys = new Float64Array(1024);
  /** Bytes it counts against the budget. */
  private sizes = new Float64Array(1024);
  /** Journal group holding the record; pinned while the log has not written it. */
  private groups = new Float64Array(1024);
  /** Bytes put into the cache before it: its age, for idleness (and, being unique, its identity). */
  private ats = new Float64Array(1024);
  private bytes = 0;
  /** Total bytes ever put: the clock of `ats`. */
  private putBytes = 0;
  /** Spilled entries (slot and `ats` value, in put order), dropped once their group is on disk. */
  private spilledSlots: number[] = [];
  private spilledAts: number[] = [];
  private spillHead = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly groupsWritten: () => number,
  ) {}

  /**
   * The cached message of slot `h` if it still holds `key`. `delivered`: a queue delivery reads it, so
   * it leaves the cache unless its record is not on disk yet.
   */
  get(h: number, key: number, delivered = false): Message | undefined {
    const msg = this.map.get(h);
    if (msg === undefined || this.keys[h] !== key) return undefined;
    if (delivered && this.groups[h]! <= this.groupsWritten()) {
      this.map.delete(h);
      this.bytes -= this.sizes[h]!;
    }
    return msg;
  }

  put(h: number, key: number, msg: Message, group = 0): void {
    this.delete(h);
    if (h >= this.keys.length) this.grow(h);
    const bytes = msg.payload.byteLength + OVERHEAD;
    this.keys[h] = key;
    this.sizes[h] = bytes;
    this.groups[h] = group;
    this.ats[h] = this.putBytes;
    this.putBytes += bytes;
    this.map.set(h, msg);
    this.bytes += bytes;
    if (this.bytes > this.maxBytes) this.makeRoom(h);
  }

  delete(h: number): void {
    if (!this.map.delete(h)) return;
    this.bytes -= this.sizes[h]!;
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
    this.spilledSlots = [];
    this.spilledAts = [];
    this.spillHead = 0;
  }

  private grow(h: number): void {
    let n = this.keys.length;
    while (n <= h) n *= 2;
    const widen = (a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
      const b = new Float64Array(n);
      b.set(a);
      return b;
    };
    this.keys = widen(this.keys);
    this.sizes = widen(this.sizes);
    this.groups = widen(this.groups);
    this.ats = widen(this.ats);
  }

  private makeRoom(newest: number): void {
    const written = this.groupsWritten();
    const newestAt = this.ats[newest]!;
    // Spilled entries whose records are on disk go first.
    const slots = this.spilledSlots;
    while (this.spillHead < slots.length && this.bytes > this.maxBytes) {
      const h = slots[this.spillHead]!;
      const at = this.spilledAts[this.spillHead]!;
      if (this.ats[h] === at && this.groups[h]! > written) break;
      this.spillHead++;
      // Still the entry that was spilled (not deleted, nor the slot put again since)?
      if (this.ats[h] === at && this.map.has(h)) this.delete(h);
    }
    if (this.spillHead > 1024 && this.spillHead * 2 > slots.length) {
      this.spilledSlots = slots.slice(this.spillHead);
      this.spilledAts = this.spilledAts.slice(this.spillHead);
      this.spillHead = 0;
    }
    // Then idle entries from the front (the oldest puts), down to 3/4 of the budget in one pass.
    const idleBefore = this.putBytes - IDLE_BUDGETS * this.maxBytes;
    const target = this.maxBytes * 0.75;
    let skipped = 0;
    for (const h of this.map.keys()) {
      if (this.bytes <= target || this.ats[h]! >= idleBefore) break;
      if (this.groups[h]! > written) {
        // Pinned entries may sit in front; give up after a few so a burst of appends stays cheap.
        if (++skipped > 64) break;
        continue;
      }
      this.delete(h);
    }
    // Still full of live entries: the newest stays out, once its record is on disk.
    if (this.bytes > this.maxBytes && this.map.has(newest) && this.ats[newest] === newestAt) {
      this.spilledSlots.push(newest);
      this.spilledAts.push(newestAt);
    }
  }
}
