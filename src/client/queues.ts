/**
 * Durable queues (`conn.queues`): declare and inspect queues, publish to them with a confirm, consume
 * with a prefetch window or pull, acknowledge, and manage dead letters. Speaks the CMD operations of
 * docs/protocol.md, "Durable queues".
 *
 * Naming: specs and stats are the server's JSON objects, typed with their wire (snake_case) field
 * names, as `ServerInfo` is; objects the SDK builds — messages, dead letters — use camelCase.
 */
import { encodeControl, FrameType, MessagingError, type MsgFrame } from '../protocol/index.ts';
import { AckBatcher } from './ack-batcher.ts';
import {
  frameFromJson,
  messageFromJson,
  QueueMessage,
  type NackOptions,
  type Settler,
} from './durable-message.ts';
import type { Message, MessageOptions, Payload, PublishAck, PublishOptions, Responder } from './message.ts';
import { narrowIterator, type DurableHost, type OpenedSubscription } from './opened-subscription.ts';

/** What a full queue does with one more message. */
export type OverflowPolicy = 'reject-publish' | 'drop-oldest';

/** Why a message was moved to the dead letters. */
export type DeadLetterReason = 'max_deliveries' | 'expired' | 'rejected' | 'overflow';

/** Settings of `queues.declare`. Absent settings take the server's defaults. */
export interface QueueDeclareOptions {
  name: string;
  /** Topic patterns whose messages the queue stores (`*` one token, `#` zero or more). */
  bindings?: string[];
  /** Most messages waiting (ready + delayed); unbounded when absent. */
  maxLength?: number;
  /** At `maxLength`: refuse the publish with QUEUE_FULL (default) or dead-letter the oldest. */
  overflow?: OverflowPolicy;
  /** An unacknowledged delivery goes back to the queue after this long (server default 30000). */
  ackTimeoutMs?: number;
  /** After this many deliveries a message goes to the dead letters; 0 = never (server default 5). */
  maxDeliveries?: number;
}

/** A queue's settings as the server reports them. */
export interface QueueSpec {
  name: string;
  bindings: string[];
  max_length?: number;
  overflow: OverflowPolicy;
  ack_timeout_ms: number;
  max_deliveries: number;
  [key: string]: unknown;
}

/** A queue's counters (`queue.info`). */
export interface QueueStats {
  /** Messages ready for delivery now. */
  depth: number;
  /** Delivered and not yet acknowledged. */
  in_flight: number;
  /** Waiting for their `deliver_at` or a nack delay. */
  delayed: number;
  dead_letters: number;
  /** Age of the oldest ready message, null when none is ready. */
  oldest_message_age_ms: number | null;
  published_total: number;
  acked_total: number;
  dead_lettered_total: number;
  /** Messages per second over the last minute. */
  publish_rate: number;
  ack_rate: number;
  [key: string]: unknown;
}

/** A queue's settings and counters. */
export interface QueueInfo extends QueueSpec {
  stats: QueueStats;
}

/** Options of `queues.publish`. */
export interface QueuePublishOptions extends MessageOptions {
  /** The message's topic (default: the queue's name); bindings are bypassed either way. */
  topic?: string;
  /** Confirm timeout; defaults to the connection's `timeoutMs`. */
  timeoutMs?: number;
}

/** The confirm of a direct queue publish: the message is stored. */
export interface QueuePublishAck extends PublishAck {
  id: string;
}

/** Options of `queues.consume`. */
export interface ConsumeOptions {
  /** Most unacknowledged deliveries the server hands this consumer at once (server default 10). */
  prefetch?: number;
  /**
   * Called once per message instead of the async iterator. A returned promise is awaited only by
   * `stop()`/`drain()`; a message the callback does not settle returns after the ack timeout.
   */
  callback?: (message: QueueMessage) => void | Promise<void>;
}

/** Options of `queues.pull`. */
export interface PullOptions {
  /** At most this many messages (server default 1). */
  max?: number;
  timeoutMs?: number;
}

/** A message in a queue's dead letters. */
export interface DeadLetter {
  /** Dead-letter id, for `replayDeadLetters`. */
  id: string;
  reason: DeadLetterReason;
  /** Delivery attempts before it was dead-lettered. */
  failures: number;
  lastError: string | undefined;
  /** Epoch milliseconds. */
  deadLetteredAt: number;
  message: Message;
}

/**
 * A queue consumer: an `AsyncIterable<QueueMessage>` (or a callback). The server keeps at most
 * `prefetch` of its deliveries unacknowledged. After a reconnect it is re-opened with the same sid; the
 * old connection's unacknowledged deliveries went back to the queue and will come again.
 */
export class QueueConsumer implements AsyncIterable<QueueMessage> {
  /** @internal created by `queues.consume` */
  constructor(
    /** The queue consumed. */
    readonly queue: string,
    private readonly sub: OpenedSubscription,
    // Filled by the opener on every OK (the server may name the consumer anew after a reconnect).
    private readonly tag: { value: string | undefined },
  ) {}

  /** The subscription id the deliveries arrive on. */
  get sid(): number {
    return this.sub.sid;
  }

  /** The server's name for this consumer, once `ready()`. */
  get consumer(): string | undefined {
    return this.tag.value;
  }

  /** Messages delivered so far. */
  get received(): number {
    return this.sub.received;
  }

  get isActive(): boolean {
    return this.sub.isActive;
  }

  /** Resolves once the server registered the consumer; rejects e.g. with NotFoundError. */
  ready(): Promise<void> {
    return this.sub.ready();
  }

  /** Resolves when the consumer ends: with its error, or undefined for a normal end. */
  closed(): Promise<MessagingError | undefined> {
    return this.sub.closed();
  }

  /**
   * Stops the consumer (UNSUB) and resolves once the server has processed that: deliveries already on
   * the way are still yielded, running callbacks are awaited. Unacknowledged deliveries can still be
   * acked until the connection closes; then they go back to the queue.
   */
  stop(): Promise<void> {
    return this.sub.drain();
  }

  [Symbol.asyncIterator](): AsyncIterator<QueueMessage> {
    return narrowIterator<QueueMessage>(this.sub);
  }
}

function asArray<T>(body: Record<string, unknown>, key: string): T[] {
  const value = body[key];
  return Array.isArray(value) ? (value as T[]) : [];
}

function asCount(body: Record<string, unknown>, key: string): number {
  const value = body[key];
  return typeof value === 'number' ? value : 0;
}

/** The queue API of a connection (`conn.queues`). */
export class Queues {
  private readonly acks: AckBatcher;
  /** `{queue}` publish options by queue name, for `publish` without options. */
  private readonly plainPublish = new Map<string, PublishOptions>();
  private readonly settler: Settler = {
    ack: (queue, deliveryId) => this.ack(queue, deliveryId),
    nack: (queue, deliveryId, options) => this.nack(queue, deliveryId, options),
  };

  /** @internal use `conn.queues` */
  constructor(private readonly host: DurableHost) {
    this.acks = new AckBatcher((args) => host.command('queue.ack', args));
  }

  /**
   * Creates a queue, or confirms an existing one with the same settings (idempotent). Rejects with
   * ALREADY_EXISTS when a queue of that name has other settings.
   */
  async declare(options: QueueDeclareOptions): Promise<QueueSpec> {
    const args: Record<string, unknown> = { name: options.name, bindings: options.bindings ?? [] };
    if (options.maxLength !== undefined) args['max_length'] = options.maxLength;
    if (options.overflow !== undefined) args['overflow'] = options.overflow;
    if (options.ackTimeoutMs !== undefined) args['ack_timeout_ms'] = options.ackTimeoutMs;
    if (options.maxDeliveries !== undefined) args['max_deliveries'] = options.maxDeliveries;
    return (await this.host.command('queue.declare', args)) as QueueSpec;
  }

  /** Deletes a queue with its messages and dead letters. */
  async delete(name: string): Promise<void> {
    await this.host.command('queue.delete', { name });
  }

  /** Every queue with its settings and counters. */
  async list(): Promise<QueueInfo[]> {
    return asArray<QueueInfo>(await this.host.command('queue.list'), 'queues');
  }

  /** One queue's settings and counters; NotFoundError when it does not exist. */
  async info(name: string): Promise<QueueInfo> {
    return (await this.host.command('queue.info', { name })) as QueueInfo;
  }

  /** Drops the waiting messages (in-flight ones stay with their consumers); returns how many. */
  async purge(name: string): Promise<number> {
    return asCount(await this.host.command('queue.purge', { name }), 'purged');
  }

  /**
   * Publishes straight into queue `name` (bypassing bindings and pub/sub) and resolves once it is
   * stored, with its id. Rejects with NotFoundError, QUEUE_FULL, STORAGE_FULL or STORAGE_FAILURE.
   */
  publish(name: string, payload: Payload, options?: QueuePublishOptions): Promise<QueuePublishAck> {
    // The common call, with no options, shares one options object per queue instead of building one.
    if (options === undefined) {
      let plain = this.plainPublish.get(name);
      if (!plain) this.plainPublish.set(name, (plain = Object.freeze({ queue: name })));
      return this.host.publishConfirmed(name, payload, plain) as Promise<QueuePublishAck>;
    }
    // Not `const { topic, ...rest } = options`: an object rest is a dictionary-mode object, slow to read.
    const topic = options.topic;
    return this.host.publishConfirmed(topic ?? name, payload, {
      ...options,
      topic: undefined,
      queue: name,
    } as PublishOptions) as Promise<QueuePublishAck>;
  }

  /**
   * Starts a consumer on queue `name`: an async iterable of messages (or a callback), each to be
   * settled with `ack()` or `nack()`. `await consumer.ready()` to know the server accepted it.
   */
  consume(name: string, options: ConsumeOptions = {}): QueueConsumer {
    const { prefetch, callback } = options;
    const consumer: { value: string | undefined } = { value: undefined };
    const settler = this.settler;
    const sub = this.host.open(
      {
        label: `queue '${name}'`,
        openFrame: (sid, reqId) =>
          encodeControl(FrameType.CMD, reqId, {
            op: 'queue.consume',
            queue: name,
            sid,
            ...(prefetch !== undefined ? { prefetch } : {}),
          }),
        opened: (body) => {
          if (typeof body['consumer'] === 'string') consumer.value = body['consumer'];
        },
        wrap: (frame: MsgFrame, payload: Uint8Array, responder: Responder) =>
          new QueueMessage(frame, payload, responder, settler),
      },
      callback ? { callback: (m) => callback(m as QueueMessage) } : {},
    );
    return new QueueConsumer(name, sub, consumer);
  }

  /**
   * Takes up to `max` ready messages without a consumer (an empty array when none is ready). Each must
   * be settled with `ack()`/`nack()` before the queue's ack timeout.
   */
  async pull(name: string, options: PullOptions = {}): Promise<QueueMessage[]> {
    const args: Record<string, unknown> = { queue: name };
    if (options.max !== undefined) args['max'] = options.max;
    const body = await this.host.command(
      'queue.pull',
      args,
      options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : undefined,
    );
    return asArray<Record<string, unknown>>(body, 'messages').map((item) => {
      const { frame, payload } = frameFromJson(item, { queue: name });
      return new QueueMessage(frame, payload, this.host.responder, this.settler);
    });
  }

  /**
   * Acknowledges a delivery by id (what `QueueMessage.ack()` calls). Acks of one tick are sent
   * together; each promise settles on its own.
   */
  ack(queue: string, deliveryId: string): Promise<void> {
    return this.acks.ack(queue, deliveryId);
  }

  /** Gives a delivery back by id (what `QueueMessage.nack()` calls). */
  async nack(queue: string, deliveryId: string, options: NackOptions = {}): Promise<void> {
    const args: Record<string, unknown> = { queue, delivery_id: deliveryId };
    if (options.requeue !== undefined) args['requeue'] = options.requeue;
    if (options.delayMs !== undefined) args['delay_ms'] = options.delayMs;
    if (options.error !== undefined) {
      args['error'] = options.error instanceof Error ? options.error.message : options.error;
    }
    await this.host.command('queue.nack', args);
  }

  /** A page of queue `name`'s dead letters, oldest first. */
  async deadLetters(name: string, options: { limit?: number; offset?: number } = {}): Promise<DeadLetter[]> {
    const args: Record<string, unknown> = { queue: name };
    if (options.limit !== undefined) args['limit'] = options.limit;
    if (options.offset !== undefined) args['offset'] = options.offset;
    const body = await this.host.command('dlq.list', args);
    return asArray<Record<string, unknown>>(body, 'dead_letters').map((d) => ({
      id: String(d['id']),
      reason: d['reason'] as DeadLetterReason,
      failures: typeof d['failures'] === 'number' ? d['failures'] : 0,
      lastError: typeof d['last_error'] === 'string' ? d['last_error'] : undefined,
      deadLetteredAt: typeof d['dead_lettered_at'] === 'number' ? d['dead_lettered_at'] : 0,
      message: messageFromJson(
        d['message'] && typeof d['message'] === 'object' ? (d['message'] as Record<string, unknown>) : {},
      ),
    }));
  }

  /** Puts dead letters back into the queue (all of them when `ids` is absent); returns how many. */
  async replayDeadLetters(name: string, ids?: string[]): Promise<number> {
    const args: Record<string, unknown> = { queue: name };
    if (ids !== undefined) args['ids'] = ids;
    return asCount(await this.host.command('dlq.replay', args), 'replayed');
  }

  /** Deletes dead letters (only those older than `olderThanMs` when given); returns how many. */
  async purgeDeadLetters(name: string, options: { olderThanMs?: number } = {}): Promise<number> {
    const args: Record<string, unknown> = { queue: name };
    if (options.olderThanMs !== undefined) args['older_than_ms'] = options.olderThanMs;
    return asCount(await this.host.command('dlq.purge', args), 'purged');
  }

  /** @internal sends the acks of this tick now (before a drain or close). */
  _flushAcks(): void {
    this.acks.flush();
  }
}
