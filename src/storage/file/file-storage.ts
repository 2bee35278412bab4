/**
 * The `file` engine: the shared state machine plus an append-only journal of its records in segment
 * files under `persistence_path`. Opening replays the segments; payloads stay on disk (a bounded cache
 * aside) and RAM holds only compact per-message rows. Space comes back in two ways: a closed segment
 * with nothing live left is deleted, and when the oldest segment is mostly dead its live messages are
 * rewritten ("carried") to the active segment so it can go too.
 *
 * Why a segment may be deleted: a record only refers to messages stored before it. A segment with no
 * live message may still hold the only record of a change to a live message in an older segment (an
 * ack, a dead-lettering…), so it goes only once every older segment it refers to is gone. Declarations
 * never pin a segment: every segment starts with a snapshot of the control state.
 */
import { copyBytes } from '../../protocol/bytes.ts';
import { mkdir, open, readFile, unlink, type FileHandle } from 'node:fs/promises';
import { MessagingError } from '../../protocol/errors.ts';
import { BaseStorage, type BodyRef } from '../engine.ts';
import type { Loc, Rec } from '../internal/records.ts';
import { State, type StateHooks } from '../internal/state.ts';
import { IN_FLIGHT, READY } from '../internal/tables.ts';
import type { FsyncPolicy, Logger, Message } from '../types.ts';
import { BodyCache } from './cache.ts';
import { DirLock } from './lock.ts';
import { liveMessages, liveTasks } from './carry.ts';
import { decodeRecord } from './codec.ts';
import { recover } from './recovery.ts';
import { defaultIo, SegmentLog, segmentPath, type SegmentIo } from './segment-log.ts';

export interface FileStorageOptions {
  path: string;
  fsync?: FsyncPolicy;
  batchSize?: number;
  batchTimeoutMs?: number;
  segmentBytes?: number;
  cacheBytes?: number;
  /** The oldest segment is rewritten forward once its live bytes fall under this fraction. */
  compactRatio?: number;
  logger?: Logger;
  now?: () => number;
  /** Test seam: replaces the file writes and syncs. */
  io?: SegmentIo;
}

interface SegStat {
  size: number;
  live: number;
  liveBytes: number;
  /** Older segments holding messages that records in this one changed. */
  refs: Set<number>;
  /** When the segment was closed (ms, this process's clock); 0 for segments found at open. */
  closedAt?: number;
}

/**
 * A closed segment's live messages are carried forward only once it has been closed this long. When the
 * journal rolls, the newest messages of the closed segment are usually in flight and acked moments
 * later; carrying them at once would read the whole segment back to rewrite messages about to die.
 */
const CARRY_GRACE_MS = 5000;

const SILENT: Logger = { warn: () => undefined, info: () => undefined };

/** ENOSPC/EDQUOT → STORAGE_FULL, anything else → STORAGE_FAILURE. */
export function storageError(err: unknown): MessagingError {
  if (err instanceof MessagingError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new MessagingError('STORAGE_FULL', 'no space left on the storage device; nothing was stored', {
      cause: err,
    });
  }
  return new MessagingError(
    'STORAGE_FAILURE',
    `storage I/O failed: ${(err as Error)?.message ?? String(err)}`,
    { cause: err },
  );
}

export class FileStorage extends BaseStorage {
  readonly engine = 'file';
  private readonly dir: string;
  private readonly o: Required<Omit<FileStorageOptions, 'now' | 'logger' | 'path'>>;
  private readonly logger: Logger;
  private log!: SegmentLog;
  private segs = new Map<number, SegStat>();
  private cache: BodyCache;
  private readers = new Map<number, Promise<FileHandle>>();
  private retired: Promise<FileHandle>[] = [];
  private recovering = false;
  private reclaimTimer: NodeJS.Timeout | null = null;
  private reclaimAt = 0;
  private reclaiming: Promise<void> | null = null;
  private readonly dirLock: DirLock;
  /** The last journal flush `durable()` handed out, and the same with storage errors. */
  private flushed: Promise<void> | undefined;
  private flushedWrapped: Promise<void> | undefined;

  /** Opens (creating if needed) the store at `options.path` and recovers its state. */
  static async open(options: FileStorageOptions): Promise<FileStorage> {
    const s = new FileStorage(options);
    await s.init();
    return s;
  }

  private constructor(options: FileStorageOptions) {
    super(options.now ?? Date.now);
    this.dir = options.path;
    this.dirLock = new DirLock(options.path);
    this.logger = options.logger ?? SILENT;
    this.o = {
      fsync: options.fsync ?? 'always',
      batchSize: options.batchSize ?? 100,
      batchTimeoutMs: options.batchTimeoutMs ?? 10,
      segmentBytes: options.segmentBytes ?? 64 * 1024 * 1024,
      cacheBytes: options.cacheBytes ?? 64 * 1024 * 1024,
      compactRatio: options.compactRatio ?? 0.5,
      io: options.io ?? defaultIo,
    };
    if (!['always', 'batch', 'none'].includes(this.o.fsync))
      throw new MessagingError('BAD_REQUEST', 'fsync must be always, batch or none');
    // Offsets are kept as uint32; the headroom covers one oversized record past the roll point.
    if (!(this.o.segmentBytes >= 4096 && this.o.segmentBytes <= 2 ** 31)) {
      throw new MessagingError('BAD_REQUEST', 'segmentBytes must be between 4 KiB and 2 GiB');
    }
    this.cache = new BodyCache(this.o.cacheBytes, () => this.log?.groupsWritten ?? 0);
  }

  private async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await this.dirLock.acquire();
    try {
      await this.loadFromDisk();
    } catch (err) {
      await this.dirLock.release();
      throw storageError(err);
    }
    // Age retention may have passed while we were down.
    const now = this.now();
    let wrote = false;
    for (const s of this.state.streams.values()) wrote = this.enforceRetention(s, now) || wrote;
    if (wrote) await this.durable();
    this.scheduleReclaim();
  }

  private async loadFromDisk(): Promise<void> {
    this.recovering = true;
    const started = Date.now();
    const r = await recover(this.dir, this.state, this.logger).finally(() => {
      this.recovering = false;
    });
    for (const s of r.segments) this.stat(s.seg).size = s.size;
    const last = r.segments[r.segments.length - 1];
    // Continue the newest segment while it has room.
    const fresh = !last || last.size >= this.o.segmentBytes;
    this.log = new SegmentLog({
      dir: this.dir,
      segmentBytes: this.o.segmentBytes,
      fsync: this.o.fsync,
      batchSize: this.o.batchSize,
      batchTimeoutMs: this.o.batchTimeoutMs,
      io: this.o.io,
      activeSeg: fresh ? (last?.seg ?? 0) + 1 : last.seg,
      activeSize: fresh ? 0 : last.size,
      segmentHead: () => this.state.snapshot(),
      onFailure: (err) => this.onLogFailure(err),
      onRoll: (seg, size) => {
        const st = this.stat(seg);
        st.size = size;
        st.closedAt = Date.now();
        this.scheduleReclaim();
      },
    });
    this.logger.info(
      {
        path: this.dir,
        segments: r.segments.length,
        records: r.records,
        messages: this.state.bodies.count,
        ms: Date.now() - started,
      },
      'storage: recovered',
    );
  }

  // ---- journal -----------------------------------------------------------------------------------

  protected write(rec: Rec): Loc {
    try {
      return this.log.append(rec);
    } catch (err) {
      throw storageError(err);
    }
  }

  protected durable(): Promise<void> {
    // Every operation of one group waits on the same flush: wrap it once, not once per operation.
    const flush = this.log.flush();
    if (flush !== this.flushed) {
      this.flushed = flush;
      this.flushedWrapped = flush.catch((err: unknown) => {
        throw storageError(err);
      });
    }
    return this.flushedWrapped!;
  }

  private stat(seg: number): SegStat {
    let s = this.segs.get(seg);
    if (!s) {
      s = { size: 0, live: 0, liveBytes: 0, refs: new Set() };
      this.segs.set(seg, s);
    }
    return s;
  }

  protected hooks(): StateHooks {
    return {
      bodyAdded: (h, rec) => {
        const b = this.state.bodies;
        const st = this.stat(b.seg[h]!);
        st.live++;
        st.liveBytes += b.len[h]!;
        if (!this.recovering && rec.payload) {
          const m = this.appending;
          const msg = m && m.payload === rec.payload ? m : { ...rec.head, payload: rec.payload };
          this.cache.add(h, rec.key, msg, this.log.lastGroup); // fresh slot: see bodyFreed
        }
      },
      bodyFreed: (h) => {
        const b = this.state.bodies;
        const seg = b.seg[h]!;
        const st = this.stat(seg);
        st.live--;
        st.liveBytes -= b.len[h]!;
        this.cache.delete(h);
        if (
          !this.recovering &&
          seg !== this.log.active &&
          (st.live === 0 || st.liveBytes < this.o.compactRatio * st.size)
        ) {
          this.scheduleReclaim();
        }
      },
      bodyMoved: (h, fromSeg, fromLen) => {
        const b = this.state.bodies;
        const from = this.stat(fromSeg);
        from.live--;
        from.liveBytes -= fromLen;
        const to = this.stat(b.seg[h]!);
        to.live++;
        to.liveBytes += b.len[h]!;
      },
      referenced: (recordSeg, bodySeg) => {
        this.stat(recordSeg).refs.add(bodySeg);
      },
      // A task record pins its segment like a message body does, and is carried forward the same way.
      taskStored: (seg, len) => {
        const st = this.stat(seg);
        st.live++;
        st.liveBytes += len;
      },
      taskFreed: (seg, len) => {
        const st = this.stat(seg);
        st.live--;
        st.liveBytes -= len;
        if (
          !this.recovering &&
          seg !== this.log.active &&
          (st.live === 0 || st.liveBytes < this.o.compactRatio * st.size)
        ) {
          this.scheduleReclaim();
        }
      },
    };
  }

  // ---- reading bodies ----------------------------------------------------------------------------

  protected async load(refs: BodyRef[], delivered = false): Promise<(Message | undefined)[]> {
    const out: (Message | undefined)[] = new Array(refs.length);
    const misses: { i: number; h: number; key: number; seg: number; off: number; len: number }[] = [];
    const b = this.state.bodies;
    refs.forEach((r, i) => {
      const hit = this.cache.get(r.h, r.key, delivered);
      if (hit) out[i] = hit;
      else if (b.key[r.h] === r.key)
        misses.push({ i, h: r.h, key: r.key, seg: b.seg[r.h]!, off: b.off[r.h]!, len: b.len[r.h]! });
    });
    if (misses.length === 0) return out;
    // Messages taken together were usually appended together: read each run of adjacent records at once.
    misses.sort((x, y) => x.seg - y.seg || x.off - y.off);
    const reads: Promise<void>[] = [];
    for (let i = 0; i < misses.length;) {
      let j = i + 1;
      let end = misses[i]!.off + misses[i]!.len;
      while (
        j < misses.length &&
        misses[j]!.seg === misses[i]!.seg &&
        misses[j]!.off - end < 4096 &&
        misses[j]!.off + misses[j]!.len - misses[i]!.off < 1 << 20
      ) {
        end = Math.max(end, misses[j]!.off + misses[j]!.len);
        j++;
      }
      const run = misses.slice(i, j);
      reads.push(
        this.readRun(run[0]!.seg, run[0]!.off, end - run[0]!.off, run, delivered).then(
          (msgs) => run.forEach((m, k) => void (out[m.i] = msgs[k])),
          () =>
            Promise.all(
              run.map((m) => this.readBody(m.h, m.key, delivered).then((msg) => void (out[m.i] = msg))),
            ).then(() => undefined),
        ),
      );
      i = j;
    }
    await Promise.all(reads);
    return out;
  }

  /**
   * One read for several records; any surprise (moved, torn) falls back to reading them one by one.
   * `delivered`: read for a queue delivery, which the cache would drop at once (see `BodyCache`).
   */
  private async readRun(
    seg: number,
    start: number,
    length: number,
    run: { h: number; key: number; off: number; len: number }[],
    delivered: boolean,
  ): Promise<(Message | undefined)[]> {
    const state = this.state;
    const fh = await this.reader(seg);
    const buf = Buffer.allocUnsafe(length);
    const { bytesRead } = await fh.read(buf, 0, length, start);
    if (bytesRead !== length) throw new Error('short read');
    return run.map((m) => {
      const r = decodeRecord(buf.subarray(m.off - start, m.off - start + m.len), 0);
      if (!r.ok || r.rec.t !== 'msg' || r.rec.key !== m.key) throw new Error('record moved');
      const view = r.rec.payload ?? new Uint8Array(0);
      if (delivered) return { ...r.rec.head, payload: view };
      // Copy out of the shared run buffer so a cached message does not pin the whole run.
      const msg: Message = { ...r.rec.head, payload: run.length > 1 ? copyBytes(view) : view };
      if (state === this.state && state.bodies.key[m.h] === m.key) this.cache.put(m.h, m.key, msg);
      return msg;
    });
  }

  private reader(seg: number): Promise<FileHandle> {
    let fh = this.readers.get(seg);
    if (!fh) {
      fh = open(segmentPath(this.dir, seg), 'r');
      fh.catch(() => this.readers.delete(seg));
      this.readers.set(seg, fh);
    }
    return fh;
  }

  private async readBody(h: number, key: number, delivered: boolean): Promise<Message | undefined> {
    const state = this.state;
    const b = state.bodies;
    // Twice: compaction may move the record between looking up its place and reading it.
    for (let attempt = 0; ; attempt++) {
      if (b.key[h] !== key) return undefined;
      const seg = b.seg[h]!;
      const off = b.off[h]!;
      const len = b.len[h]!;
      try {
        const fh = await this.reader(seg);
        const buf = Buffer.allocUnsafe(len);
        const { bytesRead } = await fh.read(buf, 0, len, off);
        if (bytesRead !== len) throw new Error(`short read in segment ${seg} at ${off}`);
        const r = decodeRecord(buf, 0);
        if (!r.ok) throw new Error(`segment ${seg} at ${off}: ${r.detail}`);
        if (r.rec.t !== 'msg' || r.rec.key !== key)
          throw new Error(`segment ${seg} at ${off} holds another record`);
        const msg: Message = { ...r.rec.head, payload: r.rec.payload ?? new Uint8Array(0) };
        if (!delivered && state === this.state && b.key[h] === key) this.cache.put(h, key, msg);
        return msg;
      } catch (err) {
        if (b.key[h] !== key || state !== this.state) return undefined;
        if (attempt === 0 && (b.seg[h] !== seg || b.off[h] !== off)) continue;
        throw storageError(err);
      }
    }
  }

  // ---- space reclaim -----------------------------------------------------------------------------

  private scheduleReclaim(delayMs = 50): void {
    if (this.closed) return;
    // A pass already due sooner covers this request; one due later (a grace period) is brought forward.
    if (this.reclaimTimer) {
      if (this.reclaimAt <= Date.now() + delayMs) return;
      clearTimeout(this.reclaimTimer);
    }
    this.reclaimAt = Date.now() + delayMs;
    this.reclaimTimer = setTimeout(() => {
      this.reclaimTimer = null;
      this.reclaim().catch((err: unknown) =>
        this.logger.warn({ err: String(err) }, 'storage: space reclaim failed'),
      );
    }, delayMs);
    this.reclaimTimer.unref();
  }

  /** Reclaims what can be now, carrying live messages forward without waiting for the grace period. */
  async compact(): Promise<void> {
    await this.enter();
    // A background pass in flight waits out the grace period: let it end, then run one that does not.
    while (this.reclaiming) await this.reclaiming;
    await this.reclaim(true);
  }

  private reclaim(now = false): Promise<void> {
    this.reclaiming ??= this.reclaimPasses(now).finally(() => {
      this.reclaiming = null;
    });
    return this.reclaiming;
  }

  private async reclaimPasses(now: boolean): Promise<void> {
    await this.durable();
    for (const fh of this.retired.splice(0))
      await (await fh.catch(() => null))?.close().catch(() => undefined);
    for (;;) {
      if (this.closed || this.gate) return;
      let changed = false;
      const closedSegs = () =>
        [...this.segs.keys()].filter((s) => s !== this.log.active).sort((a, b) => a - b);
      for (const seg of closedSegs()) {
        const st = this.segs.get(seg)!;
        if (st.live === 0 && [...st.refs].every((r) => !this.segs.has(r))) {
          await this.dropSegment(seg);
          changed = true;
        }
      }
      const oldest = closedSegs()[0];
      const st = oldest === undefined ? undefined : this.segs.get(oldest);
      if (oldest !== undefined && st && st.live > 0 && st.liveBytes < this.o.compactRatio * st.size) {
        const wait = now ? 0 : (st.closedAt ?? 0) + CARRY_GRACE_MS - Date.now();
        if (wait > 0) {
          this.scheduleReclaim(wait);
          return;
        }
        const carried = await this.carry(oldest);
        await this.durable();
        changed = carried > 0;
      }
      if (!changed) return;
    }
  }

  private async dropSegment(seg: number): Promise<void> {
    this.segs.delete(seg);
    const fh = this.readers.get(seg);
    if (fh) {
      this.readers.delete(seg);
      // A read may still be using it: close at the next pass (an unlinked file stays readable).
      this.retired.push(fh);
    }
    await unlink(segmentPath(this.dir, seg)).catch((err: { code?: string }) => {
      if (err.code !== 'ENOENT') throw err;
    });
    this.logger.info({ segment: seg }, 'storage: segment reclaimed');
  }

  /** Rewrites the live messages of `seg` at the end of the journal, with their current state. */
  private async carry(seg: number): Promise<number> {
    const state = this.state;
    const buf = await readFile(segmentPath(this.dir, seg));
    if (state !== this.state || this.closed) return 0;
    let carried = 0;
    for (const { h, rec } of liveMessages(state, seg, buf)) {
      this.emit(rec);
      this.cache.put(
        h,
        rec.key,
        { ...rec.head, payload: rec.payload ?? new Uint8Array(0) },
        this.log.lastGroup,
      );
      carried++;
    }
    // Tasks homed here too: each rewritten record supersedes the task's older ones.
    let tasks = 0;
    for (const rec of liveTasks(state, seg)) {
      this.emit(rec);
      tasks += rec.add?.length ?? 0;
    }
    this.logger.info(
      { segment: seg, messages: carried, tasks },
      'storage: live messages carried forward for compaction',
    );
    return carried + tasks;
  }

  // ---- failure and shutdown ----------------------------------------------------------------------

  /**
   * A group could not be written. Its waiters already failed; memory may now hold changes the disk does
   * not, so rebuild state from the disk, keeping deliveries whose messages are still there.
   */
  private onLogFailure(err: unknown): void {
    if (this.gate || this.closed) return;
    this.logger.warn({ err: String(err) }, 'storage: a journal write failed; reloading state from disk');
    this.gate = this.rebuild().finally(() => {
      this.gate = null;
    });
  }

  private async rebuild(): Promise<void> {
    const held: { q: string; key: number; id: string; consumer: string; deadline: number; dc: number }[] = [];
    for (const q of this.state.queues.values()) {
      for (const f of q.inflight.values()) {
        held.push({
          q: q.spec.name,
          key: this.state.keyOf(f.slot),
          id: f.id,
          consumer: f.consumer,
          deadline: f.deadline,
          dc: this.state.entries.dc[f.slot]!,
        });
      }
    }
    await this.log.close();
    for (const fh of this.readers.values()) this.retired.push(fh);
    this.readers.clear();
    this.cache.clear();
    this.segs = new Map();
    this.state = new State(this.now, this.hooks());
    try {
      await this.loadFromDisk();
    } catch (err) {
      this.logger.warn({ err: String(err) }, 'storage: reload after a write failure failed; closing');
      this.closed = true;
      return;
    }
    const st = this.state;
    const e = st.entries;
    for (const f of held) {
      const q = st.queues.get(f.q);
      const slot = q ? st.entryOf(f.key, q) : -1;
      if (!q || slot < 0 || e.state[slot] !== READY) continue;
      st.detach(slot, q);
      e.state[slot] = IN_FLIGHT;
      e.dc[slot] = f.dc;
      const rec = { id: f.id, slot, consumer: f.consumer, deadline: f.deadline };
      q.inflight.set(f.id, rec);
      q.inflightBySlot.set(slot, rec);
      q.timeouts.push(f.deadline, slot);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.gate) await this.gate;
    this.closed = true;
    if (this.reclaimTimer) clearTimeout(this.reclaimTimer);
    await this.reclaiming?.catch(() => undefined);
    await this.log.close();
    for (const fh of [...this.readers.values(), ...this.retired])
      await (await fh.catch(() => null))?.close().catch(() => undefined);
    this.readers.clear();
    this.retired = [];
    this.cache.clear();
    await this.dirLock.release();
  }
}
