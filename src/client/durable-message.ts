/**
 * Messages from durable queues and streams: `QueueMessage` (acknowledged with `ack`/`nack`) and
 * `StreamMessage` (numbered by `seq`). Both arrive either as MSG frames (a consumer, a stream
 * subscription) or as JSON in a command's OK body (`queue.pull`, `stream.read`, dead letters); the JSON
 * form is turned into the same frame shape here, so every message type has one constructor.
 */
import { FrameType, ulidFromString, utf8Encode, type MessageMeta, type MsgFrame } from '../protocol/index.ts';
import { Message, type Responder } from './message.ts';

/** How a delivery is settled when it is not acknowledged. */
export interface NackOptions {
  /** true (default): back to the queue; false: to the dead letters with reason `rejected`. */
  requeue?: boolean;
  /** With `requeue`: deliver again no sooner than this many milliseconds from now. */
  delayMs?: number;
  /** Kept as the dead letter's `last_error` (an Error contributes its message). */
  error?: string | Error;
}

/** @internal What a QueueMessage needs to settle itself; implemented by `Queues`. */
export interface Settler {
  ack(queue: string, deliveryId: string): Promise<void>;
  nack(queue: string, deliveryId: string, options?: NackOptions): Promise<void>;
}

/**
 * A message delivered by a durable queue: it stays in flight for this consumer until `ack()`, `nack()`,
 * its queue's ack timeout, or the connection's close. Delivery is at least once: a message may come
 * again (with a higher `deliveryCount`) when an earlier attempt was not acknowledged in time.
 */
export class QueueMessage extends Message {
  /** @internal built by a consumer or `queues.pull` */
  constructor(
    frame: MsgFrame,
    payload: Uint8Array,
    responder: Responder | undefined,
    private readonly settler: Settler,
  ) {
    super(frame, payload, responder);
  }

  /** The queue that delivered the message. */
  override get queue(): string {
    return this.meta.queue ?? '';
  }
  /** The delivery tag: valid for this attempt, on this connection, until settled. */
  override get deliveryId(): string {
    return this.meta.delivery_id ?? '';
  }
  /** 1 on the first delivery, incremented on every redelivery. */
  override get deliveryCount(): number {
    return this.meta.delivery_count ?? 1;
  }

  /**
   * Acknowledges the delivery: the queue forgets the message. Resolves on the server's OK; rejects with
   * UNKNOWN_DELIVERY when the delivery was already settled, timed out, or belongs to a closed connection.
   * Acks of the same tick travel together as one `queue.ack`.
   */
  ack(): Promise<void> {
    return this.settler.ack(this.queue, this.deliveryId);
  }

  /**
   * Gives the delivery back: requeued (by default, optionally after `delayMs`) or, with
   * `requeue: false`, moved to the dead letters with reason `rejected`. Resolves on the server's OK.
   */
  nack(options: NackOptions = {}): Promise<void> {
    return this.settler.nack(this.queue, this.deliveryId, options);
  }
}

/** A message recorded in a stream, numbered by `seq` (1, 2, 3…). Reading a stream never removes it. */
export class StreamMessage extends Message {
  /** @internal built by a stream subscription or `streams.read` */
  constructor(
    frame: MsgFrame,
    payload: Uint8Array,
    responder: Responder | undefined,
    /** The stream the message was read from. */
    readonly stream: string,
  ) {
    super(frame, payload, responder);
  }

  /** The message's sequence number in its stream. */
  override get seq(): number {
    return this.meta.seq ?? 0;
  }
}

// ---- messages as JSON (docs/protocol.md, "Message fields in JSON") ----------------------------------

/** Decodes standard base64 with the platform's `atob`, so this stays browser-safe. */
export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Fields of the JSON form that are not metadata. */
const NOT_META = new Set(['topic', 'payload_base64', 'payload', 'reply', 'reply_to']);

/**
 * Turns a message in its JSON form (`id`, `topic`, `headers`, …, `payload_base64`, plus any delivery
 * fields) into the frame shape a Message is built from. A ULID id becomes the binary id, as on a MSG
 * frame; unknown fields stay in `meta`, so nothing the server sends is lost.
 */
export function frameFromJson(
  item: Record<string, unknown>,
  extra?: MessageMeta,
): { frame: MsgFrame; payload: Uint8Array } {
  const meta: MessageMeta = {};
  let msgId: Uint8Array | undefined;
  for (const [key, value] of Object.entries(item)) {
    if (NOT_META.has(key) || value === undefined || value === null) continue;
    if (key === 'id' && typeof value === 'string') {
      msgId = ulidFromString(value);
      if (msgId) continue;
    }
    meta[key] = value;
  }
  // The JSON form uses the storage's name for the trace context; MSG frames say `traceparent`.
  if (typeof meta['trace_id'] === 'string' && meta.traceparent === undefined)
    meta.traceparent = meta['trace_id'];
  if (extra) Object.assign(meta, extra);
  const b64 = item['payload_base64'];
  const text = item['payload'];
  const payload =
    typeof b64 === 'string'
      ? fromBase64(b64)
      : typeof text === 'string'
        ? utf8Encode(text)
        : new Uint8Array(0);
  const reply = item['reply'] ?? item['reply_to'];
  const frame: MsgFrame = {
    type: FrameType.MSG,
    sid: 0,
    flags: 0,
    msgId,
    topic: typeof item['topic'] === 'string' ? item['topic'] : '',
    reply: typeof reply === 'string' ? reply : '',
    meta,
    payload,
  };
  return { frame, payload };
}

/** A plain message (e.g. a dead letter's) from its JSON form. */
export function messageFromJson(item: Record<string, unknown>, responder?: Responder): Message {
  const { frame, payload } = frameFromJson(item);
  return new Message(frame, payload, responder);
}
