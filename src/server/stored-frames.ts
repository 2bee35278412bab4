/**
 * MSG frames for stored messages — queue deliveries and stream items — written straight into a session's
 * outbound buffer. This runs once per durable delivery, so the common case (a message with no optional
 * fields and a ULID id) writes its metadata JSON byte by byte, with no string, object or buffer per
 * delivery; anything else builds the JSON as a string first. Both give the same bytes.
 */
import { FrameType, messageFrameSize, ulidInto, writeMessageHead } from '../protocol/index.ts';
import type { Delivery, Message } from '../storage/types.ts';
import type { Session } from './session.ts';

const EMPTY_BYTES = new Uint8Array(0);
const ascii = (text: string): Uint8Array => Buffer.from(text, 'latin1');

const PRIORITY = ascii('{"priority":');
const TIMESTAMP = ascii(',"timestamp":');
const DELIVERY_COUNT = ascii(',"delivery_count":');
/** Bytes a decimal safe integer takes at most. */
const MAX_INT_DIGITS = 16;

/** The constant part of one consumer's delivery metadata, encoded once when the consumer starts. */
export interface DeliveryFields {
  /** `,"queue":"<name>","delivery_id":` */
  bytes: Uint8Array;
  /** The same as JSON text, for the general path. */
  json: string;
}

export function deliveryFields(queue: string): DeliveryFields {
  const json = `,"queue":${JSON.stringify(queue)},"delivery_id":`;
  return { bytes: Buffer.from(json, 'utf8'), json };
}

/**
 * The MSG metadata JSON of a stored message as a string. Same fields, same order as the byte path: the
 * message's own (`traceparent` for its trace id), then `tail` — the delivery's fields, already JSON
 * (`,"queue":…` or `,"stream":…`) — and the string id when it is not a ULID.
 */
function metaJson(message: Message, tail: string, binaryId: boolean): string {
  let json = `{"priority":${message.priority},"timestamp":${message.timestamp}`;
  for (const _ in message.headers) {
    json += `,"headers":${JSON.stringify(message.headers)}`;
    break;
  }
  if (message.ttl_ms !== undefined) json += `,"ttl_ms":${message.ttl_ms}`;
  if (message.deliver_at !== undefined) json += `,"deliver_at":${message.deliver_at}`;
  if (message.correlation_id !== undefined)
    json += `,"correlation_id":${JSON.stringify(message.correlation_id)}`;
  if (message.type !== undefined) json += `,"type":${JSON.stringify(message.type)}`;
  if (message.trace_id !== undefined) json += `,"traceparent":${JSON.stringify(message.trace_id)}`;
  json += tail;
  if (!binaryId) json += `,"id":${JSON.stringify(message.id)}`;
  return json + '}';
}

/** Encoded topics of recent deliveries: a queue's messages mostly share one topic. */
let lastTopic = '';
let lastTopicBytes: Uint8Array = EMPTY_BYTES;

function topicBytes(topic: string): Uint8Array {
  if (topic !== lastTopic) {
    lastTopicBytes = Buffer.from(topic, 'utf8');
    lastTopic = topic;
  }
  return lastTopicBytes;
}

/**
 * The binary id of the message being written: parsed into this scratch array, not a new one per
 * delivery, since the frame writer copies it at once.
 */
const ID_BYTES = new Uint8Array(16);

function binaryId(message: Message): Uint8Array | undefined {
  return ulidInto(message.id, ID_BYTES, 0) ? ID_BYTES : undefined;
}

/** Sends subscription `sid` a MSG frame carrying a stored message; `tail` as in `metaJson`. */
export function sendStored(session: Session, sid: number, message: Message, tail: string): void {
  const msgId = binaryId(message);
  const meta = metaJson(message, tail, msgId !== undefined);
  const metaLength = Buffer.byteLength(meta, 'utf8');
  const topic = topicBytes(message.topic);
  const reply = message.reply_to ? Buffer.from(message.reply_to, 'utf8') : EMPTY_BYTES;
  const payload = message.payload;
  const size = messageFrameSize(topic.length, reply.length, metaLength, payload.length, msgId);
  const at = session.reserve(size);
  const out = session.outBuffer;
  const metaAt = writeMessageHead(
    out,
    at,
    FrameType.MSG,
    sid,
    0,
    msgId,
    topic,
    reply,
    metaLength,
    payload.length,
  );
  out.write(meta, metaAt, metaLength, 'utf8');
  out.set(payload, metaAt + metaLength);
  session.commit(size);
}

/** Sends a queue delivery to consumer `sid`; `fields` from `deliveryFields` for its queue. */
export function sendDelivery(
  session: Session,
  sid: number,
  delivery: Delivery,
  fields: DeliveryFields,
): void {
  const message = delivery.message;
  const msgId = isPlain(message) && isPlainAscii(delivery.delivery_id) ? binaryId(message) : undefined;
  if (!msgId) {
    const id = JSON.stringify(delivery.delivery_id);
    sendStored(session, sid, message, `${fields.json}${id},"delivery_count":${delivery.delivery_count}`);
    return;
  }
  const topic = topicBytes(message.topic);
  const payload = message.payload;
  const id = delivery.delivery_id;
  const metaBound =
    PRIORITY.length +
    TIMESTAMP.length +
    DELIVERY_COUNT.length +
    fields.bytes.length +
    id.length +
    3 * MAX_INT_DIGITS +
    3;
  // The head's size does not depend on the metadata's length: the metadata goes first, then the head.
  const headSize = messageFrameSize(topic.length, 0, 0, 0, msgId);
  const at = session.reserve(headSize + metaBound + payload.length);
  const out = session.outBuffer;
  let o = at + headSize;
  out.set(PRIORITY, o);
  o = putUint(out, o + PRIORITY.length, message.priority);
  out.set(TIMESTAMP, o);
  o = putUint(out, o + TIMESTAMP.length, message.timestamp);
  out.set(fields.bytes, o);
  o += fields.bytes.length;
  out[o++] = 0x22; // "
  for (let i = 0; i < id.length; i++) out[o++] = id.charCodeAt(i);
  out[o++] = 0x22;
  out.set(DELIVERY_COUNT, o);
  o = putUint(out, o + DELIVERY_COUNT.length, delivery.delivery_count);
  out[o++] = 0x7d; // }
  const metaLength = o - (at + headSize);
  writeMessageHead(out, at, FrameType.MSG, sid, 0, msgId, topic, EMPTY_BYTES, metaLength, payload.length);
  out.set(payload, o);
  session.commit(headSize + metaLength + payload.length);
}

/** A message whose metadata has only priority and timestamp (besides the delivery's fields). */
function isPlain(m: Message): boolean {
  if (
    m.ttl_ms !== undefined ||
    m.deliver_at !== undefined ||
    m.correlation_id !== undefined ||
    m.type !== undefined ||
    m.trace_id !== undefined ||
    m.reply_to !== undefined
  )
    return false;
  for (const _ in m.headers) return false;
  return (
    Number.isSafeInteger(m.priority) &&
    m.priority >= 0 &&
    Number.isSafeInteger(m.timestamp) &&
    m.timestamp >= 0
  );
}

/** Printable ASCII that JSON writes as is (no quote, backslash or control character). */
function isPlainAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

/** Writes a non-negative safe integer in decimal; returns the offset after it. */
function putUint(out: Uint8Array, o: number, n: number): number {
  let digits = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
  let end = o + digits;
  for (let x = n; end > o; x = Math.floor(x / 10)) out[--end] = 48 + (x % 10);
  return o + digits;
}
