/**
 * Durable queues and streams on top of one `Storage` (DESIGN.md delivery modes 2 and 3): routes published
 * topics to the queues and streams whose bindings match, pushes queue messages to consumers within their
 * prefetch, drives the storage's timers (ack timeouts, delays, TTL), and follows streams live.
 *
 * Socket-free: consumers are plain callbacks, so the native protocol, REST and the task worker share it.
 */
import { MessagingError } from '../protocol/errors.ts';
import type {
  AppendResult,
  Delivery,
  Message,
  MessageInput,
  NackOptions,
  PublishNow,
  QueueSpec,
  QueueSpecInput,
  QueueStats,
  Storage,
  StorageEvent,
  StreamMessage,
  StreamSpec,
  StreamSpecInput,
  StreamStart,
} from '../storage/types.ts';
import { Router, type RouteEntry } from './router.ts';
import { validatePattern } from './topic.ts';

/** Where a consumer's deliveries go; must not throw. */
export type DeliveryHandler = (delivery: Delivery) => void;
export type StreamHandler = (stream: string, item: StreamMessage) => void;

export interface DurableOptions {
  routeCacheSize: number;
  now?: () => number;
  /** Reports background failures (a tick or take that failed); the work is retried. */
  onError?: (err: unknown, what: string) => void;
  /** Observes settled deliveries for metrics: how long the consumer held it. */
  onSettled?: (queue: string, outcome: 'acked' | 'failed', heldMs: number) => void;
  /** Observes messages moved to a queue's dead letters (counted from stats once a second). */
  onDeadLettered?: (queue: string, count: number) => void;
}

export interface DurableTargets {
  queues: string[];
  streams: string[];
}

export interface StoredResult extends AppendResult {
  queues: string[];
}

/** Published totals over a sliding minute, for `publish_rate` / `ack_rate` in stats. */
class RateWindow {
  private readonly samples: Array<{ at: number; published: number; acked: number }> = [];

  rates(now: number, stats: QueueStats): { publish_rate: number; ack_rate: number } {
    this.samples.push({ at: now, published: stats.published_total, acked: stats.acked_total });
    while (this.samples.length > 2 && now - this.samples[0]!.at > 60_000) this.samples.shift();
    const first = this.samples[0]!;
    const seconds = (now - first.at) / 1000;
    if (seconds <= 0) return { publish_rate: 0, ack_rate: 0 };
    return {
      publish_rate: round2((stats.published_total - first.published) / seconds),
      ack_rate: round2((stats.acked_total - first.acked) / seconds),
    };
  }
}
const round2 = (n: number): number => Math.round(n * 100) / 100;

class Consumer {
  /** Delivery id → when it was handed out (to forget it after the ack timeout, as storage does). */
  readonly inFlight = new Map<string, number>();
  active = true;
  constructor(
    readonly id: string,
    readonly queue: string,
    readonly prefetch: number,
    readonly handler: DeliveryHandler,
  ) {}

  get capacity(): number {
    return this.active ? this.prefetch - this.inFlight.size : 0;
  }
}

interface QueueRuntime {
  spec: QueueSpec;
  routes: RouteEntry<string>[];
  consumers: Consumer[];
  nextConsumer: number;
  pumping: boolean;
  pumpAgain: boolean;
  rates: RateWindow;
  /** The durability promise a pump is already chained to (see `storeInQueueNow`). */
  pumpAfter: Promise<void> | undefined;
}

class StreamTail {
  live = false;
  active = true;
  /** Highest sequence announced while a backlog read was in flight. */
  notified = 0;
  constructor(
    readonly stream: string,
    public nextSeq: number,
    readonly handler: StreamHandler,
  ) {}
}

interface StreamRuntime {
  spec: StreamSpec;
  routes: RouteEntry<string>[];
  tails: Set<StreamTail>;
}

export class DurableMessaging {
  private readonly queues = new Map<string, QueueRuntime>();
  private readonly streams = new Map<string, StreamRuntime>();
  private readonly queueRoutes: Router<string>;
  private readonly streamRoutes: Router<string>;
  /**
   * Push consumers by storage consumer id. One id (one connection's view of a queue) may have several
   * push consumers; acks name the id, and the delivery is found in whichever consumer holds it.
   */
  private readonly consumersById = new Map<string, Set<Consumer>>();
  private readonly now: () => number;
  private tickTimer: NodeJS.Timeout | undefined;
  private tickAt = Infinity;
  private ticking = false;
  private closed = false;
  /** Waiting messages (ready + delayed) per queue, refreshed with the timers for metrics. */
  private readonly sizes = new Map<string, number>();
  private readonly deadLettered = new Map<string, number>();
  private readonly streamSizes = new Map<string, number>();
  private lastError: { at: number; what: string } | undefined;

  private constructor(
    readonly storage: Storage,
    private readonly options: DurableOptions,
  ) {
    this.queueRoutes = new Router<string>({ cacheSize: options.routeCacheSize });
    this.streamRoutes = new Router<string>({ cacheSize: options.routeCacheSize });
    this.now = options.now ?? Date.now;
  }

  /** Loads the queues and streams the storage already holds (after a restart) and starts the timers. */
  static async open(storage: Storage, options: DurableOptions): Promise<DurableMessaging> {
    const durable = new DurableMessaging(storage, options);
    for (const spec of await storage.listQueues()) durable.addQueueRuntime(spec);
    for (const info of await storage.listStreams()) durable.addStreamRuntime(info);
    durable.scheduleTick(0);
    // A store shared with other servers (PostgreSQL) reports their writes: deliver what they made ready.
    durable.unwatch = storage.watch?.((event) => durable.onStorageEvent(event));
    return durable;
  }

  /** Stops listening to the shared store's events (set when the engine has them). */
  private unwatch: (() => void) | undefined;

  /**
   * Another server wrote to the shared store. Only wake-ups: the storage holds the truth, so a lost or
   * repeated event costs at most an empty `take` (and ticks and acks pump every queue anyway).
   */
  private onStorageEvent(event: StorageEvent): void {
    if (this.closed) return;
    if (event.kind === 'queue') this.pump(event.queue);
    else if (event.kind === 'stream') this.announce(event.stream, event.seq);
    else if (event.kind === 'declared' || event.kind === 'resync') {
      void this.syncDeclarations(event.kind === 'resync').catch((err: unknown) =>
        this.reportError(err, 'loading queues and streams declared by another server'),
      );
    }
  }

  /** Routes for queues and streams another server declared or deleted; `all`: wake everything too. */
  private async syncDeclarations(all: boolean): Promise<void> {
    const queues = await this.storage.listQueues();
    const streams = await this.storage.listStreams();
    const queueNames = new Set(queues.map((q) => q.name));
    for (const spec of queues) if (!this.queues.has(spec.name)) this.addQueueRuntime(spec);
    for (const [name, runtime] of this.queues) {
      if (queueNames.has(name)) continue;
      for (const entry of runtime.routes) this.queueRoutes.remove(entry);
      for (const consumer of runtime.consumers) {
        consumer.active = false;
        this.consumersById.get(consumer.id)?.delete(consumer);
      }
      this.queues.delete(name);
    }
    const streamNames = new Set(streams.map((s) => s.name));
    for (const info of streams) if (!this.streams.has(info.name)) this.addStreamRuntime(info);
    for (const [name, runtime] of this.streams) {
      if (streamNames.has(name)) continue;
      for (const entry of runtime.routes) this.streamRoutes.remove(entry);
      for (const tail of runtime.tails) tail.active = false;
      this.streams.delete(name);
    }
    if (!all) return;
    for (const name of this.queues.keys()) this.pump(name);
    for (const info of streams) this.announce(info.name, info.last_seq);
  }

  get hasTargets(): boolean {
    return this.queues.size > 0 || this.streams.size > 0;
  }

  // ----------------------------------------------------------------------------------------------------
  // Declarations

  async declareQueue(input: QueueSpecInput): Promise<QueueSpec> {
    for (const pattern of input.bindings ?? []) validatePattern(pattern);
    const spec = await this.storage.declareQueue(input);
    if (!this.queues.has(spec.name)) this.addQueueRuntime(spec);
    return spec;
  }

  async deleteQueue(name: string): Promise<void> {
    await this.storage.deleteQueue(name);
    const runtime = this.queues.get(name);
    if (!runtime) return;
    for (const entry of runtime.routes) this.queueRoutes.remove(entry);
    for (const consumer of runtime.consumers) {
      consumer.active = false;
      this.consumersById.get(consumer.id)?.delete(consumer);
    }
    this.queues.delete(name);
  }

  async declareStream(input: StreamSpecInput): Promise<StreamSpec> {
    for (const pattern of input.bindings ?? []) validatePattern(pattern);
    const spec = await this.storage.declareStream(input);
    if (!this.streams.has(spec.name)) this.addStreamRuntime(spec);
    return spec;
  }

  async deleteStream(name: string): Promise<void> {
    await this.storage.deleteStream(name);
    const runtime = this.streams.get(name);
    if (!runtime) return;
    for (const entry of runtime.routes) this.streamRoutes.remove(entry);
    for (const tail of runtime.tails) tail.active = false;
    this.streams.delete(name);
  }

  async queueInfo(
    name: string,
  ): Promise<QueueSpec & { stats: QueueStats & { publish_rate: number; ack_rate: number } }> {
    const spec = await this.storage.getQueue(name);
    const stats = await this.storage.stats(name);
    const rates = this.queues.get(name)?.rates.rates(this.now(), stats) ?? { publish_rate: 0, ack_rate: 0 };
    return { ...spec, stats: { ...stats, ...rates } };
  }

  // ----------------------------------------------------------------------------------------------------
  // Publishing

  /** Queues and streams whose bindings match `topic` (each name once). */
  targetsFor(topic: string): DurableTargets | undefined {
    if (!this.hasTargets) return undefined;
    const queues = this.queues.size ? namesOf(this.queueRoutes.match(topic)) : EMPTY_NAMES;
    const streams = this.streams.size ? namesOf(this.streamRoutes.match(topic)) : EMPTY_NAMES;
    if (queues.length === 0 && streams.length === 0) return undefined;
    return { queues, streams };
  }

  /** Stores the message in every target atomically; resolves once durable (the publisher confirm). */
  store(targets: DurableTargets, message: MessageInput): Promise<StoredResult> {
    // Not async: one promise per message fewer on the publish path.
    return this.storage.publish(targets, message).then((result) => {
      this.afterStore(targets, message, result);
      return { id: result.id, streams: result.streams, queues: targets.queues };
    });
  }

  /** A publish addressed to one queue by name, bypassing bindings. */
  storeInQueue(queue: string, message: MessageInput): Promise<StoredResult> {
    if (!this.queues.has(queue))
      return Promise.reject(new MessagingError('NOT_FOUND', `queue "${queue}" does not exist`));
    return this.store({ queues: [queue], streams: [] }, message);
  }

  /**
   * `storeInQueue` for a caller that confirms many publishes: stored in memory now (or throws), durable
   * when `durable` resolves — one promise per group commit. Undefined when the storage has no such fast
   * path or cannot take it now; then use `storeInQueue`.
   */
  storeInQueueNow(queue: string, message: MessageInput): PublishNow | undefined {
    const runtime = this.queues.get(queue);
    if (!runtime) throw new MessagingError('NOT_FOUND', `queue "${queue}" does not exist`);
    const done = this.storage.publishNow?.({ queues: [queue] }, message);
    if (!done) return undefined;
    this.scheduleDue(message);
    // As `store`, consumers are woken once the message is durable: one pump per group, not per message.
    if (runtime.pumpAfter !== done.durable) {
      runtime.pumpAfter = done.durable;
      done.durable.then(
        () => this.pump(queue),
        () => undefined, // the publisher gets the error; nothing new to deliver
      );
    }
    return done;
  }

  /** A tick for when a stored message becomes due (`deliver_at`) or expires (`ttl_ms`). */
  private scheduleDue(message: MessageInput): void {
    if (message.deliver_at !== undefined) this.scheduleTick(message.deliver_at - this.now());
    if (message.ttl_ms !== undefined) this.scheduleTick(message.ttl_ms);
  }

  private afterStore(targets: DurableTargets, message: MessageInput, result: AppendResult): void {
    for (const queue of targets.queues) this.pump(queue);
    this.scheduleDue(message);
    for (const stream in result.streams) this.announce(stream, result.streams[stream]!);
  }

  // ----------------------------------------------------------------------------------------------------
  // Consumers

  /**
   * Starts pushing deliveries of `queue` to `handler`, at most `prefetch` unacknowledged at a time.
   * Returns a function that stops it (its unacknowledged deliveries stay acknowledgeable until `release`).
   */
  consume(queue: string, consumerId: string, prefetch: number, handler: DeliveryHandler): () => void {
    const runtime = this.queues.get(queue);
    if (!runtime) throw new MessagingError('NOT_FOUND', `queue "${queue}" does not exist`);
    if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 10_000) {
      throw new MessagingError('BAD_REQUEST', 'prefetch must be an integer from 1 to 10000');
    }
    const consumer = new Consumer(consumerId, queue, prefetch, handler);
    runtime.consumers.push(consumer);
    let set = this.consumersById.get(consumerId);
    if (!set) this.consumersById.set(consumerId, (set = new Set()));
    set.add(consumer);
    this.pump(queue);
    return () => this.stopConsumer(consumer);
  }

  private stopConsumer(consumer: Consumer): void {
    consumer.active = false;
    const runtime = this.queues.get(consumer.queue);
    if (runtime) runtime.consumers = runtime.consumers.filter((c) => c !== consumer);
  }

  /**
   * Everything under `consumerId` is gone for good (connection closed): its push consumers stop and all
   * its unacknowledged deliveries, pushed or pulled, go back to their queues.
   */
  async release(consumerId: string): Promise<number> {
    const set = this.consumersById.get(consumerId);
    this.consumersById.delete(consumerId);
    for (const consumer of set ?? []) this.stopConsumer(consumer);
    const returned = await this.storage.releaseConsumer(consumerId);
    for (const queue of new Set([...(set ?? [])].map((c) => c.queue))) this.pump(queue);
    return returned;
  }

  /** Pull instead of push: takes up to `max` deliveries for a consumer that is not registered. */
  async pull(queue: string, consumerId: string, max: number): Promise<Delivery[]> {
    const deliveries = await this.storage.take(queue, consumerId, max);
    this.scheduleTickForTimeout(queue);
    return deliveries;
  }

  /**
   * Acknowledges each delivery on its own: the valid ones are settled even when some are not. If any
   * failed, throws UNKNOWN_DELIVERY naming them in `details.unknown` (and `details.acked`).
   */
  async ack(queue: string, consumerId: string, deliveryIds: readonly string[]): Promise<number> {
    // Out of the prefetch count at once, whatever the outcome (a failed ack forgets the delivery too):
    // the storage has applied the acks, and new deliveries need not wait for the acks' fsync — only the
    // answer to the consumer does.
    const since = deliveryIds.map((id) => this.forget(consumerId, id));
    // One call for the batch: one journal record and one durable promise, not one of each per ack.
    const done = this.storage.ackMany(queue, consumerId, deliveryIds);
    this.pump(queue);
    let unknown: string[];
    try {
      unknown = await done;
    } finally {
      this.pump(queue);
    }
    const failed = unknown.length > 0 ? new Set(unknown) : undefined;
    const now = this.now();
    deliveryIds.forEach((id, i) => {
      if (failed?.has(id)) return;
      const at = since[i];
      this.options.onSettled?.(queue, 'acked', at === undefined ? 0 : now - at);
    });
    const acked = deliveryIds.length - unknown.length;
    if (unknown.length > 0) {
      throw new MessagingError(
        'UNKNOWN_DELIVERY',
        `${unknown.length} of ${deliveryIds.length} deliveries are unknown, settled, or held by another consumer: ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ', …' : ''}`,
        { details: { unknown, acked } },
      );
    }
    return acked;
  }

  async nack(queue: string, consumerId: string, deliveryId: string, options: NackOptions): Promise<void> {
    try {
      await this.storage.nack(queue, consumerId, deliveryId, options);
      this.settled(queue, consumerId, deliveryId, 'failed');
    } finally {
      this.forget(consumerId, deliveryId);
    }
    if (options.requeue && options.delay_ms) this.scheduleTick(options.delay_ms);
    this.pump(queue);
  }

  private settled(queue: string, consumerId: string, deliveryId: string, outcome: 'acked' | 'failed'): void {
    const since = this.forget(consumerId, deliveryId);
    this.options.onSettled?.(queue, outcome, since === undefined ? 0 : this.now() - since);
  }

  /** Stops counting a delivery against its consumer's prefetch; returns when it was handed out. */
  private forget(consumerId: string, deliveryId: string): number | undefined {
    const set = this.consumersById.get(consumerId);
    if (!set) return undefined;
    for (const consumer of set) {
      const at = consumer.inFlight.get(deliveryId);
      if (at !== undefined) {
        consumer.inFlight.delete(deliveryId);
        return at;
      }
    }
    return undefined;
  }

  /**
   * Hands ready messages to consumers with free prefetch slots, round-robin. One pump per queue runs at
   * a time; a wake-up during a pump makes it go round again instead of starting a second one.
   */
  private pump(queue: string): void {
    const runtime = this.queues.get(queue);
    if (!runtime || runtime.consumers.length === 0 || this.closed) return;
    if (runtime.pumping) {
      runtime.pumpAgain = true;
      return;
    }
    runtime.pumping = true;
    void this.pumpLoop(runtime).finally(() => {
      runtime.pumping = false;
    });
  }

  private async pumpLoop(runtime: QueueRuntime): Promise<void> {
    try {
      for (;;) {
        runtime.pumpAgain = false;
        let progressed = false;
        const count = runtime.consumers.length;
        for (let i = 0; i < count && !this.closed; i++) {
          const consumer = runtime.consumers[(runtime.nextConsumer + i) % runtime.consumers.length];
          if (!consumer || consumer.capacity <= 0) continue;
          // One at a time when several consumers compete, so prefetch-1 consumers share fairly.
          const want = runtime.consumers.length > 1 ? Math.min(consumer.capacity, 1) : consumer.capacity;
          const deliveries = await this.storage.take(runtime.spec.name, consumer.id, want);
          if (deliveries.length === 0) break;
          progressed = true;
          runtime.nextConsumer = (runtime.nextConsumer + i + 1) % Math.max(1, runtime.consumers.length);
          const at = this.now();
          for (const delivery of deliveries) {
            if (!consumer.active) break; // stopped while we awaited: storage releases it later
            consumer.inFlight.set(delivery.delivery_id, at);
            consumer.handler(delivery);
          }
          break;
        }
        if (progressed) this.scheduleTickForTimeout(runtime.spec.name);
        if (!progressed && !runtime.pumpAgain) return;
      }
    } catch (err) {
      // Deleted while being pumped (the storage forgets it before the runtime goes): nothing is wrong,
      // there is just nothing left to deliver.
      const gone = err instanceof MessagingError && err.code === 'NOT_FOUND';
      if (gone || this.queues.get(runtime.spec.name) !== runtime) return;
      this.reportError(err, `delivering from queue ${runtime.spec.name}`);
      this.scheduleTick(1000);
    }
  }

  // ----------------------------------------------------------------------------------------------------
  // Timers: one timer for the whole storage, set for the earliest thing that becomes due.

  private scheduleTickForTimeout(queue: string): void {
    const spec = this.queues.get(queue)?.spec;
    if (spec) this.scheduleTick(spec.ack_timeout_ms + 5);
  }

  private scheduleTick(inMs: number): void {
    if (this.closed) return;
    const at = this.now() + Math.max(0, inMs);
    if (at >= this.tickAt) return;
    this.tickAt = at;
    clearTimeout(this.tickTimer);
    this.tickTimer = setTimeout(() => void this.tick(), Math.max(0, inMs));
    this.tickTimer.unref();
  }

  private async tick(): Promise<void> {
    this.tickAt = Infinity;
    if (this.ticking || this.closed) return;
    this.ticking = true;
    try {
      const result = await this.storage.tick();
      this.expireTracked();
      const waiting = await this.refreshSizes();
      // Also every queue with ready messages: another reader (stats, a scrape) may have promoted a due
      // message since, and then no tick would ever report that queue ready again.
      for (const queue of new Set([...result.ready_queues, ...waiting])) this.pump(queue);
      // Nothing due: look again in a second anyway (cheap) so TTLs and delays never stall.
      const wait = result.next_due_at === null ? 1000 : Math.min(1000, result.next_due_at - this.now());
      this.ticking = false;
      this.scheduleTick(wait);
    } catch (err) {
      this.ticking = false;
      this.reportError(err, 'storage housekeeping');
      this.scheduleTick(1000);
    }
  }

  private reportError(err: unknown, what: string): void {
    this.lastError = { at: this.now(), what };
    this.options.onError?.(err, what);
  }

  /** Refreshes the size gauges; returns the queues with messages ready for delivery. */
  private async refreshSizes(): Promise<string[]> {
    const ready: string[] = [];
    for (const name of this.queues.keys()) {
      const stats = await this.storage.stats(name).catch(() => undefined);
      if (!stats) continue;
      if (stats.depth > 0) ready.push(name);
      this.sizes.set(name, stats.depth + stats.delayed);
      const before = this.deadLettered.get(name);
      this.deadLettered.set(name, stats.dead_lettered_total);
      if (before !== undefined && stats.dead_lettered_total > before) {
        this.options.onDeadLettered?.(name, stats.dead_lettered_total - before);
      }
    }
    for (const name of this.sizes.keys()) if (!this.queues.has(name)) this.sizes.delete(name);
    this.streamSizes.clear();
    for (const info of await this.storage.listStreams().catch(() => []))
      this.streamSizes.set(info.name, info.messages);
    return ready;
  }

  /**
   * For `messaging_message_queue_size`: waiting messages per queue (`kind="queue"`) and retained messages
   * per stream (`kind="stream"`), as of the last refresh (at most a second old).
   */
  *queueSizes(): Iterable<{ kind: 'queue' | 'stream'; queue: string; size: number }> {
    for (const [queue, size] of this.sizes) yield { kind: 'queue', queue, size };
    for (const [stream, size] of this.streamSizes) yield { kind: 'stream', queue: stream, size };
  }

  /** The `queue` component of /health/detailed. */
  health(): {
    status: 'healthy' | 'degraded';
    reason?: string;
    engine: string;
    queues: number;
    streams: number;
  } {
    const base = { engine: this.storage.engine, queues: this.queues.size, streams: this.streams.size };
    if (this.lastError && this.now() - this.lastError.at < 30_000) {
      return {
        status: 'degraded',
        reason: `storage error within the last 30 s: ${this.lastError.what}`,
        ...base,
      };
    }
    return { status: 'healthy', ...base };
  }

  /** Storage redelivers a delivery after its ack timeout; stop counting it against the prefetch. */
  private expireTracked(): void {
    const now = this.now();
    for (const consumer of [...this.consumersById.values()].flatMap((set) => [...set])) {
      const timeout = this.queues.get(consumer.queue)?.spec.ack_timeout_ms ?? Infinity;
      let freed = false;
      for (const [id, at] of consumer.inFlight) {
        if (now - at >= timeout) {
          consumer.inFlight.delete(id);
          freed = true;
        }
      }
      if (freed) this.pump(consumer.queue);
    }
  }

  // ----------------------------------------------------------------------------------------------------
  // Streams

  /** Replays `stream` from `from`, then follows it live. Returns a handle that stops it. */
  async followStream(
    stream: string,
    from: StreamStart,
    handler: StreamHandler,
  ): Promise<{ nextSeq: number; stop(): void }> {
    const runtime = this.streams.get(stream);
    if (!runtime) throw new MessagingError('NOT_FOUND', `stream "${stream}" does not exist`);
    const start = await this.storage.streamRead(stream, { from, max: 0 });
    const tail = new StreamTail(stream, start.next_seq, handler);
    runtime.tails.add(tail);
    void this.catchUp(tail);
    return {
      nextSeq: tail.nextSeq,
      stop: () => {
        tail.active = false;
        runtime.tails.delete(tail);
      },
    };
  }

  private async catchUp(tail: StreamTail): Promise<void> {
    try {
      for (;;) {
        if (!tail.active) return;
        const page = await this.storage.streamRead(tail.stream, { from: { seq: tail.nextSeq }, max: 256 });
        for (const item of page.messages) {
          if (!tail.active) return;
          tail.handler(tail.stream, item);
        }
        tail.nextSeq = Math.max(tail.nextSeq, page.next_seq);
        if (page.messages.length === 0 && tail.notified < tail.nextSeq) {
          tail.live = true;
          return;
        }
      }
    } catch (err) {
      this.reportError(err, `reading stream ${tail.stream}`);
    }
  }

  /** A message was recorded as `seq` in `stream`: live tails get it, lagging ones read it later. */
  private announce(stream: string, seq: number): void {
    const runtime = this.streams.get(stream);
    if (!runtime || runtime.tails.size === 0) return;
    for (const tail of runtime.tails) {
      tail.notified = Math.max(tail.notified, seq);
      if (tail.live && tail.nextSeq <= seq) {
        tail.live = false;
        void this.catchUp(tail);
      }
    }
  }

  // ----------------------------------------------------------------------------------------------------

  /** Something outside made messages ready (e.g. a dead-letter replay): deliver them. */
  wake(queue: string): void {
    this.pump(queue);
  }

  queueNames(): string[] {
    return [...this.queues.keys()];
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.tickTimer);
    this.unwatch?.();
    await this.storage.close();
  }

  private addQueueRuntime(spec: QueueSpec): void {
    const routes = spec.bindings.map((pattern) => this.queueRoutes.add(pattern, spec.name));
    this.queues.set(spec.name, {
      spec,
      routes,
      consumers: [],
      nextConsumer: 0,
      pumping: false,
      pumpAgain: false,
      rates: new RateWindow(),
      pumpAfter: undefined,
    });
  }

  private addStreamRuntime(spec: StreamSpec): void {
    const routes = spec.bindings.map((pattern) => this.streamRoutes.add(pattern, spec.name));
    this.streams.set(spec.name, { spec, routes, tails: new Set() });
  }
}

const EMPTY_NAMES: string[] = [];

function namesOf(match: { plain: readonly string[]; groups: readonly (readonly string[])[] }): string[] {
  if (match.plain.length === 0) return EMPTY_NAMES;
  if (match.plain.length === 1) return [match.plain[0]!];
  return [...new Set(match.plain)];
}

/** A stored message as JSON for CMD answers and REST: the payload travels as base64. */
export function storedMessageToJson(message: Message): Record<string, unknown> {
  // Same field names as MSG metadata on the wire: `traceparent` and `reply`.
  const { payload, trace_id, reply_to, ...rest } = message;
  const out: Record<string, unknown> = { ...rest, payload_base64: Buffer.from(payload).toString('base64') };
  if (trace_id !== undefined) out.traceparent = trace_id;
  if (reply_to !== undefined) out.reply = reply_to;
  return out;
}
