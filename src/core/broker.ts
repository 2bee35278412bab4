/**
 * The broker facade every front door (native sessions, REST, WebSocket) publishes through: it validates,
 * stamps ids, and routes. Socket-free: sessions hand it plain values and plug in `Subscriber`s.
 */
import { MessagingError } from '../protocol/errors.ts';
import { UlidGenerator } from '../protocol/ulid.ts';
import { PubSub, type PubSubMessage, type Subscriber, type Subscription } from './pubsub.ts';
import { validatePattern, validateTopic } from './topic.ts';

/** A message as it is routed: pub/sub's shape plus the id the broker stamped on it. */
export interface RoutedMessage extends PubSubMessage {
  /** 16-byte binary ULID; its first 6 bytes are the publish time in epoch ms. */
  readonly msgId: Uint8Array;
}

export interface PublishInput {
  topic: string;
  payload: Uint8Array;
  reply?: string;
  meta?: Record<string, unknown> | undefined;
  /** The publisher's own id, kept when present. */
  msgId?: Uint8Array | undefined;
}

export interface PublishResult {
  msgId: Uint8Array;
  /** Subscriptions the message was handed to. */
  delivered: number;
}

export interface BrokerOptions {
  maxPayloadBytes: number;
  /** Router match-cache size; 0 disables it. */
  routeCacheSize: number;
}

const EMPTY = new Uint8Array(0);
const NO_RESPONDERS_META = Object.freeze({ status: 'no_responders' });

export class Broker {
  readonly pubsub: PubSub;
  private readonly ids = new UlidGenerator();
  /** Plain counters read by the metrics collector at scrape time (cheaper than prom-client per message). */
  readonly counters = { published: 0, delivered: 0, noResponders: 0 };

  constructor(readonly options: BrokerOptions) {
    this.pubsub = new PubSub({ cacheSize: options.routeCacheSize });
  }

  /** Fan-out publish (at most once). Throws INVALID_TOPIC or PAYLOAD_TOO_LARGE. */
  publish(input: PublishInput): PublishResult {
    const message = this.prepare(input);
    const delivered = this.pubsub.publish(message);
    this.counters.published++;
    this.counters.delivered += delivered;
    return { msgId: message.msgId, delivered };
  }

  /**
   * Request: delivered to exactly one responder. When nobody listens the requester's inbox gets a
   * `no_responders` status message at once, so the caller never waits for its timeout.
   */
  request(input: PublishInput & { reply: string }): PublishResult {
    if (!input.reply) throw new MessagingError('BAD_REQUEST', 'a request needs a reply topic');
    const message = this.prepare(input);
    const delivered = this.pubsub.request(message);
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

  private prepare(input: PublishInput): RoutedMessage {
    validateTopic(input.topic);
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
      msgId: input.msgId ?? this.ids.next(),
    };
  }
}
