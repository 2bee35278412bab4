/** A received message and the publish options shared by publish, request and respond. */
import {
  copyBytes,
  MESSAGE_ID_BYTES,
  MessagingError,
  ulidFromString,
  ulidTime,
  ulidToString,
  utf8Encode,
  type ErrorCode,
  type MessageMeta,
  type MsgFrame,
} from '../protocol/index.ts';

/** Named priorities of the message model; numbers 0–5 are accepted too. */
export const PRIORITIES = { lowest: 0, low: 1, normal: 2, high: 3, highest: 4, critical: 5 } as const;
export type PriorityName = keyof typeof PRIORITIES;

/** A payload as accepted by publish: bytes as-is, strings encoded as UTF-8. */
export type Payload = Uint8Array | string;

/** Message fields a publisher may set. Absent fields cost nothing on the wire. */
export interface MessageOptions {
  headers?: Record<string, string>;
  /** 0 (lowest) … 5 (critical) or its name; the server's default is 2 (`normal`). */
  priority?: number | PriorityName;
  ttlMs?: number;
  correlationId?: string;
  type?: string;
  /** Epoch milliseconds or a Date: a durable queue holds the message until then. */
  deliverAt?: number | Date;
  /**
   * Message id. A ULID (26-character string or 16 bytes) travels as the binary message id the server
   * keeps; any other string goes in the metadata. The server stamps a ULID when absent.
   */
  id?: string | Uint8Array;
  /** W3C trace context to propagate. */
  traceparent?: string;
}

export interface PublishOptions extends MessageOptions {
  /** Topic the receiver should answer on. */
  reply?: string;
  /** Ask the server for an OK (publisher confirm); `publish` then returns a Promise. */
  confirm?: boolean;
  /** Confirm timeout; defaults to the connection's `timeoutMs`. */
  timeoutMs?: number;
  /**
   * Publish directly to this durable queue (`meta.queue`), bypassing bindings and pub/sub; the server
   * answers NOT_FOUND when it does not exist. See also `conn.queues.publish`.
   */
  queue?: string;
}

/** The body of the server's OK to a confirmed publish. */
export interface PublishAck {
  /** The message's id (ULID) as the server stored it. */
  id?: string;
  /** Pub/sub subscriptions the message reached. */
  delivered?: number;
  /** Durable queues that stored the message before the confirm. */
  queues?: string[];
  /** Streams that recorded the message: stream name → the sequence it got there. */
  streams?: Record<string, number>;
  [key: string]: unknown;
}

export function encodePayload(payload: Payload): Uint8Array {
  return typeof payload === 'string' ? utf8Encode(payload) : payload;
}

/** What a PUB frame carries besides topic and payload. */
export interface Envelope {
  /** `undefined` when nothing is set, so the hot path skips JSON entirely. */
  meta: MessageMeta | undefined;
  msgId: Uint8Array | undefined;
}

const NO_ENVELOPE: Envelope = { meta: undefined, msgId: undefined };

/** Maps publish options to the frame's metadata object and binary message id. */
export function buildEnvelope(opts: (MessageOptions & { queue?: string }) | undefined): Envelope {
  if (!opts) return NO_ENVELOPE;
  let meta: MessageMeta | undefined;
  let msgId: Uint8Array | undefined;
  const set = <K extends keyof MessageMeta>(key: K, value: MessageMeta[K] | undefined): void => {
    if (value === undefined) return;
    (meta ??= {})[key] = value;
  };
  if (opts.headers && Object.keys(opts.headers).length > 0) set('headers', opts.headers);
  if (opts.priority !== undefined) {
    const p = typeof opts.priority === 'string' ? PRIORITIES[opts.priority] : opts.priority;
    if (p === undefined)
      throw new MessagingError('BAD_REQUEST', `unknown priority '${String(opts.priority)}'`);
    set('priority', p);
  }
  set('ttl_ms', opts.ttlMs);
  set('correlation_id', opts.correlationId);
  set('type', opts.type);
  set('deliver_at', opts.deliverAt instanceof Date ? opts.deliverAt.getTime() : opts.deliverAt);
  set('traceparent', opts.traceparent);
  set('queue', opts.queue);
  if (opts.id instanceof Uint8Array) {
    if (opts.id.length !== MESSAGE_ID_BYTES) {
      throw new MessagingError('BAD_REQUEST', `a binary message id must be ${MESSAGE_ID_BYTES} bytes`);
    }
    msgId = opts.id;
  } else if (opts.id !== undefined) {
    msgId = ulidFromString(opts.id);
    if (!msgId) set('id', opts.id);
  }
  return meta || msgId ? { meta, msgId } : NO_ENVELOPE;
}

/** What a Message needs from its connection to answer; keeps message.ts free of connection.ts. */
export interface Responder {
  publish(topic: string, payload: Payload, options?: PublishOptions): void;
  /** Publishes an empty answer carrying `meta.error`. */
  publishError(topic: string, error: { code: ErrorCode; message: string }): void;
}

const decoder = new TextDecoder();
const EMPTY_HEADERS: Readonly<Record<string, string>> = Object.freeze({});
const EMPTY_META: Readonly<MessageMeta> = Object.freeze({});

/** A message delivered to a subscription. */
export class Message {
  /** Topic the message was published to. */
  readonly topic: string;
  /** Topic to answer on, or '' when the publisher expects no answer. */
  readonly reply: string;
  /**
   * The raw bytes. For pub/sub messages a view of the bytes as read from the connection (no copy: this
   * message is the only one that refers to that range); durable deliveries carry a copy.
   */
  readonly payload: Uint8Array;
  /** Every metadata field as sent, including ones this SDK version does not know. */
  readonly meta: Readonly<MessageMeta>;
  /** Subscription id the message was delivered for. */
  readonly sid: number;
  /** The server-stamped binary ULID (16 bytes), when the frame carries one. */
  readonly idBytes: Uint8Array | undefined;
  private idText: string | undefined;

  /** @internal built by the connection from a MSG frame */
  constructor(
    frame: MsgFrame,
    payload: Uint8Array,
    private readonly responder: Responder | undefined,
  ) {
    this.topic = frame.topic;
    this.reply = frame.reply;
    this.payload = payload;
    // One shared empty object for the common message without metadata, instead of one per message.
    this.meta = frame.meta ?? EMPTY_META;
    this.sid = frame.sid;
    // The id is a view into the read chunk like the payload; a caller that copied the payload wants
    // nothing tied to that chunk, so the id is copied then too.
    const id = frame.msgId;
    this.idBytes = id !== undefined && payload !== frame.payload ? copyBytes(id) : id;
  }

  /** Same as `payload`. */
  get data(): Uint8Array {
    return this.payload;
  }

  get headers(): Readonly<Record<string, string>> {
    return this.meta.headers ?? EMPTY_HEADERS;
  }

  /** The publisher's own id when it set a non-ULID one, else the message's ULID as 26 characters. */
  get id(): string | undefined {
    if (this.meta.id !== undefined) return this.meta.id;
    if (this.idBytes && this.idText === undefined) this.idText = ulidToString(this.idBytes);
    return this.idText;
  }
  get priority(): number | undefined {
    return this.meta.priority;
  }
  get correlationId(): string | undefined {
    return this.meta.correlation_id;
  }
  get type(): string | undefined {
    return this.meta.type;
  }
  /** Epoch milliseconds: the metadata's `timestamp`, else the time inside the ULID. */
  get timestamp(): number | undefined {
    return this.meta.timestamp ?? (this.idBytes ? ulidTime(this.idBytes) : undefined);
  }
  get ttlMs(): number | undefined {
    return this.meta.ttl_ms;
  }
  get deliverAt(): number | undefined {
    return this.meta.deliver_at;
  }
  get traceparent(): string | undefined {
    return this.meta.traceparent;
  }
  /** Server status, e.g. `no_responders` on a request inbox. */
  get status(): string | undefined {
    return this.meta.status;
  }
  /** Durable deliveries: queue name, delivery tag, attempt number and sequence. */
  get queue(): string | undefined {
    return this.meta.queue;
  }
  get deliveryId(): string | undefined {
    return this.meta.delivery_id;
  }
  get deliveryCount(): number | undefined {
    return this.meta.delivery_count;
  }
  get seq(): number | undefined {
    return this.meta.seq;
  }

  /** The payload decoded as UTF-8 (invalid sequences become U+FFFD). */
  string(): string {
    return decoder.decode(this.payload);
  }

  /** The payload parsed as JSON; throws a SyntaxError when it is not JSON. */
  json<T = unknown>(): T {
    return JSON.parse(this.string()) as T;
  }

  /**
   * Answers a request by publishing to `reply`. Returns false (and sends nothing) when the message has
   * no reply topic. The correlation id, when present, is carried over unless `options` sets one.
   */
  respond(payload: Payload, options?: Omit<PublishOptions, 'reply' | 'confirm' | 'queue'>): boolean {
    if (!this.reply || !this.responder) return false;
    const correlationId = options?.correlationId ?? this.meta.correlation_id;
    this.responder.publish(this.reply, payload, correlationId ? { ...options, correlationId } : options);
    return true;
  }

  /** Answers a request with an error; the requester's promise rejects with the matching typed error. */
  respondError(code: ErrorCode, message: string): boolean {
    if (!this.reply || !this.responder) return false;
    this.responder.publishError(this.reply, { code, message });
    return true;
  }
}
