/**
 * The queue half of the `Storage` implementation every engine shares (declarations, publishing,
 * consuming, housekeeping); `engine.ts` adds dead letters and streams. Each operation decides from the
 * current state, emits fact records (journal, then apply), and — when it changed anything — waits until
 * the journal reports them durable. Engines differ only in how records are journaled and how message
 * bodies are kept and loaded.
 */
import { randomBytes } from 'node:crypto';
import { MessagingError } from '../protocol/errors.ts';
import { headOf, type Loc, type Rec } from './internal/records.ts';
import type { InFlight, QueueState } from './internal/queue-state.ts';
import { State, type StateHooks } from './internal/state.ts';
import type { StreamState } from './internal/stream-state.ts';
import {
  nextDue,
  oldestReady,
  oldestWaiting,
  popReady,
  promote,
  retentionPoint,
} from './internal/scheduling.ts';
import { IN_FLIGHT } from './internal/tables.ts';
import type {
  AppendResult,
  DeadLetterReason,
  Delivery,
  Message,
  MessageInput,
  NackOptions,
  PublishNow,
  QueueSpec,
  QueueSpecInput,
  QueueStats,
  TickResult,
} from './types.ts';
import { normalizeMessage, normalizeQueueSpec, sameSpec, unknownDelivery } from './validate.ts';

/** A body to load: its slot and the key it must still have (slots are reused). */
export interface BodyRef {
  h: number;
  key: number;
}

export abstract class QueueEngine {
  abstract readonly engine: string;
  protected state: State;
  protected closed = false;
  /** Set while the engine rebuilds its state; operations wait for it. */
  protected gate: Promise<void> | null = null;
  /**
   * The whole message while `publish` journals it: an engine that keeps bodies can keep this object
   * instead of rebuilding it from the record's head and payload.
   */
  protected appending: Message | undefined;
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
  /** `delivered`: the bodies are read for queue deliveries (an engine with a cache may drop them from it). */
  protected abstract load(refs: BodyRef[], delivered?: boolean): Promise<(Message | undefined)[]>;
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

  protected queue(name: string): QueueState {
    const q = this.state.queues.get(name);
    if (!q) throw new MessagingError('NOT_FOUND', `queue "${name}" does not exist`);
    return q;
  }

  protected stream(name: string): StreamState {
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
    return [...this.state.queues.values()]
      .map((q) => ({ ...q.spec }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
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
    promote(this.state, q, now);
    const oldest = oldestReady(this.state, q);
    return {
      queue: name,
      depth: q.nReady,
      in_flight: q.nInflight,
      delayed: q.nDelayed,
      dead_letters: q.dead.size,
      oldest_message_age_ms:
        oldest < 0 ? null : Math.max(0, now - this.state.bodies.ts[this.state.entries.body[oldest]!]!),
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

  async publish(
    targets: { queues?: readonly string[]; streams?: readonly string[] },
    input: MessageInput,
  ): Promise<AppendResult> {
    for (;;) {
      const done = this.publishNow(targets, input);
      if (done) {
        await done.durable;
        return done.result;
      }
      await this.enter(); // opening or reloading: wait (throws once closed)
    }
  }

  publishNow(
    targets: { queues?: readonly string[]; streams?: readonly string[] },
    input: MessageInput,
  ): PublishNow | undefined {
    if (this.gate || this.closed) return undefined;
    const now = this.now();
    const msg = normalizeMessage(input, now);
    const qs = this.targets(targets.queues, (n) => this.queue(n));
    const ss = this.targets(targets.streams, (n) => this.stream(n));
    if (qs.length + ss.length === 0)
      throw new MessagingError('BAD_REQUEST', 'a message needs at least one queue or stream');
    // All or nothing: refuse before anything is written if one reject-publish queue is full.
    for (const q of qs) {
      const max = q.spec.max_length;
      if (max !== undefined && q.spec.overflow === 'reject-publish' && q.nReady + q.nDelayed >= max) {
        throw new MessagingError('QUEUE_FULL', `queue "${q.spec.name}" is full (${max} messages)`, {
          details: { queue: q.spec.name },
        });
      }
    }
    for (const q of qs) {
      const max = q.spec.max_length;
      if (max === undefined || q.spec.overflow !== 'drop-oldest') continue;
      promote(this.state, q, now);
      while (q.nReady + q.nDelayed >= max) {
        const victim = oldestWaiting(this.state, q);
        if (victim < 0) break;
        this.deadLetter(q, victim, 'overflow', now);
      }
    }
    const key = this.state.nextKey;
    const payload = msg.payload;
    const head = headOf(msg);
    const nb = msg.deliver_at ?? 0;
    const ex = msg.ttl_ms !== undefined ? msg.timestamp + msg.ttl_ms : 0;
    const streams: Record<string, number> = {};
    for (const s of ss) streams[s.spec.name] = s.last + 1;
    this.appending = msg;
    try {
      this.emit({
        t: 'msg',
        key,
        head,
        payload,
        queues: qs.map((q) => ({ q: q.spec.name, o: key, dc: 0, nb, ex })),
        streams: ss.map((s) => ({ s: s.spec.name, seq: s.last + 1 })),
      });
    } finally {
      this.appending = undefined;
    }
    for (const s of ss) this.enforceRetention(s, now);
    return { result: { id: msg.id, streams }, durable: this.durable() };
  }

  /** Each named target once; a single name (nearly every publish) without building a set. */
  private targets<T>(names: readonly string[] | undefined, find: (name: string) => T): T[] {
    if (!names || names.length === 0) return [];
    if (names.length === 1) return [find(names[0]!)];
    return [...new Set(names)].map(find);
  }

  // ---- consuming ---------------------------------------------------------------------------------

  async take(queue: string, consumerId: string, max: number): Promise<Delivery[]> {
    if (this.gate || this.closed) await this.enter();
    const q = this.queue(queue);
    if (!Number.isSafeInteger(max) || max < 0)
      throw new MessagingError('BAD_REQUEST', 'max must be a non-negative integer');
    if (typeof consumerId !== 'string' || consumerId.length === 0)
      throw new MessagingError('BAD_REQUEST', 'consumer id must be a non-empty string');
    const now = this.now();
    let wrote = this.maintain(q, now).wrote;
    const e = this.state.entries;
    const picked: { slot: number; id: string; dc: number; ref: { h: number; key: number } }[] = [];
    while (picked.length < max) {
      const slot = popReady(this.state, q);
      if (slot < 0) break;
      const ex = e.expiresAtOf(slot);
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
    const messages = picked.length
      ? await this.load(
          picked.map((p) => p.ref),
          true,
        )
      : [];
    if (flushed) await flushed;
    const out: Delivery[] = [];
    picked.forEach((p, i) => {
      const message = messages[i];
      if (message && q.inflight.has(p.id))
        out.push({ queue, delivery_id: p.id, delivery_count: p.dc, message });
    });
    return out;
  }

  private delivery(queue: string, consumerId: string, deliveryId: string): { q: QueueState; slot: number } {
    const q = this.queue(queue);
    const f = q.inflight.get(deliveryId);
    if (!f || f.consumer !== consumerId) throw unknownDelivery(deliveryId);
    return { q, slot: f.slot };
  }

  ack(queue: string, consumerId: string, deliveryId: string): Promise<void> {
    return this.ackMany(queue, consumerId, [deliveryId]).then((unknown) => {
      if (unknown.length > 0) throw unknownDelivery(deliveryId);
    });
  }

  ackMany(queue: string, consumerId: string, deliveryIds: readonly string[]): Promise<string[]> {
    // Not async, and applied before it returns: a consumer's acks arrive by the hundred, the caller
    // refills the consumer's prefetch right after, and all acks of one group share the promise that
    // `durable()` returns.
    if (this.gate || this.closed)
      return this.enter().then(() => this.ackMany(queue, consumerId, deliveryIds));
    const unknown: string[] = [];
    try {
      const q = this.queue(queue);
      // Out of `inflight` as they are found, so an id repeated in the batch is unknown the second time,
      // as a second ack of it would be.
      const taken: InFlight[] = [];
      for (const id of deliveryIds) {
        const f = q.inflight.get(id);
        if (f && f.consumer === consumerId) {
          q.inflight.delete(id);
          taken.push(f);
        } else unknown.push(id);
      }
      if (taken.length > 0) {
        try {
          this.emit(
            taken.length === 1
              ? { t: 'ack', q: queue, key: this.state.keyOf(taken[0]!.slot) }
              : { t: 'acks', q: queue, keys: taken.map((f) => this.state.keyOf(f.slot)) },
          );
        } catch (err) {
          for (const f of taken) q.inflight.set(f.id, f); // not journaled: still in flight
          throw err;
        }
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return this.durable().then(() => unknown);
  }

  async nack(queue: string, consumerId: string, deliveryId: string, options: NackOptions): Promise<void> {
    await this.enter();
    const { q, slot } = this.delivery(queue, consumerId, deliveryId);
    const delay = options.delay_ms ?? 0;
    if (!Number.isFinite(delay) || delay < 0)
      throw new MessagingError('BAD_REQUEST', 'delay_ms must be >= 0');
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
      next = Math.min(next, nextDue(this.state, q));
    }
    for (const s of this.state.streams.values()) {
      wrote = this.enforceRetention(s, now) || wrote;
      if (s.spec.max_age_ms !== undefined && s.count > 0) {
        const first = s.nextPresent(s.first);
        next = Math.min(next, this.state.bodies.ts[s.get(first)]! + s.spec.max_age_ms + 1);
      }
    }
    if (wrote) await this.durable();
    return {
      redelivered,
      dead_lettered: dead,
      ready_queues: readyQueues,
      next_due_at: next === Infinity ? null : next,
    };
  }

  // ---- internals -------------------------------------------------------------------------------

  /** Retention writes triggered by reads need not delay the read; failures surface on the next write. */
  protected flushInBackground(): void {
    this.durable().catch(() => undefined);
  }

  protected retainAll(): void {
    const now = this.now();
    let wrote = false;
    for (const s of this.state.streams.values()) wrote = this.enforceRetention(s, now) || wrote;
    if (wrote) this.flushInBackground();
  }

  /** Trims the stream to its limits; returns whether it wrote a record. */
  protected enforceRetention(s: StreamState, now: number): boolean {
    const first = retentionPoint(this.state, s, now);
    if (first <= s.first) return false;
    this.emit({ t: 'trim', s: s.spec.name, first });
    return true;
  }

  protected deadLetter(
    q: QueueState,
    slot: number,
    reason: DeadLetterReason,
    now: number,
    error?: string,
  ): void {
    const rec: Rec = {
      t: 'dead',
      q: q.spec.name,
      key: this.state.keyOf(slot),
      dc: this.state.entries.dc[slot]!,
      reason,
      at: now,
    };
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
    this.emit({
      t: 'requeue',
      q: q.spec.name,
      key: this.state.keyOf(slot),
      dc,
      nb: delayMs > 0 ? now + delayMs : 0,
    });
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
    if (promote(this.state, q, now)) readied = true;
    return { wrote, redelivered, readied };
  }
}
