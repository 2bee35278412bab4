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
  key: number;
  msg: Message;
  bytes: number;
  /** Journal group holding the record; pinned while the log has not written it. */
  group: number;
  /** Bytes put into the cache before this entry: its age, for idleness. */
  at: number;
}

/** Rough per-entry overhead (object, headers, map slot) so tiny payloads still count. */
const OVERHEAD = 256;
/** An entry unread while this many cache budgets of newer entries went by is idle. */
const IDLE_BUDGETS = 4;

export class BodyCache {
  private readonly map = new Map<number, Entry>();
  private bytes = 0;
  /** Total bytes ever put: the clock of `Entry.at`. */
  private putBytes = 0;
  /** Spilled entries (slot and entry, in put order), dropped once their group is on disk. */
  private spilled: { h: number; e: Entry }[] = [];
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
    const e = this.map.get(h);
    if (!e || e.key !== key) return undefined;
    if (delivered && e.group <= this.groupsWritten()) {
      this.map.delete(h);
      this.bytes -= e.bytes;
    }
    return e.msg;
  }

  put(h: number, key: number, msg: Message, group = 0): void {
    this.delete(h);
    this.add(h, key, msg, group);
  }

  /**
   * `put` for a slot known to have no entry — a body just added (a freed body leaves the cache, so its
   * slot comes back empty): one lookup in a map of tens of thousands fewer per publish.
   */
  add(h: number, key: number, msg: Message, group = 0): void {
    const bytes = msg.payload.byteLength + OVERHEAD;
    const e: Entry = { key, msg, bytes, group, at: this.putBytes };
    this.putBytes += bytes;
    this.map.set(h, e);
    this.bytes += bytes;
    if (this.bytes > this.maxBytes) this.makeRoom(h, e);
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
    this.spilled = [];
    this.spillHead = 0;
  }

  private makeRoom(h: number, newest: Entry): void {
    const written = this.groupsWritten();
    // Spilled entries whose records are on disk go first.
    const spilled = this.spilled;
    while (this.spillHead < spilled.length && this.bytes > this.maxBytes) {
      const s = spilled[this.spillHead]!;
      if (s.e.group > written) break;
      this.spillHead++;
      if (this.map.get(s.h) === s.e) {
        this.map.delete(s.h);
        this.bytes -= s.e.bytes;
      }
    }
    if (this.spillHead > 1024 && this.spillHead * 2 > spilled.length) {
      this.spilled = spilled.slice(this.spillHead);
      this.spillHead = 0;
    }
    // Then idle entries from the front (the oldest puts), down to 3/4 of the budget in one pass.
    const idleBefore = this.putBytes - IDLE_BUDGETS * this.maxBytes;
    const target = this.maxBytes * 0.75;
    let skipped = 0;
    for (const [k, e] of this.map) {
      if (this.bytes <= target || e.at >= idleBefore) break;
      if (e.group > written) {
        // Pinned entries may sit in front; give up after a few so a burst of appends stays cheap.
        if (++skipped > 64) break;
        continue;
      }
      this.map.delete(k);
      this.bytes -= e.bytes;
    }
    // Still full of live entries: the newest stays out, once its record is on disk.
    if (this.bytes > this.maxBytes && this.map.get(h) === newest) this.spilled.push({ h, e: newest });
  }
}
