/**
 * The broker facade every front door (native sessions, REST, WebSocket) publishes through: it validates,
 * stamps ids, and routes. Socket-free: sessions hand it plain values and plug in `Subscriber`s.
 */
import { MessagingError } from '../protocol/errors.ts';
import type { MessageMeta } from '../protocol/frames.ts';
import { UlidGenerator, ulidTime, ulidToString } from '../protocol/ulid.ts';
import type { MessageInput, Priority } from '../storage/types.ts';
import type { DurableMessaging, StoredResult } from './durable.ts';
import { PubSub, type PubSubMessage, type Subscriber, type Subscription } from './pubsub.ts';
import { validatePattern, validateTopic } from './topic.ts';

/** A message as it is routed: pub/sub's shape plus the id the broker stamped on it. */
export interface RoutedMessage extends PubSubMessage {
  /** 16-byte binary ULID; its first 6 bytes are the publish time in epoch ms. */
  readonly msgId: Uint8Array;
  /** The message as encoded on the wire after the id (see `PubFrame.rest`), when it came as a PUB. */
  readonly rest?: Uint8Array | undefined;
}

export interface PublishInput {
  topic: string;
  payload: Uint8Array;
  reply?: string;
  meta?: Record<string, unknown> | undefined;
  /** The publisher's own id, kept when present. */
  msgId?: Uint8Array | undefined;
  /** Encoded topic/reply/meta/payload from the PUB frame, reused for delivery. */
  rest?: Uint8Array | undefined;
}

export interface PublishResult {
  msgId: Uint8Array;
  /** Subscriptions the message was handed to. */
  delivered: number;
  /** Present when durable queues or streams matched: resolves once they stored it (the confirm). */
  stored?: Promise<StoredResult>;
}

/**
 * What the broker needs of a tracer (observability/tracing.ts implements it); defined here so the core
 * does not depend on OpenTelemetry.
 */
export interface MessageTracer {
  readonly enabled: boolean;
  startSpan(
    name: string,
    options?: {
      parent?: string;
      kind?: 'producer' | 'consumer' | 'internal';
      attributes?: Record<string, string | number | boolean>;
    },
  ): {
    readonly traceparent: string;
    setAttribute(key: string, value: string | number | boolean): void;
    end(error?: unknown): void;
  };
}

const NO_TRACER: MessageTracer = {
  enabled: false,
  startSpan: () => ({ traceparent: '', setAttribute() {}, end() {} }),
};

export interface BrokerOptions {
  maxPayloadBytes: number;
  /** Router match-cache size; 0 disables it. */
  routeCacheSize: number;
}

const EMPTY = new Uint8Array(0);
const NO_RESPONDERS_META = Object.freeze({ status: 'no_responders' });

export class Broker {
  readonly pubsub: PubSub;
  /** Durable queues and streams; absent until the storage is open. */
  durable: DurableMessaging | undefined;
  /** Records route/deliver spans for messages that carry a W3C traceparent. */
  tracer: MessageTracer = NO_TRACER;
  private readonly ids = new UlidGenerator();
  /** Plain counters read by the metrics collector at scrape time (cheaper than prom-client per message). */
  readonly counters = { published: 0, delivered: 0, noResponders: 0 };

  constructor(readonly options: BrokerOptions) {
    this.pubsub = new PubSub({ cacheSize: options.routeCacheSize });
  }

  /**
   * Fan-out publish: at most once to subscribers, and stored in every durable queue and stream whose
   * bindings match (`stored` resolves when durable). Throws INVALID_TOPIC or PAYLOAD_TOO_LARGE.
   */
  publish(input: PublishInput): PublishResult {
    const trace = this.traceOf(input);
    const message = this.prepare(trace ? trace.input : input);
    const targets = this.durable?.targetsFor(message.topic);
    // Validate what storage needs before anyone sees the message, so a bad priority fails as a whole.
    const stored = targets ? this.durable!.store(targets, toMessageInput(message)) : undefined;
    const delivered = this.pubsub.publish(message);
    this.counters.published++;
    this.counters.delivered += delivered;
    trace?.end(delivered, targets);
    return stored ? { msgId: message.msgId, delivered, stored } : { msgId: message.msgId, delivered };
  }

  /**
   * For a message that carries a traceparent (and only then): a `route` span under the publisher's span
   * and a `deliver` span under it, whose traceparent replaces the message's so that subscribers and
   * stored copies continue the trace. The message is re-encoded (its metadata changed).
   */
  private traceOf(input: PublishInput) {
    const parent = input.meta?.traceparent;
    if (!this.tracer.enabled || typeof parent !== 'string') return undefined;
    const attributes = { 'messaging.system': 'messaging-system', 'messaging.destination.name': input.topic };
    const route = this.tracer.startSpan(`route ${input.topic}`, { parent, kind: 'consumer', attributes });
    const deliver = this.tracer.startSpan(`deliver ${input.topic}`, {
      parent: route.traceparent,
      kind: 'producer',
      attributes,
    });
    return {
      input: { ...input, meta: { ...input.meta, traceparent: deliver.traceparent }, rest: undefined },
      end(delivered: number, targets: { queues: string[]; streams: string[] } | undefined) {
        deliver.setAttribute('messaging.delivered', delivered);
        if (targets)
          route.setAttribute('messaging.stored_in', [...targets.queues, ...targets.streams].join(','));
        deliver.end();
        route.end();
      },
    };
  }

  /**
   * `publishToQueue` for a caller that confirms many publishes (a native connection): stored now, or it
   * throws; durable when `durable` resolves, one promise per group commit. Undefined when the storage
   * cannot take this path now, or the message is traced: then use `publishToQueue`.
   */
  publishToQueueNow(
    queue: string,
    input: PublishInput,
  ): { msgId: Uint8Array; durable: Promise<void> } | undefined {
    if (!this.durable || (this.tracer.enabled && typeof input.meta?.traceparent === 'string'))
      return undefined;
    validateTopic(input.topic); // no router sees this message, so check here
    const message = this.prepare(input);
    const done = this.durable.storeInQueueNow(queue, toMessageInput(message));
    if (!done) return undefined;
    this.counters.published++;
    return { msgId: message.msgId, durable: done.durable };
  }

  /** Publishes straight into one durable queue (meta.queue), bypassing bindings and subscribers. */
  publishToQueue(queue: string, input: PublishInput): PublishResult {
    validateTopic(input.topic); // no router sees this message, so check here
    const trace = this.traceOf(input);
    const message = this.prepare(trace ? trace.input : input);
    if (!this.durable) throw new MessagingError('NOT_FOUND', `queue "${queue}" does not exist`);
    const stored = this.durable.storeInQueue(queue, toMessageInput(message));
    this.counters.published++;
    trace?.end(0, { queues: [queue], streams: [] });
    return { msgId: message.msgId, delivered: 0, stored };
  }

  /**
   * Request: delivered to exactly one responder. When nobody listens the requester's inbox gets a
   * `no_responders` status message at once, so the caller never waits for its timeout.
   */
  request(input: PublishInput & { reply: string }): PublishResult {
    if (!input.reply) throw new MessagingError('BAD_REQUEST', 'a request needs a reply topic');
    const trace = this.traceOf(input);
    const message = this.prepare(trace ? trace.input : input);
    const delivered = this.pubsub.request(message);
    trace?.end(delivered, undefined);
    this.counters.published++;
    this.counters.delivered += delivered;
    if (delivered === 0) {
      this.counters.noResponders++;
      this.pubsub.publish({
        topic: input.reply,
        reply: '',
        meta: NO_RESPONDERS_META,
        payload: EMPTY,
        msgId: this.ids.next(),
      } as RoutedMessage);
    }
    return { msgId: message.msgId, delivered };
  }

  subscribe(pattern: string, subscriber: Subscriber, queueGroup?: string): Subscription {
    validatePattern(pattern);
    if (queueGroup !== undefined && (queueGroup.length === 0 || /\s/.test(queueGroup))) {
      throw new MessagingError(
        'BAD_REQUEST',
        `queue group name ${JSON.stringify(queueGroup)} must be non-empty without spaces`,
      );
    }
    return this.pubsub.subscribe(pattern, subscriber, queueGroup);
  }

  newId(): Uint8Array {
    return this.ids.next();
  }

  private turnTime = 0;
  private turnTimeValid = false;
  private readonly endTurn = (): void => {
    this.turnTimeValid = false;
  };

  /**
   * The clock read once per turn of the event loop: the PUBs of one socket read are stamped with the
   * same millisecond (the ids stay strictly increasing). Reading the clock per message cost about 7% of
   * the server's time per pub/sub message.
   */
  private turnNow(): number {
    if (!this.turnTimeValid) {
      this.turnTime = Date.now();
      this.turnTimeValid = true;
      queueMicrotask(this.endTurn);
    }
    return this.turnTime;
  }

  private prepare(input: PublishInput): RoutedMessage {
    // The topic is validated by the router on a cache miss; a cached topic was valid when cached.
    if (input.payload.length > this.options.maxPayloadBytes) {
      throw new MessagingError(
        'PAYLOAD_TOO_LARGE',
        `payload of ${input.payload.length} bytes exceeds the maximum of ${this.options.maxPayloadBytes} bytes (max_payload_bytes)`,
      );
    }
    return {
      topic: input.topic,
      reply: input.reply ?? '',
      meta: input.meta,
      payload: input.payload,
      msgId: input.msgId ?? this.ids.next(this.turnNow()),
      rest: input.rest,
    };
  }
}

const PRIORITY_NAMES: Record<string, Priority> = {
  lowest: 0,
  low: 1,
  normal: 2,
  high: 3,
  highest: 4,
  critical: 5,
};

/** Priority by name (`high`) or number (3); BAD_REQUEST otherwise. */
export function parsePriority(value: unknown): Priority | undefined {
  if (value === undefined || value === null) return undefined;
  const n = typeof value === 'string' ? (PRIORITY_NAMES[value.toLowerCase()] ?? Number(value)) : value;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 5) return n as Priority;
  throw new MessagingError(
    'BAD_REQUEST',
    `priority must be 0-5 or one of ${Object.keys(PRIORITY_NAMES).join(', ')}; got ${JSON.stringify(value)}`,
  );
}

/**
 * The stored form of a routed message. The payload stays a view of the received bytes: the storage
 * copies what it keeps (`normalizeMessage`), so copying here too would copy every message twice.
 */
function toMessageInput(message: RoutedMessage): MessageInput {
  const meta = message.meta as MessageMeta | undefined;
  const input: MessageInput = {
    id: ulidToString(message.msgId),
    topic: message.topic,
    payload: message.payload,
    timestamp: ulidTime(message.msgId),
  };
  if (message.reply) input.reply_to = message.reply;
  if (!meta) return input;
  if (meta.headers) input.headers = meta.headers;
  const priority = parsePriority(meta.priority);
  if (priority !== undefined) input.priority = priority;
  if (meta.ttl_ms !== undefined) input.ttl_ms = meta.ttl_ms;
  if (meta.deliver_at !== undefined) input.deliver_at = meta.deliver_at;
  if (meta.correlation_id !== undefined) input.correlation_id = meta.correlation_id;
  if (meta.type !== undefined) input.type = meta.type as MessageInput['type'];
  if (meta.traceparent !== undefined) input.trace_id = meta.traceparent;
  return input;
}
