/**
 * The `Storage` implementation every engine shares. Each operation decides from the current state, emits
 * fact records (journal, then apply), and — when it changed anything — waits until the journal reports
 * them durable. Engines differ only in how records are journaled and how message bodies are kept and loaded.
 */
import { randomBytes } from 'node:crypto';
import { MessagingError } from '../protocol/errors.ts';
import type { Loc, Rec } from './internal/records.ts';
import type { QueueState } from './internal/queue-state.ts';
import { State, type StateHooks } from './internal/state.ts';
import type { StreamState } from './internal/stream-state.ts';
import { DELAYED, IN_FLIGHT, READY } from './internal/tables.ts';
import type {
  AppendResult,
  DeadLetter,
  DeadLetterReason,
  Delivery,
  Message,
  MessageInput,
  NackOptions,
  QueueSpec,
  QueueSpecInput,
  QueueStats,
  Storage,
  StreamInfo,
  StreamReadResult,
  StreamSpec,
  StreamSpecInput,
  StreamStart,
  TickResult,
} from './types.ts';
import { checkName, normalizeMessage, normalizeQueueSpec, normalizeStreamSpec, sameSpec } from './validate.ts';

/** A body to load: its slot and the key it must still have (slots are reused). */
export interface BodyRef {
  h: number;
  key: number;
}

export abstract class BaseStorage implements Storage {
  abstract readonly engine: string;
  protected state: State;
  protected closed = false;
  /** Set while the engine rebuilds its state; operations wait for it. */
  protected gate: Promise<void> | null = null;
  /** Delivery ids carry a per-open prefix so an id from before a restart can never match a new delivery. */
  private readonly epoch = randomBytes(4).toString('hex');
  private deliverySeq = 0;

  protected constructor(protected readonly now: () => number) {
    this.state = new State(now, this.hooks());
  }

  /** Journals a record, in order; returns where it lies (the memory engine has no location). */
  protected abstract write(rec: Rec): Loc | undefined;
  /** Resolves once every record written so far is durable under the engine's policy. */
  protected abstract durable(): Promise<void>;
  protected abstract hooks(): StateHooks;
  protected abstract load(refs: BodyRef[]): Promise<(Message | undefined)[]>;
  abstract compact(): Promise<void>;
  abstract close(): Promise<void>;

  protected emit(rec: Rec): void {
    const loc = this.write(rec);
    this.state.apply(rec, loc);
  }

  protected async enter(): Promise<void> {
    if (this.gate) await this.gate;
    if (this.closed) throw new MessagingError('STORAGE_FAILURE', 'storage is closed');
  }

  private queue(name: string): QueueState {
    const q = this.state.queues.get(name);
    if (!q) throw new MessagingError('NOT_FOUND', `queue "${name}" does not exist`);
    return q;
  }

  private stream(name: string): StreamState {
    const s = this.state.streams.get(name);
    if (!s) throw new MessagingError('NOT_FOUND', `stream "${name}" does not exist`);
    return s;
  }

  // ---- queues ------------------------------------------------------------------------------------

  async declareQueue(input: QueueSpecInput): Promise<QueueSpec> {
    await this.enter();
    const spec = normalizeQueueSpec(input);
    const existing = this.state.queues.get(spec.name);
    if (existing) {
      if (sameSpec(existing.spec, spec)) return { ...existing.spec };
      throw new MessagingError('ALREADY_EXISTS', `queue "${spec.name}" exists with different settings`);
    }
    this.emit({ t: 'qdecl', spec });
    await this.durable();
    return { ...spec };
  }

  async deleteQueue(name: string): Promise<void> {
    await this.enter();
    this.queue(name);
    this.emit({ t: 'qdel', q: name });
    await this.durable();
  }

  async listQueues(): Promise<QueueSpec[]> {
    await this.enter();
    return [...this.state.queues.values()].map((q) => ({ ...q.spec })).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async getQueue(name: string): Promise<QueueSpec> {
    await this.enter();
    return { ...this.queue(name).spec };
  }

  async purgeQueue(name: string): Promise<number> {
    await this.enter();
    const q = this.queue(name);
    const n = q.nReady + q.nDelayed;
    const keep = [...q.inflightBySlot.keys()].map((slot) => this.state.keyOf(slot));
    this.emit({ t: 'qpurge', q: name, keep });
    await this.durable();
    return n;
  }

  async stats(name: string): Promise<QueueStats> {
    await this.enter();
    const q = this.queue(name);
    const now = this.now();
    this.promote(q, now);
    const oldest = this.oldestReady(q);
    return {
      queue: name,
      depth: q.nReady,
      in_flight: q.nInflight,
      delayed: q.nDelayed,
      dead_letters: q.dead.size,
      oldest_message_age_ms: oldest < 0 ? null : Math.max(0, now - this.state.bodies.ts[this.state.entries.body[oldest]!]!),
      published_total: q.published,
      acked_total: q.acked,
      dead_lettered_total: q.deadTotal,
    };
  }

  // ---- publishing --------------------------------------------------------------------------------

  append(queues: string | readonly string[], message: MessageInput): Promise<AppendResult> {
    return this.publish({ queues: typeof queues === 'string' ? [queues] : queues }, message);
  }

  streamAppend(streams: string | readonly string[], message: MessageInput): Promise<AppendResult> {
    return this.publish({ streams: typeof streams === 'string' ? [streams] : streams }, message);
  }

  async publish(targets: { queues?: readonly string[]; streams?: readonly string[] }, input: MessageInput): Promise<AppendResult> {
    await this.enter();
    const now = this.now();
    const msg = normalizeMessage(input, now);
    const qs = [...new Set(targets.queues ?? [])].map((n) => this.queue(n));
    const ss = [...new Set(targets.streams ?? [])].map((n) => this.stream(n));
    if (qs.length + ss.length === 0) throw new MessagingError('BAD_REQUEST', 'a message needs at least one queue or stream');
    // All or nothing: refuse before anything is written if one reject-publish queue is full.
    for (const q of qs) {
      const max = q.spec.max_length;
      if (max !== undefined && q.spec.overflow === 'reject-publish' && q.nReady + q.nDelayed >= max) {
        throw new MessagingError('QUEUE_FULL', `queue "${q.spec.name}" is full (${max} messages)`, { details: { queue: q.spec.name } });
      }
    }
    for (const q of qs) {
      const max = q.spec.max_length;
      if (max === undefined || q.spec.overflow !== 'drop-oldest') continue;
      this.promote(q, now);
      while (q.nReady + q.nDelayed >= max) {
        const victim = this.oldestWaiting(q);
        if (victim < 0) break;
        this.deadLetter(q, victim, 'overflow', now);
      }
    }
    const key = this.state.nextKey;
    const { payload, ...head } = msg;
    const nb = msg.deliver_at ?? 0;
    const ex = msg.ttl_ms !== undefined ? msg.timestamp + msg.ttl_ms : 0;
    const streams: Record<string, number> = {};
    for (const s of ss) streams[s.spec.name] = s.last + 1;
    this.emit({
      t: 'msg',
      key,
      head,
      payload,
      queues: qs.map((q) => ({ q: q.spec.name, o: key, dc: 0, nb, ex })),
      streams: ss.map((s) => ({ s: s.spec.name, seq: s.last + 1 })),
    });
    for (const s of ss) this.enforceRetention(s, now);
    await this.durable();
    return { id: msg.id, streams };
  }

  // ---- consuming ---------------------------------------------------------------------------------

  async take(queue: string, consumerId: string, max: number): Promise<Delivery[]> {
    await this.enter();
    const q = this.queue(queue);
    if (!Number.isSafeInteger(max) || max < 0) throw new MessagingError('BAD_REQUEST', 'max must be a non-negative integer');
    checkName('consumer', consumerId);
    const now = this.now();
    let wrote = this.maintain(q, now).wrote;
    const e = this.state.entries;
    const picked: { slot: number; id: string; dc: number; ref: { h: number; key: number } }[] = [];
    while (picked.length < max) {
      const slot = this.popReady(q);
      if (slot < 0) break;
      const ex = e.expiresAt[slot]!;
      if (ex > 0 && ex <= now) {
        this.deadLetter(q, slot, 'expired', now);
        wrote = true;
        continue;
      }
      q.nReady--;
      e.state[slot] = IN_FLIGHT;
      const dc = ++e.dc[slot]!;
      const id = `${this.epoch}-${(++this.deliverySeq).toString(36)}`;
      const f = { id, slot, consumer: consumerId, deadline: now + q.spec.ack_timeout_ms };
      q.inflight.set(id, f);
      q.inflightBySlot.set(slot, f);
      q.timeouts.push(f.deadline, slot);
      const h = e.body[slot]!;
      picked.push({ slot, id, dc, ref: { h, key: this.state.bodies.key[h]! } });
    }
    const flushed = wrote ? this.durable() : undefined;
    const messages = picked.length ? await this.load(picked.map((p) => p.ref)) : [];
    if (flushed) await flushed;
    const out: Delivery[] = [];
    picked.forEach((p, i) => {
      const message = messages[i];
      if (message && q.inflight.has(p.id)) out.push({ queue, delivery_id: p.id, delivery_count: p.dc, message });
    });
    return out;
  }

  private delivery(queue: string, consumerId: string, deliveryId: string): { q: QueueState; slot: number } {
    const q = this.queue(queue);
    const f = q.inflight.get(deliveryId);
    if (!f || f.consumer !== consumerId) {
      throw new MessagingError('UNKNOWN_DELIVERY', `delivery "${deliveryId}" is unknown, settled, or not held by this consumer`);
    }
    return { q, slot: f.slot };
  }

  async ack(queue: string, consumerId: string, deliveryId: string): Promise<void> {
    await this.enter();
    const { slot } = this.delivery(queue, consumerId, deliveryId);
    this.emit({ t: 'ack', q: queue, key: this.state.keyOf(slot) });
    await this.durable();
  }

  async nack(queue: string, consumerId: string, deliveryId: string, options: NackOptions): Promise<void> {
    await this.enter();
    const { q, slot } = this.delivery(queue, consumerId, deliveryId);
    const delay = options.delay_ms ?? 0;
    if (!Number.isFinite(delay) || delay < 0) throw new MessagingError('BAD_REQUEST', 'delay_ms must be >= 0');
    const now = this.now();
    if (!options.requeue) this.deadLetter(q, slot, 'rejected', now, options.error);
    else this.failedDelivery(q, slot, now, delay, options.error);
    await this.durable();
  }

  async touch(queue: string, consumerId: string, deliveryId: string): Promise<void> {
    await this.enter();
    const { q, slot } = this.delivery(queue, consumerId, deliveryId);
    const f = q.inflightBySlot.get(slot)!;
    f.deadline = this.now() + q.spec.ack_timeout_ms;
    q.timeouts.push(f.deadline, slot);
  }

  async releaseConsumer(consumerId: string): Promise<number> {
    await this.enter();
    const now = this.now();
    let n = 0;
    for (const q of this.state.queues.values()) {
      for (const f of [...q.inflight.values()]) {
        if (f.consumer !== consumerId) continue;
        this.failedDelivery(q, f.slot, now, 0, 'consumer released');
        n++;
      }
    }
    if (n) await this.durable();
    return n;
  }

  async tick(): Promise<TickResult> {
    await this.enter();
    const now = this.now();
    let wrote = false;
    let redelivered = 0;
    let dead = 0;
    let next = Infinity;
    const readyQueues: string[] = [];
    for (const q of this.state.queues.values()) {
      const deadBefore = q.deadTotal;
      const m = this.maintain(q, now);
      wrote ||= m.wrote;
      redelivered += m.redelivered;
      // TTL expiry of waiting messages: they must reach the dead letters even if nobody consumes.
      while (q.ttl.size && q.ttl.peekKey() <= now) {
        const ex = q.ttl.peekKey();
        const slot = q.ttl.peekVal();
        q.ttl.pop();
        if (!this.state.isTtlPair(q, ex, slot)) continue;
        this.deadLetter(q, slot, 'expired', now);
        wrote = true;
      }
      dead += q.deadTotal - deadBefore;
      if (m.readied && q.nReady > 0) readyQueues.push(q.spec.name);
      this.state.compactHeaps(q);
      next = Math.min(next, this.cleanTop(q));
    }
    for (const s of this.state.streams.values()) {
      wrote = this.enforceRetention(s, now) || wrote;
      if (s.spec.max_age_ms !== undefined && s.count > 0) {
        const first = s.nextPresent(s.first);
        next = Math.min(next, this.state.bodies.ts[s.get(first)]! + s.spec.max_age_ms + 1);
      }
    }
    if (wrote) await this.durable();
    return { redelivered, dead_lettered: dead, ready_queues: readyQueues, next_due_at: next === Infinity ? null : next };
  }

  // ---- dead letters ------------------------------------------------------------------------------

  private deadKeys(q: QueueState): number[] {
    if (!q.deadUnordered) return [...q.dead.keys()];
    return [...q.dead.entries()].sort(([ka, a], [kb, b]) => a.at - b.at || ka - kb).map(([k]) => k);
  }

  async listDeadLetters(queue: string, options: { limit?: number; offset?: number } = {}): Promise<DeadLetter[]> {
    await this.enter();
    const q = this.queue(queue);
    const limit = options.limit ?? 100;
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(limit) || limit < 0 || !Number.isSafeInteger(offset) || offset < 0) {
      throw new MessagingError('BAD_REQUEST', 'limit and offset must be non-negative integers');
    }
    const keys = this.deadKeys(q).slice(offset, offset + limit);
    const infos = keys.map((k) => q.dead.get(k)!);
    const messages = await this.load(infos.map((d, i) => ({ h: this.state.entries.body[d.slot]!, key: keys[i]! })));
    const out: DeadLetter[] = [];
    infos.forEach((d, i) => {
      const message = messages[i];
      if (!message) return;
      const dl: DeadLetter = {
        id: String(keys[i]),
        queue,
        reason: d.reason,
        failures: d.failures,
        dead_lettered_at: d.at,
        message,
      };
      if (d.error !== undefined) dl.last_error = d.error;
      out.push(dl);
    });
    return out;
  }

  async replayDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    await this.enter();
    const q = this.queue(queue);
    let keys: number[];
    if (ids === undefined) keys = this.deadKeys(q);
    else {
      const wanted = new Set(ids);
      keys = [];
      const byMessageId: number[] = [];
      for (const id of ids) {
        const k = /^\d+$/.test(id) ? Number(id) : NaN;
        if (q.dead.has(k)) keys.push(k);
      }
      if (keys.length < wanted.size) {
        // Not every id is a dead-letter id: match the rest against message ids (loads the bodies).
        const all = this.deadKeys(q);
        const msgs = await this.load(all.map((k) => ({ h: this.state.entries.body[q.dead.get(k)!.slot]!, key: k })));
        all.forEach((k, i) => {
          const id = msgs[i]?.id;
          if (id !== undefined && wanted.has(id)) byMessageId.push(k);
        });
      }
      keys = [...new Set([...keys, ...byMessageId])].filter((k) => q.dead.has(k));
    }
    if (keys.length === 0) return 0;
    const base = this.state.nextKey;
    this.emit({ t: 'replay', q: queue, items: keys.map((key, i) => ({ key, o: base + i })) });
    await this.durable();
    return keys.length;
  }

  async purgeDeadLetters(queue: string, options: { olderThanMs?: number } = {}): Promise<number> {
    await this.enter();
    const q = this.queue(queue);
    const cutoff = options.olderThanMs === undefined ? Infinity : this.now() - options.olderThanMs;
    const keys: number[] = [];
    for (const [k, d] of q.dead) if (d.at < cutoff) keys.push(k);
    if (keys.length === 0) return 0;
    this.emit({ t: 'dlpurge', q: queue, keys });
    await this.durable();
    return keys.length;
  }

  // ---- streams -----------------------------------------------------------------------------------

  async declareStream(input: StreamSpecInput): Promise<StreamSpec> {
    await this.enter();
    const spec = normalizeStreamSpec(input);
    const existing = this.state.streams.get(spec.name);
    if (existing) {
      if (sameSpec(existing.spec, spec)) return { ...existing.spec };
      throw new MessagingError('ALREADY_EXISTS', `stream "${spec.name}" exists with different settings`);
    }
    this.emit({ t: 'sdecl', spec });
    await this.durable();
    return { ...spec };
  }

  async deleteStream(name: string): Promise<void> {
    await this.enter();
    this.stream(name);
    this.emit({ t: 'sdel', s: name });
    await this.durable();
  }

  private info(s: StreamState): StreamInfo {
    return {
      ...s.spec,
      first_seq: s.first,
      last_seq: s.last,
      messages: s.count,
      bytes: s.bytes,
      readers: Object.fromEntries(s.readers),
    };
  }

  async listStreams(): Promise<StreamInfo[]> {
    await this.enter();
    this.retainAll();
    return [...this.state.streams.values()].map((s) => this.info(s)).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async getStream(name: string): Promise<StreamInfo> {
    await this.enter();
    const s = this.stream(name);
    if (this.enforceRetention(s, this.now())) this.flushInBackground();
    return this.info(s);
  }

  async streamRead(stream: string, options: { from: StreamStart; max: number }): Promise<StreamReadResult> {
    await this.enter();
    const s = this.stream(stream);
    const max = options.max;
    if (!Number.isSafeInteger(max) || max < 0) throw new MessagingError('BAD_REQUEST', 'max must be a non-negative integer');
    // Reads never return what retention has already condemned.
    if (this.enforceRetention(s, this.now())) this.flushInBackground();
    let seq = Math.max(this.startSeq(s, options.from), s.first);
    const refs: { seq: number; h: number; key: number }[] = [];
    for (seq = s.nextPresent(seq); refs.length < max && seq <= s.last; seq = s.nextPresent(seq + 1)) {
      const h = s.get(seq);
      refs.push({ seq, h, key: this.state.bodies.key[h]! });
    }
    const next = refs.length ? refs[refs.length - 1]!.seq + 1 : Math.min(seq, s.last + 1);
    const msgs = refs.length ? await this.load(refs) : [];
    const messages: StreamReadResult['messages'] = [];
    refs.forEach((r, i) => {
      const m = msgs[i];
      if (m) messages.push({ seq: r.seq, message: m });
    });
    return { messages, next_seq: next, first_seq: s.first, last_seq: s.last };
  }

  private startSeq(s: StreamState, from: StreamStart): number {
    if (from === 'earliest') return s.first;
    if (from === 'latest') return s.last + 1;
    if (from === 'last') return s.count > 0 ? s.last : s.last + 1;
    if (typeof from === 'object' && from !== null) {
      if ('seq' in from && Number.isSafeInteger(from.seq) && from.seq >= 0) return from.seq;
      if ('reader' in from && typeof from.reader === 'string') {
        const pos = s.readers.get(from.reader);
        if (pos === undefined) throw new MessagingError('NOT_FOUND', `reader "${from.reader}" does not exist`);
        return pos;
      }
      if ('time' in from && Number.isFinite(from.time)) return this.seqAtTime(s, from.time);
    }
    throw new MessagingError('BAD_REQUEST', 'from must be earliest, latest, last, {seq}, {time} or {reader}');
  }

  /** First sequence whose message timestamp is ≥ time (binary search: stream timestamps ascend). */
  private seqAtTime(s: StreamState, time: number): number {
    let lo = s.first;
    let hi = s.last + 1;
    while (lo < hi) {
      const mid = lo + Math.floor((hi - lo) / 2);
      const p = s.nextPresent(mid);
      if (p > s.last) hi = mid;
      else if (this.state.bodies.ts[s.get(p)]! >= time) hi = mid;
      else lo = p + 1;
    }
    return lo;
  }

  async setReaderPosition(stream: string, reader: string, nextSeq: number): Promise<void> {
    await this.enter();
    this.stream(stream);
    checkName('reader', reader);
    if (!Number.isSafeInteger(nextSeq) || nextSeq < 0) throw new MessagingError('BAD_REQUEST', 'position must be a non-negative integer');
    this.emit({ t: 'reader', s: stream, r: reader, pos: nextSeq });
    await this.durable();
  }

  async getReaderPosition(stream: string, reader: string): Promise<number | undefined> {
    await this.enter();
    return this.stream(stream).readers.get(reader);
  }

  async deleteReader(stream: string, reader: string): Promise<void> {
    await this.enter();
    const s = this.stream(stream);
    if (!s.readers.has(reader)) return;
    this.emit({ t: 'reader', s: stream, r: reader, pos: null });
    await this.durable();
  }

  // ---- internals ---------------------------------------------------------------------------------

  /** Retention writes triggered by reads need not delay the read; failures surface on the next write. */
  private flushInBackground(): void {
    this.durable().catch(() => undefined);
  }

  private retainAll(): void {
    const now = this.now();
    let wrote = false;
    for (const s of this.state.streams.values()) wrote = this.enforceRetention(s, now) || wrote;
    if (wrote) this.flushInBackground();
  }

  /** Trims the stream to its limits; returns whether it wrote a record. */
  protected enforceRetention(s: StreamState, now: number): boolean {
    const { max_msgs: maxMsgs, max_bytes: maxBytes, max_age_ms: maxAge } = s.spec;
    if (maxMsgs === undefined && maxBytes === undefined && maxAge === undefined) return false;
    const b = this.state.bodies;
    let count = s.count;
    let bytes = s.bytes;
    let first = s.first;
    for (let seq = s.nextPresent(s.first); seq <= s.last; seq = s.nextPresent(seq + 1)) {
      const h = s.get(seq);
      const over =
        (maxMsgs !== undefined && count > maxMsgs) ||
        (maxBytes !== undefined && bytes > maxBytes) ||
        (maxAge !== undefined && b.ts[h]! <= now - maxAge);
      if (!over) break;
      count--;
      bytes -= b.size[h]!;
      first = seq + 1;
    }
    if (first <= s.first) return false;
    this.emit({ t: 'trim', s: s.spec.name, first });
    return true;
  }

  private deadLetter(q: QueueState, slot: number, reason: DeadLetterReason, now: number, error?: string): void {
    const rec: Rec = { t: 'dead', q: q.spec.name, key: this.state.keyOf(slot), dc: this.state.entries.dc[slot]!, reason, at: now };
    if (error !== undefined) rec.error = error;
    this.emit(rec);
  }

  /** A delivery failed (nack, timeout, consumer gone): back to the queue, or dead after max_deliveries. */
  private failedDelivery(q: QueueState, slot: number, now: number, delayMs: number, error?: string): void {
    const dc = this.state.entries.dc[slot]!;
    if (q.spec.max_deliveries > 0 && dc >= q.spec.max_deliveries) {
      this.deadLetter(q, slot, 'max_deliveries', now, error);
      return;
    }
    this.emit({ t: 'requeue', q: q.spec.name, key: this.state.keyOf(slot), dc, nb: delayMs > 0 ? now + delayMs : 0 });
  }

  /** Ack timeouts and due delays of one queue. */
  private maintain(q: QueueState, now: number): { wrote: boolean; redelivered: number; readied: boolean } {
    let wrote = false;
    let redelivered = 0;
    let readied = false;
    while (q.timeouts.size && q.timeouts.peekKey() <= now) {
      const deadline = q.timeouts.peekKey();
      const slot = q.timeouts.peekVal();
      q.timeouts.pop();
      const f = q.inflightBySlot.get(slot);
      if (!f || f.deadline !== deadline) continue;
      const before = q.deadTotal;
      this.failedDelivery(q, slot, now, 0, 'ack timeout');
      wrote = true;
      if (q.deadTotal === before) {
        redelivered++;
        readied = true;
      }
    }
    if (this.promote(q, now)) readied = true;
    return { wrote, redelivered, readied };
  }

  /** Delayed entries whose time has come become ready; not a journaled fact (replay decides by the clock). */
  private promote(q: QueueState, now: number): boolean {
    const e = this.state.entries;
    let any = false;
    while (q.delayed.size && q.delayed.peekKey() <= now) {
      const nb = q.delayed.peekKey();
      const slot = q.delayed.peekVal();
      q.delayed.pop();
      if (!this.state.isDelayedPair(q, nb, slot)) continue;
      e.state[slot] = READY;
      q.nDelayed--;
      q.nReady++;
      q.ready[e.prio[slot]!]!.push(e.order[slot]!, slot);
      any = true;
    }
    return any;
  }

  /** Pops the next ready entry (highest priority, lowest order) or returns -1. */
  private popReady(q: QueueState): number {
    for (let p = q.ready.length - 1; p >= 0; p--) {
      const heap = q.ready[p]!;
      while (heap.size) {
        const order = heap.peekKey();
        const slot = heap.peekVal();
        heap.pop();
        if (this.state.isReadyPair(q, order, slot)) return slot;
      }
    }
    return -1;
  }

  /** The oldest ready entry without removing it, or -1. */
  private oldestReady(q: QueueState): number {
    let best = -1;
    let bestOrder = Infinity;
    for (const heap of q.ready) {
      while (heap.size && !this.state.isReadyPair(q, heap.peekKey(), heap.peekVal())) heap.pop();
      if (heap.size && heap.peekKey() < bestOrder) {
        bestOrder = heap.peekKey();
        best = heap.peekVal();
      }
    }
    return best;
  }

  /** Oldest waiting entry (ready first, else delayed) for drop-oldest overflow. */
  private oldestWaiting(q: QueueState): number {
    const ready = this.oldestReady(q);
    if (ready >= 0) return ready;
    // Only delayed entries remain: rare enough for a scan.
    const e = this.state.entries;
    let best = -1;
    for (let s = 0; s < e.limit; s++) {
      if (e.state[s] === DELAYED && e.queue[s] === q.id && (best < 0 || e.order[s]! < e.order[best]!)) best = s;
    }
    return best;
  }

  /** Drops stale heap tops and returns the earliest pending due time of the queue. */
  private cleanTop(q: QueueState): number {
    let next = Infinity;
    while (q.delayed.size && !this.state.isDelayedPair(q, q.delayed.peekKey(), q.delayed.peekVal())) q.delayed.pop();
    if (q.delayed.size) next = Math.min(next, q.delayed.peekKey());
    while (q.ttl.size && !this.state.isTtlPair(q, q.ttl.peekKey(), q.ttl.peekVal())) q.ttl.pop();
    if (q.ttl.size) next = Math.min(next, q.ttl.peekKey());
    while (q.timeouts.size && q.inflightBySlot.get(q.timeouts.peekVal())?.deadline !== q.timeouts.peekKey()) q.timeouts.pop();
    if (q.timeouts.size) next = Math.min(next, q.timeouts.peekKey());
    return next;
  }
}
