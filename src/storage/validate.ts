/**
 * Normalises and checks what callers hand to storage. The protocol layer validates too, but storage is
 * also used directly (CLI tools, tests, the task layer), and a bad value journaled is a bad value forever.
 */
import { copyBytes } from '../protocol/bytes.ts';
import { monotonicFactory } from 'ulid';
import { MessagingError } from '../protocol/errors.ts';
import {
  DEFAULT_PRIORITY,
  QUEUE_DEFAULTS,
  type Message,
  type MessageInput,
  type MessageType,
  type Priority,
  type QueueSpec,
  type QueueSpecInput,
  type StreamSpec,
  type StreamSpecInput,
} from './types.ts';

const MESSAGE_TYPES: ReadonlySet<string> = new Set<MessageType>([
  'event',
  'command',
  'query',
  'reply',
  'notification',
]);
const nextUlid = monotonicFactory();

function bad(message: string): MessagingError {
  return new MessagingError('BAD_REQUEST', message);
}

/** Names of queues, streams and readers: 1–255 characters, no whitespace or control characters. */
/** The error of an ack, nack or touch of a delivery this consumer does not hold (every engine's). */
export function unknownDelivery(deliveryId: string): MessagingError {
  return new MessagingError(
    'UNKNOWN_DELIVERY',
    `delivery "${deliveryId}" is unknown, settled, or not held by this consumer`,
  );
}

export function checkName(kind: string, name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 255 || /[\s\p{Cc}]/u.test(name)) {
    throw bad(`${kind} name must be 1-255 characters without whitespace or control characters`);
  }
  return name;
}

function optPositiveInt(field: string, v: unknown, min = 1): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
    throw bad(`${field} must be an integer >= ${min}`);
  return v;
}

function bindings(v: unknown): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((b) => typeof b === 'string' && b.length > 0)) {
    throw bad('bindings must be an array of non-empty topic patterns');
  }
  return [...new Set(v as string[])];
}

export function normalizeQueueSpec(input: QueueSpecInput): QueueSpec {
  const spec: QueueSpec = {
    name: checkName('queue', input.name),
    bindings: bindings(input.bindings),
    overflow: input.overflow ?? QUEUE_DEFAULTS.overflow,
    ack_timeout_ms: optPositiveInt('ack_timeout_ms', input.ack_timeout_ms) ?? QUEUE_DEFAULTS.ack_timeout_ms,
    max_deliveries:
      optPositiveInt('max_deliveries', input.max_deliveries, 0) ?? QUEUE_DEFAULTS.max_deliveries,
  };
  const maxLength = optPositiveInt('max_length', input.max_length);
  if (maxLength !== undefined) spec.max_length = maxLength;
  if (spec.overflow !== 'reject-publish' && spec.overflow !== 'drop-oldest') {
    throw bad('overflow must be reject-publish or drop-oldest');
  }
  return spec;
}

export function normalizeStreamSpec(input: StreamSpecInput): StreamSpec {
  const spec: StreamSpec = { name: checkName('stream', input.name), bindings: bindings(input.bindings) };
  const age = optPositiveInt('max_age_ms', input.max_age_ms);
  const bytes = optPositiveInt('max_bytes', input.max_bytes);
  const msgs = optPositiveInt('max_msgs', input.max_msgs);
  if (age !== undefined) spec.max_age_ms = age;
  if (bytes !== undefined) spec.max_bytes = bytes;
  if (msgs !== undefined) spec.max_msgs = msgs;
  return spec;
}

/** Equal as declarations: binding order does not matter. */
export function sameSpec(a: QueueSpec | StreamSpec, b: QueueSpec | StreamSpec): boolean {
  const norm = (s: QueueSpec | StreamSpec): string =>
    JSON.stringify(
      Object.entries({ ...s, bindings: [...s.bindings].sort() }).sort(([x], [y]) => (x < y ? -1 : 1)),
    );
  return norm(a) === norm(b);
}

export function parsePriority(v: unknown): Priority {
  if (v === undefined) return DEFAULT_PRIORITY;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 5)
    throw bad('priority must be an integer 0-5');
  return v as Priority;
}

function optString(field: string, v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw bad(`${field} must be a string`);
  return v;
}

/**
 * A complete message from a publisher's input: id, headers, priority and timestamp filled in. The payload
 * is copied, because publishers (and socket readers) reuse their buffers.
 */
/**
 * The headers of every message without any: one frozen object instead of an empty one per message,
 * which a stored backlog would keep by the thousand (and every young-generation GC would copy).
 */
const NO_HEADERS: Record<string, string> = Object.freeze({});

export function normalizeMessage(input: MessageInput, now: number): Message {
  if (typeof input !== 'object' || input === null) throw bad('message must be an object');
  if (typeof input.topic !== 'string' || input.topic.length === 0)
    throw bad('topic must be a non-empty string');
  if (!(input.payload instanceof Uint8Array)) throw bad('payload must be bytes');
  let headers: Record<string, string> = NO_HEADERS;
  if (input.headers !== undefined) {
    if (typeof input.headers !== 'object' || input.headers === null) throw bad('headers must be an object');
    for (const [k, v] of Object.entries(input.headers)) {
      if (typeof v !== 'string') throw bad(`header ${k} must be a string`);
      if (headers === NO_HEADERS) headers = {};
      headers[k] = v;
    }
  }
  const timestamp = input.timestamp ?? now;
  if (typeof timestamp !== 'number' || !Number.isFinite(timestamp) || timestamp < 0)
    throw bad('timestamp must be ms since the epoch');
  const msg: Message = {
    id: optString('id', input.id) ?? nextUlid(now),
    topic: input.topic,
    headers,
    payload: copyBytes(input.payload),
    priority: parsePriority(input.priority),
    timestamp,
  };
  const ttl = optPositiveInt('ttl_ms', input.ttl_ms);
  if (ttl !== undefined) msg.ttl_ms = ttl;
  if (input.deliver_at !== undefined) {
    if (typeof input.deliver_at !== 'number' || !Number.isFinite(input.deliver_at))
      throw bad('deliver_at must be ms since the epoch');
    msg.deliver_at = input.deliver_at;
  }
  const cid = optString('correlation_id', input.correlation_id);
  if (cid !== undefined) msg.correlation_id = cid;
  const replyTo = optString('reply_to', input.reply_to);
  if (replyTo !== undefined) msg.reply_to = replyTo;
  const trace = optString('trace_id', input.trace_id);
  if (trace !== undefined) msg.trace_id = trace;
  if (input.type !== undefined) {
    if (!MESSAGE_TYPES.has(input.type))
      throw bad('type must be event, command, query, reply or notification');
    msg.type = input.type;
  }
  if (msg.id.length === 0) throw bad('id must not be empty');
  return msg;
}
