/**
 * The one state machine every engine shares: queues, priorities, delays, TTLs, deliveries, dead letters
 * and stream indexes. It changes only through `apply(record)`, live and during replay alike, so an engine
 * that journals the records and replays them on open gets back exactly the state it had (deliveries
 * aside: those are not facts worth an fsync, and after a restart they are simply ready again).
 */
import type { Message, QueueSpec } from '../types.ts';
import { KeyIndex } from './key-index.ts';
import { QueueState, type DeadInfo } from './queue-state.ts';
import type { EntryFact, Loc, MessageHead, QueueMeta, Rec, StreamMeta } from './records.ts';
import { StreamState } from './stream-state.ts';
import { TaskTable } from './task-state.ts';
import { BodyTable, DEAD, DELAYED, EntryTable, FREE, IN_FLIGHT, READY } from './tables.ts';

export type MsgRec = Extract<Rec, { t: 'msg' }>;

/** How an engine follows message bodies: the memory engine keeps payloads, the file engine counts bytes per segment. */
export interface StateHooks {
  bodyAdded(h: number, rec: MsgRec): void;
  bodyFreed(h: number): void;
  bodyMoved(h: number, fromSeg: number, fromLen: number): void;
  /** A record in `recordSeg` changed a message stored in `bodySeg`. */
  referenced(recordSeg: number, bodySeg: number): void;
  /** A task's whole-state record now lies in `seg` (it counts as live there, like a message body). */
  taskStored?(seg: number, len: number): void;
  taskFreed?(seg: number, len: number): void;
}

/** Size used for stream byte retention; engine-independent so every engine trims alike. */
export function messageSize(head: Pick<Message, 'topic' | 'headers'>, payloadBytes: number): number {
  let n = payloadBytes + head.topic.length;
  for (const k in head.headers) n += k.length + (head.headers[k]?.length ?? 0);
  return n;
}

export class State {
  readonly bodies = new BodyTable();
  readonly entries = new EntryTable();
  /** Message key → body slot. */
  readonly keys = new KeyIndex(this.bodies);
  readonly queues = new Map<string, QueueState>();
  readonly streams = new Map<string, StreamState>();
  readonly tasks: TaskTable;
  private readonly queueById: (QueueState | undefined)[] = [];
  nextKey = 1;

  constructor(
    readonly now: () => number,
    private readonly hooks: StateHooks,
  ) {
    this.tasks = new TaskTable({
      stored: (seg, len) => hooks.taskStored?.(seg, len),
      freed: (seg, len) => hooks.taskFreed?.(seg, len),
      referenced: (recordSeg, homeSeg) => hooks.referenced(recordSeg, homeSeg),
    });
  }

  queueOf(slot: number): QueueState | undefined {
    return this.queueById[this.entries.queue[slot]!];
  }

  /** The entry of message `key` in `q`, or -1. */
  entryOf(key: number, q: QueueState): number {
    const h = this.keys.get(key);
    if (h === undefined) return -1;
    for (let s = this.bodies.firstEntry[h]!; s >= 0; s = this.entries.next[s]!) {
      if (this.entries.queue[s] === q.id) return s;
    }
    return -1;
  }

  keyOf(slot: number): number {
    return this.bodies.key[this.entries.body[slot]!]!;
  }

  /** The entry's FIFO position in its queue: the message key unless a replay gave it another. */
  orderOf(slot: number): number {
    const r = this.entries.reordered;
    if (r.size) {
      const o = r.get(slot);
      if (o !== undefined) return o;
    }
    return this.keyOf(slot);
  }

  private setOrder(slot: number, order: number): void {
    const r = this.entries.reordered;
    if (order !== this.keyOf(slot)) r.set(slot, order);
    else if (r.size) r.delete(slot);
  }

  apply(rec: Rec, loc?: Loc): void {
    switch (rec.t) {
      case 'meta':
        return this.applyMeta(rec);
      case 'qdecl': {
        const q = this.queues.get(rec.spec.name);
        if (q) q.spec = rec.spec;
        else this.createQueue(rec.spec);
        return;
      }
      case 'qdel':
        return this.deleteQueue(rec.q, loc);
      case 'qpurge':
        return this.purge(rec.q, new Set(rec.keep), loc);
      case 'sdecl': {
        const s = this.streams.get(rec.spec.name);
        if (s) s.spec = rec.spec;
        else this.streams.set(rec.spec.name, new StreamState(rec.spec));
        return;
      }
      case 'sdel':
        return this.deleteStream(rec.s, loc);
      case 'msg':
        return this.applyMsg(rec, loc);
      case 'ack': {
        const q = this.queues.get(rec.q);
        if (q) this.applyAck(q, rec.key, loc);
        return;
      }
      case 'acks': {
        const q = this.queues.get(rec.q);
        if (q) for (const key of rec.keys) this.applyAck(q, key, loc);
        return;
      }
      case 'requeue': {
        const q = this.queues.get(rec.q);
        const slot = q ? this.entryOf(rec.key, q) : -1;
        if (!q || slot < 0) return;
        this.touch(slot, loc);
        this.detach(slot, q);
        this.entries.dc[slot] = rec.dc;
        this.entries.setNotBefore(slot, rec.nb);
        this.attachWaiting(slot, q);
        return;
      }
      case 'dead': {
        const q = this.queues.get(rec.q);
        if (!q) return;
        q.deadTotal++;
        const slot = this.entryOf(rec.key, q);
        if (slot < 0) return;
        this.touch(slot, loc);
        this.detach(slot, q);
        this.entries.dc[slot] = rec.dc;
        this.attachDead(slot, q, {
          slot,
          reason: rec.reason,
          failures: rec.dc,
          error: rec.error,
          at: rec.at,
        });
        return;
      }
      case 'replay': {
        const q = this.queues.get(rec.q);
        if (!q) return;
        for (const it of rec.items) {
          const slot = this.entryOf(it.key, q);
          if (slot < 0 || this.entries.state[slot] !== DEAD) continue;
          this.touch(slot, loc);
          this.detach(slot, q);
          // A replayed message starts over: new FIFO position, no attempts, no TTL (it may have expired).
          this.setOrder(slot, it.o);
          this.entries.dc[slot] = 0;
          this.entries.setNotBefore(slot, 0);
          this.entries.setExpiresAt(slot, 0);
          if (it.o >= this.nextKey) this.nextKey = it.o + 1;
          this.attachWaiting(slot, q);
        }
        return;
      }
      case 'dlpurge': {
        const q = this.queues.get(rec.q);
        if (!q) return;
        for (const key of rec.keys) {
          const slot = this.entryOf(key, q);
          if (slot < 0 || this.entries.state[slot] !== DEAD) continue;
          this.touch(slot, loc);
          this.detach(slot, q);
          this.freeEntry(slot);
        }
        return;
      }
      case 'trim': {
        const s = this.streams.get(rec.s);
        if (s) this.trim(s, rec.first, loc);
        return;
      }
      case 'reader': {
        const s = this.streams.get(rec.s);
        if (!s) return;
        if (rec.pos === null) s.readers.delete(rec.r);
        else s.readers.set(rec.r, rec.pos);
        return;
      }
      case 'task':
        return this.tasks.apply(rec, loc);
      case 'sched':
        return this.tasks.applySchedule(rec.put, rec.del);
    }
  }

  /** The control state as one record: heads every journal segment. */
  snapshot(): Extract<Rec, { t: 'meta' }> {
    const queues: QueueMeta[] = [...this.queues.values()].map((q) => ({
      spec: q.spec,
      published: q.published,
      acked: q.acked,
      dead: q.deadTotal,
    }));
    const streams: StreamMeta[] = [...this.streams.values()].map((s) => ({
      spec: s.spec,
      first: s.first,
      last: s.last,
      readers: Object.fromEntries(s.readers),
    }));
    const schedules = [...this.tasks.schedules.values()].map((s) => ({ ...s }));
    return { t: 'meta', next: this.nextKey, queues, streams, schedules };
  }

  // ---- transitions -------------------------------------------------------------------------------

  /** Takes the entry out of whatever state it is in (heap pairs go stale and are dropped lazily). */
  detach(slot: number, q: QueueState): void {
    const e = this.entries;
    switch (e.state[slot]) {
      case READY:
        q.nReady--;
        break;
      case DELAYED:
        q.nDelayed--;
        break;
      case IN_FLIGHT: {
        const f = q.inflightBySlot.get(slot);
        if (f) {
          q.inflightBySlot.delete(slot);
          q.inflight.delete(f.id);
        }
        break;
      }
      case DEAD:
        q.dead.delete(this.keyOf(slot));
        if (q.dead.size === 0) q.deadUnordered = false;
        break;
    }
    e.state[slot] = FREE;
  }

  /** Ready, or delayed while its not-before lies ahead. */
  attachWaiting(slot: number, q: QueueState): void {
    const e = this.entries;
    const nb = e.notBeforeOf(slot);
    if (nb > this.now()) {
      e.state[slot] = DELAYED;
      q.delayed.push(nb, slot);
      q.nDelayed++;
    } else {
      e.state[slot] = READY;
      q.ready[e.prio[slot]!]!.push(this.orderOf(slot), slot);
      q.nReady++;
    }
    const ex = e.expiresAtOf(slot);
    if (ex > 0) q.ttl.push(ex, slot);
  }

  attachDead(slot: number, q: QueueState, info: DeadInfo): void {
    this.entries.state[slot] = DEAD;
    const key = this.keyOf(slot);
    q.dead.set(key, info);
    if (info.at < q.lastDeadAt || (info.at === q.lastDeadAt && key < q.lastDeadKey)) q.deadUnordered = true;
    else {
      q.lastDeadAt = info.at;
      q.lastDeadKey = key;
    }
  }

  /** Removes an entry; the body goes when nothing references it any more. */
  freeEntry(slot: number): void {
    const e = this.entries;
    const h = e.body[slot]!;
    const b = this.bodies;
    if (b.firstEntry[h] === slot) b.firstEntry[h] = e.next[slot]!;
    else {
      for (let s = b.firstEntry[h]!; s >= 0; s = e.next[s]!) {
        if (e.next[s] === slot) {
          e.next[s] = e.next[slot]!;
          break;
        }
      }
    }
    e.release(slot);
    this.unref(h);
  }

  private unref(h: number): void {
    const b = this.bodies;
    if (--b.refs[h]! > 0) return;
    this.hooks.bodyFreed(h);
    this.keys.delete(b.key[h]!);
    b.release(h);
  }

  private touch(slot: number, loc: Loc | undefined): void {
    if (loc) this.touchBody(this.entries.body[slot]!, loc);
  }

  private touchBody(h: number, loc: Loc | undefined): void {
    if (loc && this.bodies.seg[h] !== loc.seg) this.hooks.referenced(loc.seg, this.bodies.seg[h]!);
  }

  // ---- record appliers ---------------------------------------------------------------------------

  private createQueue(spec: QueueSpec): QueueState {
    const q = new QueueState(this.queueById.length, spec);
    this.queueById.push(q);
    this.queues.set(spec.name, q);
    return q;
  }

  private applyAck(q: QueueState, key: number, loc: Loc | undefined): void {
    // Counted even when compaction already dropped the message: the ack happened.
    q.acked++;
    const slot = this.entryOf(key, q);
    if (slot < 0) return;
    this.touch(slot, loc);
    this.detach(slot, q);
    this.freeEntry(slot);
  }

  private applyMsg(rec: MsgRec, loc: Loc | undefined): void {
    const b = this.bodies;
    // A key at or past `nextKey` was never seen: skip the lookup (nearly every publish and replayed message).
    const known = rec.key < this.nextKey ? this.keys.get(rec.key) : undefined;
    if (known !== undefined) {
      // Compaction rewrote a message we already hold: only its location changes.
      if (rec.carried && loc) {
        const fromSeg = b.seg[known]!;
        const fromLen = b.len[known]!;
        b.seg[known] = loc.seg;
        b.off[known] = loc.off;
        b.len[known] = loc.len;
        this.hooks.bodyMoved(known, fromSeg, fromLen);
      }
      return;
    }
    if (rec.key >= this.nextKey) this.nextKey = rec.key + 1;
    const h = b.alloc();
    b.key[h] = rec.key;
    b.ts[h] = rec.head.timestamp;
    if (rec.streams.length) b.setSize(h, messageSize(rec.head, rec.payload?.byteLength ?? 0));
    b.seg[h] = loc?.seg ?? 0;
    b.off[h] = loc?.off ?? 0;
    b.len[h] = loc?.len ?? 0;
    this.keys.set(rec.key, h);
    for (const f of rec.queues) {
      const q = this.queues.get(f.q);
      if (!q) continue;
      this.addEntry(h, q, rec.head, f);
      if (!rec.carried) q.published++;
    }
    for (const { s: name, seq } of rec.streams) {
      const s = this.streams.get(name);
      if (!s || seq < s.first || !s.set(seq, h)) continue;
      b.refs[h]!++;
      s.bytes += b.sizeOf(h);
      if (seq > s.last) s.last = seq;
    }
    if (b.refs[h] === 0) {
      this.keys.delete(rec.key);
      b.release(h);
      return;
    }
    this.hooks.bodyAdded(h, rec);
  }

  private addEntry(h: number, q: QueueState, head: MessageHead, f: EntryFact): void {
    const e = this.entries;
    const slot = e.alloc();
    e.body[slot] = h;
    this.setOrder(slot, f.o);
    e.next[slot] = this.bodies.firstEntry[h]!;
    this.bodies.firstEntry[h] = slot;
    e.queue[slot] = q.id;
    e.prio[slot] = head.priority;
    e.dc[slot] = f.dc;
    e.setNotBefore(slot, f.nb);
    e.setExpiresAt(slot, f.ex);
    e.state[slot] = FREE;
    this.bodies.refs[h]!++;
    if (f.dead) {
      this.attachDead(slot, q, {
        slot,
        reason: f.dead.reason,
        failures: f.dc,
        error: f.dead.error,
        at: f.dead.at,
      });
    } else this.attachWaiting(slot, q);
  }

  private deleteQueue(name: string, loc: Loc | undefined): void {
    const q = this.queues.get(name);
    if (!q) return;
    const e = this.entries;
    for (let slot = 0; slot < e.limit; slot++) {
      if (e.state[slot] === FREE || e.queue[slot] !== q.id) continue;
      this.touch(slot, loc);
      this.freeEntry(slot);
    }
    this.queues.delete(name);
    this.queueById[q.id] = undefined;
  }

  private purge(name: string, keep: Set<number>, loc: Loc | undefined): void {
    const q = this.queues.get(name);
    if (!q) return;
    const e = this.entries;
    for (let slot = 0; slot < e.limit; slot++) {
      if (e.queue[slot] !== q.id) continue;
      const st = e.state[slot];
      if ((st !== READY && st !== DELAYED) || keep.has(this.keyOf(slot))) continue;
      this.touch(slot, loc);
      this.detach(slot, q);
      this.freeEntry(slot);
    }
    this.compactHeaps(q, true);
  }

  private deleteStream(name: string, loc: Loc | undefined): void {
    const s = this.streams.get(name);
    if (!s) return;
    for (const [, h] of s.entries()) {
      this.touchBody(h, loc);
      this.unref(h);
    }
    this.streams.delete(name);
  }

  private trim(s: StreamState, first: number, loc: Loc | undefined): void {
    for (let seq = s.nextPresent(s.first); seq < first && seq <= s.last; seq = s.nextPresent(seq + 1)) {
      const h = s.clear(seq);
      if (h < 0) continue;
      this.touchBody(h, loc);
      s.bytes -= this.bodies.sizeOf(h);
      this.unref(h);
    }
    if (first > s.first) s.first = first;
    if (s.first > s.last + 1) s.last = s.first - 1;
    s.dropChunksBelow(s.first);
  }

  private applyMeta(rec: Extract<Rec, { t: 'meta' }>): void {
    if (rec.next > this.nextKey) this.nextKey = rec.next;
    if (rec.schedules) this.tasks.resetSchedules(rec.schedules);
    // A queue or stream missing from the snapshot was deleted by a record that compaction has since dropped.
    const queueNames = new Set(rec.queues.map((m) => m.spec.name));
    for (const name of [...this.queues.keys()]) if (!queueNames.has(name)) this.deleteQueue(name, undefined);
    for (const m of rec.queues) {
      const q = this.queues.get(m.spec.name) ?? this.createQueue(m.spec);
      q.spec = m.spec;
      q.published = m.published;
      q.acked = m.acked;
      q.deadTotal = m.dead;
    }
    const streamNames = new Set(rec.streams.map((m) => m.spec.name));
    for (const name of [...this.streams.keys()])
      if (!streamNames.has(name)) this.deleteStream(name, undefined);
    for (const m of rec.streams) {
      let s = this.streams.get(m.spec.name);
      if (!s) {
        s = new StreamState(m.spec);
        s.first = m.first;
        this.streams.set(m.spec.name, s);
      }
      s.spec = m.spec;
      if (m.last > s.last) s.last = m.last;
      this.trim(s, m.first, undefined);
      s.readers.clear();
      for (const [r, pos] of Object.entries(m.readers)) s.readers.set(r, pos);
    }
  }

  // ---- heap hygiene ------------------------------------------------------------------------------

  isReadyPair(q: QueueState, order: number, slot: number): boolean {
    const e = this.entries;
    return e.state[slot] === READY && e.queue[slot] === q.id && this.orderOf(slot) === order;
  }

  isDelayedPair(q: QueueState, nb: number, slot: number): boolean {
    const e = this.entries;
    return e.state[slot] === DELAYED && e.queue[slot] === q.id && e.notBeforeOf(slot) === nb;
  }

  isTtlPair(q: QueueState, ex: number, slot: number): boolean {
    const e = this.entries;
    const st = e.state[slot];
    return (st === READY || st === DELAYED) && e.queue[slot] === q.id && e.expiresAtOf(slot) === ex;
  }

  /** Rebuilds heaps whose stale pairs outnumber live ones, so lazy deletion cannot leak memory. */
  compactHeaps(q: QueueState, force = false): void {
    const slack = force ? 0 : 1024;
    if (q.readyHeapSize > 2 * q.nReady + slack) {
      for (const h of q.ready) h.retain((k, v) => this.isReadyPair(q, k, v));
    }
    if (q.delayed.size > 2 * q.nDelayed + slack) q.delayed.retain((k, v) => this.isDelayedPair(q, k, v));
    if (q.ttl.size > 2 * (q.nReady + q.nDelayed) + slack) q.ttl.retain((k, v) => this.isTtlPair(q, k, v));
    if (q.timeouts.size > 2 * q.nInflight + slack) {
      q.timeouts.retain((k, v) => q.inflightBySlot.get(v)?.deadline === k);
    }
  }
}
