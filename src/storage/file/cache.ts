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

interface Entry {
  /** The body slot it caches. */
  h: number;
  key: number;
  msg: Message;
  bytes: number;
  /** Journal group holding the record; pinned while the log has not written it. */
  group: number;
  /** Bytes put into the cache before this entry: its age, for idleness. */
  at: number;
}

/** Rough per-entry overhead (object, headers, slot and order references) so tiny payloads still count. */
const OVERHEAD = 256;
/** An entry unread while this many cache budgets of newer entries went by is idle. */
const IDLE_BUDGETS = 4;

/** Slots per page of the slot index. */
const PAGE_BITS = 10;
const PAGE_MASK = (1 << PAGE_BITS) - 1;

interface Page {
  entries: (Entry | undefined)[];
  /** Entries held: an empty page is dropped. */
  live: number;
}

/**
 * Entries are found by slot (slots are small dense numbers) in pages of 1024 array slots — cheaper than
 * a Map of tens of thousands on the publish path; pages rather than one array because one array would
 * span every stored message's slot and grow by copying, where pages exist only where cached entries
 * are — and aged by `order`, the entries in put order. `order` keeps entries that have since left (a
 * stale entry is recognised by `entryAt(e.h) !== e`), and is compacted once they are most of it.
 */
export class BodyCache {
  private readonly pages: (Page | undefined)[] = [];
  private count = 0;
  private order: Entry[] = [];
  private orderHead = 0;
  private bytes = 0;
  /** Total bytes ever put: the clock of `Entry.at`. */
  private putBytes = 0;
  /** Spilled entries, in put order, dropped once their group is on disk. */
  private spilled: Entry[] = [];
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
    const e = this.entryAt(h);
    if (!e || e.key !== key) return undefined;
    if (delivered && e.group <= this.groupsWritten()) this.remove(e);
    return e.msg;
  }

  put(h: number, key: number, msg: Message, group = 0): void {
    this.delete(h);
    this.add(h, key, msg, group);
  }

  /** `put` for a slot known to have no entry — a body just added (a freed body leaves the cache). */
  add(h: number, key: number, msg: Message, group = 0): void {
    const bytes = msg.payload.byteLength + OVERHEAD;
    const e: Entry = { h, key, msg, bytes, group, at: this.putBytes };
    this.putBytes += bytes;
    const p = h >>> PAGE_BITS;
    while (this.pages.length < p) this.pages.push(undefined); // no holes: the array stays packed
    let page = this.pages[p];
    if (!page) {
      page = { entries: new Array<Entry | undefined>(PAGE_MASK + 1).fill(undefined), live: 0 };
      this.pages[p] = page;
    }
    page.entries[h & PAGE_MASK] = e;
    page.live++;
    this.count++;
    this.order.push(e);
    this.bytes += bytes;
    if (this.bytes > this.maxBytes) this.makeRoom(e);
    if (this.order.length - this.orderHead > 2 * this.count + 1024) this.compactOrder();
  }

  delete(h: number): void {
    const e = this.entryAt(h);
    if (e) this.remove(e);
  }

  clear(): void {
    this.pages.length = 0;
    this.count = 0;
    this.order = [];
    this.orderHead = 0;
    this.bytes = 0;
    this.spilled = [];
    this.spillHead = 0;
  }

  private entryAt(h: number): Entry | undefined {
    return this.pages[h >>> PAGE_BITS]?.entries[h & PAGE_MASK];
  }

  private remove(e: Entry): void {
    const p = e.h >>> PAGE_BITS;
    const page = this.pages[p]!;
    page.entries[e.h & PAGE_MASK] = undefined;
    if (--page.live === 0) this.pages[p] = undefined;
    this.count--;
    this.bytes -= e.bytes;
  }

  private isCached(e: Entry): boolean {
    return this.entryAt(e.h) === e;
  }

  private compactOrder(): void {
    this.order = this.order.slice(this.orderHead).filter((e) => this.isCached(e));
    this.orderHead = 0;
  }

  private makeRoom(newest: Entry): void {
    const written = this.groupsWritten();
    // Spilled entries whose records are on disk go first.
    const spilled = this.spilled;
    while (this.spillHead < spilled.length && this.bytes > this.maxBytes) {
      const e = spilled[this.spillHead]!;
      if (e.group > written) break;
      this.spillHead++;
      if (this.isCached(e)) this.remove(e);
    }
    if (this.spillHead > 1024 && this.spillHead * 2 > spilled.length) {
      this.spilled = spilled.slice(this.spillHead);
      this.spillHead = 0;
    }
    // Then idle entries from the front (the oldest puts), down to 3/4 of the budget in one pass.
    const idleBefore = this.putBytes - IDLE_BUDGETS * this.maxBytes;
    const target = this.maxBytes * 0.75;
    const order = this.order;
    let skipped = 0;
    for (let i = this.orderHead; i < order.length; i++) {
      const e = order[i]!;
      if (!this.isCached(e)) {
        if (i === this.orderHead) this.orderHead++; // left already: off the front for good
        continue;
      }
      if (this.bytes <= target || e.at >= idleBefore) break;
      if (e.group > written) {
        // Pinned entries may sit in front; give up after a few so a burst of appends stays cheap.
        if (++skipped > 64) break;
        continue;
      }
      this.remove(e);
      if (i === this.orderHead) this.orderHead++;
    }
    // Still full of live entries: the newest stays out, once its record is on disk.
    if (this.bytes > this.maxBytes && this.isCached(newest)) this.spilled.push(newest);
  }
}
