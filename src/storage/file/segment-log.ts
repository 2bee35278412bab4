/**
 * The append side of the file engine: numbered segment files written with group commit.
 *
 * `append` places a record synchronously (so its location is known at once, in journal order) and queues
 * its bytes. One writer drains the queue: every record queued while the previous group was being written
 * forms the next group — one write per segment touched — and all its waiters are confirmed together.
 * `always` starts a group as soon as the event loop turns; `batch` lets a group fill for up to
 * `batchTimeoutMs` or `batchSize` records first; `none` confirms after write().
 *
 * Under `always` and `batch` the segment files are opened with O_DSYNC: a write returns only once its
 * bytes (and the file size that covers them) are on stable storage — exactly write() then fdatasync(),
 * in one trip to the thread pool instead of two, which took a tenth off a group's confirm latency.
 */
import { constants } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { FsyncPolicy } from '../types.ts';
import type { Loc, Rec } from '../internal/records.ts';
import { encodeHeader, measureRecord, writeRecord } from './codec.ts';

export function segmentPath(dir: string, seg: number): string {
  return join(dir, `${String(seg).padStart(10, '0')}.seg`);
}

export const SEGMENT_RE = /^(\d{10})\.seg$/;

/** File operations, injectable so tests can fail a write with ENOSPC. */
export interface SegmentIo {
  /** Writes all of `buf` at `position`; on an O_DSYNC file, durably. */
  write(fh: FileHandle, buf: Buffer, position: number): Promise<void>;
  /** fdatasync: for files written without O_DSYNC (fsync `none`), at close. */
  sync(fh: FileHandle): Promise<void>;
}

/** Open flags of a segment file: created or continued, with O_DSYNC when writes must be durable. */
export function segmentOpenFlags(create: boolean, durableWrites: boolean): number {
  const { O_RDWR, O_CREAT, O_TRUNC, O_DSYNC } = constants;
  return O_RDWR | (create ? O_CREAT | O_TRUNC : 0) | (durableWrites ? O_DSYNC : 0);
}

export const defaultIo: SegmentIo = {
  async write(fh, buf, position) {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
      if (bytesWritten === 0) throw Object.assign(new Error('write made no progress'), { code: 'EIO' });
      done += bytesWritten;
    }
  },
  sync: (fh) => fh.datasync(),
};

export interface SegmentLogOptions {
  dir: string;
  segmentBytes: number;
  fsync: FsyncPolicy;
  batchSize: number;
  batchTimeoutMs: number;
  io: SegmentIo;
  /** The segment to continue and its current size (0 to start a fresh one). */
  activeSeg: number;
  activeSize: number;
  /** The control-state record that heads every new segment. */
  segmentHead: () => Rec;
  /** A group failed to be written: nothing after it was written either. */
  onFailure: (err: unknown) => void;
  /** A new segment was started (the previous one is now closed). */
  onRoll: (closedSeg: number, size: number) => void;
}

/** Contiguous bytes of one segment, queued for the next group: one write each. */
interface Chunk {
  seg: number;
  /** Where in the segment file they go. */
  off: number;
  slab: Buffer;
  start: number;
  end: number;
}

/**
 * Records are encoded straight into a slab, one after another, so a group is a few runs of one buffer:
 * no buffer per record and no copy to join them. A full slab is left to the writes still using it.
 */
const SLAB_BYTES = 1024 * 1024;

interface Waiter {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function waiter(): Waiter {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A failure is also reported to `onFailure`; nobody may be awaiting this particular group.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

export class SegmentLog {
  private activeSeg: number;
  /** Size of the active segment including queued bytes: where the next record goes. */
  private activeSize: number;
  private recordsInActive = 0;
  private queue: Chunk[] = [];
  private slab = Buffer.allocUnsafe(SLAB_BYTES);
  /** Where the next record goes in `slab`. */
  private slabEnd = 0;
  private queuedRecords = 0;
  private group: Waiter | null = null;
  private writing: Waiter | null = null;
  private timer: NodeJS.Timeout | null = null;
  private scheduled = false;
  private failed: unknown = null;
  private readonly files = new Map<number, FileHandle>();
  /** Number of groups fully written; readers use it to know what is on disk. */
  groupsWritten = 0;
  groupsQueued = 0;

  constructor(private readonly o: SegmentLogOptions) {
    this.activeSeg = o.activeSeg;
    this.activeSize = o.activeSize;
    if (o.activeSize > 0) this.recordsInActive = 1;
    else this.startSegment(o.activeSeg);
  }

  get active(): number {
    return this.activeSeg;
  }

  /** The group the most recently appended record is written with; it is on disk once `groupsWritten` reaches it. */
  get lastGroup(): number {
    return this.groupsQueued;
  }

  /** Encodes and places one record; it is written with the next group. */
  append(rec: Rec): Loc {
    if (this.failed) throw this.failed;
    let size = measureRecord(rec);
    if (this.activeSize + size > this.o.segmentBytes && this.recordsInActive > 0) {
      const closed = this.activeSeg;
      const closedSize = this.activeSize;
      this.startSegment(this.activeSeg + 1);
      this.o.onRoll(closed, closedSize);
      size = measureRecord(rec); // the segment head was measured in between
    }
    return this.place(size);
  }

  private startSegment(seg: number): void {
    this.activeSeg = seg;
    this.activeSize = 0;
    this.recordsInActive = 0;
    const header = encodeHeader(seg);
    const at = this.reserve(header.length);
    header.copy(this.slab, at);
    this.queueBytes(header.length, false);
    this.place(measureRecord(this.o.segmentHead()), false);
  }

  /** Room for `size` bytes at the end of the slab; returns where. */
  private reserve(size: number): number {
    if (this.slabEnd + size > this.slab.length) {
      this.slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, size));
      this.slabEnd = 0;
    }
    const at = this.slabEnd;
    this.slabEnd += size;
    return at;
  }

  /** Writes the measured record into the slab and queues it. */
  private place(size: number, counts = true): Loc {
    const at = this.reserve(size); // first: it may start a new slab
    writeRecord(this.slab, at);
    return this.queueBytes(size, counts);
  }

  /** Queues the `size` bytes that end the slab, at the end of the active segment. */
  private queueBytes(size: number, counts: boolean): Loc {
    const loc = { seg: this.activeSeg, off: this.activeSize, len: size };
    const start = this.slabEnd - size;
    const last = this.queue[this.queue.length - 1];
    if (last && last.slab === this.slab && last.end === start && last.seg === loc.seg) last.end += size;
    else this.queue.push({ seg: loc.seg, off: loc.off, slab: this.slab, start, end: this.slabEnd });
    this.activeSize += size;
    if (counts) {
      this.recordsInActive++;
      this.queuedRecords++;
    }
    if (!this.group) {
      this.group = waiter();
      this.groupsQueued++;
    }
    this.schedule();
    return loc;
  }

  /** Resolves when everything appended so far is durable under the policy. */
  flush(): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    return (this.group ?? this.writing)?.promise ?? Promise.resolve();
  }

  private schedule(): void {
    if (this.writing || this.scheduled) return;
    // A zero window (the default batch_timeout_ms) means "whatever this event-loop turn queued":
    // setImmediate, not setTimeout(0), which Node stretches to a millisecond.
    if (this.o.fsync === 'batch' && this.queuedRecords < this.o.batchSize && this.o.batchTimeoutMs > 0) {
      this.timer ??= setTimeout(() => {
        this.timer = null;
        this.kick();
      }, this.o.batchTimeoutMs);
      return;
    }
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.kick();
    });
  }

  private kick(): void {
    if (this.writing || !this.group) return;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    void this.writeGroups();
  }

  private async writeGroups(): Promise<void> {
    while (this.group && !this.failed) {
      const chunks = this.queue;
      const w = this.group;
      this.queue = [];
      this.queuedRecords = 0;
      this.group = null;
      this.writing = w;
      try {
        await this.writeChunks(chunks);
        this.groupsWritten++;
        w.resolve();
      } catch (err) {
        this.failed = err;
        await this.rollBack(chunks);
        w.reject(err);
        (this.group as Waiter | null)?.reject(err);
        this.group = null;
        this.queue = [];
        this.writing = null;
        this.o.onFailure(err);
        return;
      }
      this.writing = null;
    }
    // Nothing queued or being written refers to the slab any more: start it again from the top.
    if (!this.failed) this.slabEnd = 0;
  }

  private async writeChunks(chunks: Chunk[]): Promise<void> {
    let created = false;
    for (const { seg, off, slab, start, end } of chunks) {
      let fh = this.files.get(seg);
      if (!fh) {
        fh = await open(segmentPath(this.o.dir, seg), segmentOpenFlags(off === 0, this.o.fsync !== 'none'));
        this.files.set(seg, fh);
        created ||= off === 0;
      }
      await this.o.io.write(fh, slab.subarray(start, end), off);
    }
    // The writes themselves were durable (O_DSYNC); a new segment also needs its directory entry.
    if (this.o.fsync !== 'none' && created) await syncDir(this.o.dir);
    // Closed segments are complete: release their write handles.
    for (const [seg, fh] of this.files) {
      if (seg !== this.activeSeg && !this.queue.some((c) => c.seg === seg)) {
        this.files.delete(seg);
        await fh.close();
      }
    }
  }

  /** Puts the files back as they were before a failed group, so no unconfirmed record survives. */
  private async rollBack(chunks: Chunk[]): Promise<void> {
    const start = new Map<number, number>();
    for (const c of chunks) if (!start.has(c.seg)) start.set(c.seg, c.off);
    for (const [seg, off] of start) {
      try {
        const fh = this.files.get(seg);
        if (off === 0) {
          await fh?.close();
          this.files.delete(seg);
          await unlink(segmentPath(this.o.dir, seg));
        } else await fh?.truncate(off);
      } catch {
        // Best effort: recovery drops a torn tail anyway.
      }
    }
  }

  /** Writes what is queued, syncs, and closes the files. */
  async close(): Promise<void> {
    if (!this.failed) {
      if (this.timer) this.kick();
      await this.flush().catch(() => undefined);
      if (this.writing) await this.writing.promise.catch(() => undefined);
      if (this.o.fsync === 'none' && !this.failed) {
        for (const fh of this.files.values()) await fh.datasync().catch(() => undefined);
      }
    }
    if (this.timer) clearTimeout(this.timer);
    for (const fh of this.files.values()) await fh.close().catch(() => undefined);
    this.files.clear();
  }
}

async function syncDir(dir: string): Promise<void> {
  // A new segment file is durable only once its directory entry is.
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
