/**
 * Frame layouts of the native protocol, version 1 — the byte-level truth behind `docs/protocol.md`.
 *
 * Every frame is `u32 length (big-endian) | u8 type | body`, where `length` counts the type byte and the
 * body. Control frames carry `u32 request id | UTF-8 JSON object`; PUB and MSG are binary so that the hot
 * path does no JSON at all when a message has no metadata. Only `Uint8Array`/`DataView` are used so the
 * same code runs in browsers.
 */
import { MessagingError, type WireError } from './errors.ts';

/**
 * Version 2 adds CONFIRM, the binary publisher confirm of a direct queue publish; a client that says
 * version 1 in HELLO still gets OK with a JSON body for every confirm.
 */
export const PROTOCOL_VERSION = 2;

export const FrameType = {
  HELLO: 0x01,
  WELCOME: 0x02,
  PING: 0x03,
  PONG: 0x04,
  OK: 0x05,
  ERR: 0x06,
  SUB: 0x07,
  UNSUB: 0x08,
  CMD: 0x09,
  PUB: 0x10,
  MSG: 0x11,
  CONFIRM: 0x12,
} as const;
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

const FRAME_NAMES = new Map<number, string>(Object.entries(FrameType).map(([k, v]) => [v, k]));
export function frameTypeName(type: number): string {
  return FRAME_NAMES.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}

/** PUB flag: deliver to exactly one matching subscription and answer `no_responders` when none matches. */
export const PUB_FLAG_REQUEST = 0x01;
/**
 * PUB/MSG flag: a 16-byte binary message id (ULID: 48-bit epoch ms + 80 bits) follows the flags byte.
 * Binary rather than JSON so that stamping every message with an id and timestamp costs no JSON work.
 */
export const FLAG_HAS_ID = 0x02;
export const MESSAGE_ID_BYTES = 16;

/** Bytes of a frame before its body: length prefix and type byte. */
export const FRAME_HEADER_BYTES = 5;
/** Room a frame may use beyond the payload for topic, reply and metadata. */
export const FRAME_OVERHEAD_ALLOWANCE = 64 * 1024;

/** Message metadata carried as JSON beside the payload; absent fields cost nothing on the wire. */
export interface MessageMeta {
  id?: string;
  headers?: Record<string, string>;
  /** 0 (lowest) … 5 (critical); 2 when absent. */
  priority?: number;
  ttl_ms?: number;
  correlation_id?: string;
  type?: string;
  timestamp?: number;
  traceparent?: string;
  /** Epoch milliseconds before which a durable queue must not deliver the message. */
  deliver_at?: number;
  /** Set on status messages the server sends to a reply inbox, e.g. `no_responders`. */
  status?: string;
  /** A responder's error travelling back to the requester. */
  error?: WireError;
  /** Durable deliveries: which queue, delivery tag and attempt number. */
  queue?: string;
  delivery_id?: string;
  delivery_count?: number;
  seq?: number;
  [key: string]: unknown;
}

export interface PubFrame {
  type: typeof FrameType.PUB;
  /** Non-zero asks the server to answer OK/ERR with this id (publisher confirm). */
  reqId: number;
  flags: number;
  /** Binary ULID when FLAG_HAS_ID is set (see `ulidToString`). */
  msgId: Uint8Array | undefined;
  topic: string;
  reply: string;
  meta: MessageMeta | undefined;
  payload: Uint8Array;
  /**
   * The encoded body from the topic length on (topic, reply, metadata, payload) — identical in PUB and
   * MSG, so a server can forward a message without re-encoding it (see `writeMsgFrame`).
   */
  rest: Uint8Array;
}

export interface MsgFrame {
  type: typeof FrameType.MSG;
  sid: number;
  flags: number;
  /** Binary ULID when FLAG_HAS_ID is set (see `ulidToString`). */
  msgId: Uint8Array | undefined;
  topic: string;
  reply: string;
  meta: MessageMeta | undefined;
  payload: Uint8Array;
  /** As in PubFrame (absent on frames built by hand rather than decoded). */
  rest?: Uint8Array;
}

/**
 * The confirm of a PUB addressed to one durable queue (`meta.queue`), protocol version 2: the message is
 * stored in that queue. Binary — `u32 request id | 16-byte message id` — because a producer with
 * confirms gets one per message, and a JSON OK cost both sides more than storing the message did.
 */
export interface ConfirmFrame {
  type: typeof FrameType.CONFIRM;
  reqId: number;
  /** Binary ULID (see `ulidToString`); a view into the read buffer. */
  msgId: Uint8Array;
}

/** Bytes of a whole CONFIRM frame, length prefix included. */
export const CONFIRM_FRAME_BYTES = 4 + 1 + 4 + MESSAGE_ID_BYTES;

/** Writes a CONFIRM frame at `offset` of `out` (room for `CONFIRM_FRAME_BYTES` must be there). */
export function writeConfirmFrame(out: Uint8Array, offset: number, reqId: number, msgId: Uint8Array): void {
  writeU32(out, offset, CONFIRM_FRAME_BYTES - 4);
  out[offset + 4] = FrameType.CONFIRM;
  writeU32(out, offset + 5, reqId >>> 0);
  out.set(msgId, offset + 9);
}

export type ControlType =
  | typeof FrameType.HELLO
  | typeof FrameType.WELCOME
  | typeof FrameType.OK
  | typeof FrameType.ERR
  | typeof FrameType.SUB
  | typeof FrameType.UNSUB
  | typeof FrameType.CMD;

export interface ControlFrame {
  type: ControlType;
  reqId: number;
  body: Record<string, unknown>;
}

export interface PingFrame {
  type: typeof FrameType.PING | typeof FrameType.PONG;
}

export type Frame = PubFrame | MsgFrame | ControlFrame | PingFrame | ConfirmFrame;

// ---------------------------------------------------------------------------------------------------------
// UTF-8 helpers. Topics are short and almost always ASCII, so an ASCII fast path avoids TextDecoder's
// per-call cost on the hot path.

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

export function utf8Encode(text: string): Uint8Array {
  return encoder.encode(text);
}

/** Decodes UTF-8, throwing PROTOCOL_ERROR on invalid sequences instead of inventing U+FFFD. */
export function utf8Decode(bytes: Uint8Array, start: number, end: number): string {
  if (end - start <= 64) {
    let ascii = '';
    let i = start;
    for (; i < end; i++) {
      const b = bytes[i]!;
      if (b >= 0x80) break;
      ascii += String.fromCharCode(b);
    }
    if (i === end) return ascii;
  }
  try {
    return strictDecoder.decode(bytes.subarray(start, end));
  } catch (err) {
    throw new MessagingError('PROTOCOL_ERROR', 'string field is not valid UTF-8', { cause: err });
  }
}

// The last topic decoded, as bytes and string: a stream of messages mostly repeats one topic, and
// comparing a few bytes is much cheaper than building the string again. One entry, module-wide: the
// decoders run one at a time (no re-entrancy), whichever connection they serve.
const TOPIC_CACHE_BYTES = 64;
const cachedTopicBytes = new Uint8Array(TOPIC_CACHE_BYTES);
let cachedTopicLength = -1;
let cachedTopic = '';

function decodeTopic(bytes: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n === cachedTopicLength) {
    let i = 0;
    while (i < n && bytes[start + i] === cachedTopicBytes[i]) i++;
    if (i === n) return cachedTopic;
  }
  const topic = utf8Decode(bytes, start, end);
  if (n <= TOPIC_CACHE_BYTES) {
    for (let i = 0; i < n; i++) cachedTopicBytes[i] = bytes[start + i]!;
    cachedTopicLength = n;
    cachedTopic = topic;
  }
  return topic;
}

// The same for the metadata of PUB frames: a producer mostly repeats one (`{"queue":"orders"}` on every
// direct queue publish). Shared between frames, so the object is frozen: a server that changes metadata
// builds a new object (see the broker's tracing), and a mutation would throw instead of leaking into the
// next message. Only PUB: MSG metadata reaches client applications, which may treat it as their own.
const META_CACHE_BYTES = 256;
const cachedMetaBytes = new Uint8Array(META_CACHE_BYTES);
let cachedMetaLength = -1;
let cachedMeta: MessageMeta | undefined;

function decodePubMeta(body: Uint8Array, start: number, end: number): MessageMeta {
  const n = end - start;
  if (n === cachedMetaLength) {
    let i = 0;
    while (i < n && body[start + i] === cachedMetaBytes[i]) i++;
    if (i === n) return cachedMeta!;
  }
  const meta = decodeJsonObject(FrameType.PUB, body, start, end) as MessageMeta;
  if (n <= META_CACHE_BYTES) {
    deepFreeze(meta);
    for (let i = 0; i < n; i++) cachedMetaBytes[i] = body[start + i]!;
    cachedMetaLength = n;
    cachedMeta = meta;
  }
  return meta;
}

// The metadata of a plain queue delivery, exactly as a server writes it byte by byte:
// {"priority":N,"timestamp":N,"queue":"…","delivery_id":"…","delivery_count":N}
// Read here without JSON.parse (one per delivery); anything else, or any string that would need
// unescaping or is not ASCII, returns undefined and goes to JSON.parse.
const D_PRIORITY = utf8Encode('{"priority":');
const D_TIMESTAMP = utf8Encode(',"timestamp":');
const D_QUEUE = utf8Encode(',"queue":"');
const D_DELIVERY_ID = utf8Encode('","delivery_id":"');
const D_DELIVERY_COUNT = utf8Encode('","delivery_count":');

/** Cursor of `decodeDeliveryMeta`: the offset reached, or -1 when the bytes do not match. */
let at = 0;

function literal(b: Uint8Array, o: number, end: number, lit: Uint8Array): number {
  if (o < 0 || o + lit.length > end) return -1;
  for (let i = 0; i < lit.length; i++) if (b[o + i] !== lit[i]) return -1;
  return o + lit.length;
}

/** A non-negative decimal integer of at most 15 digits starting at `o`; its end goes to `at`. */
function uint(b: Uint8Array, o: number, end: number): number {
  let n = 0;
  let i = o;
  for (; i < end && i - o < 15; i++) {
    const c = b[i]!;
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
  }
  at = i === o || (b[o] === 0x30 && i - o > 1) ? -1 : i;
  return n;
}

/** Printable ASCII up to the next quote, with no backslash; its end (the quote) goes to `at`. */
function plainString(b: Uint8Array, o: number, end: number): string {
  let text = '';
  for (let i = o; i < end; i++) {
    const c = b[i]!;
    if (c === 0x22) {
      at = i;
      return text;
    }
    if (c < 0x20 || c > 0x7e || c === 0x5c) break;
    text += String.fromCharCode(c);
  }
  at = -1;
  return '';
}

function decodeDeliveryMeta(b: Uint8Array, start: number, end: number): MessageMeta | undefined {
  if (end - start > 512) return undefined;
  let o = literal(b, start, end, D_PRIORITY);
  if (o < 0) return undefined;
  const priority = uint(b, o, end);
  o = literal(b, at, end, D_TIMESTAMP);
  if (o < 0) return undefined;
  const timestamp = uint(b, o, end);
  o = literal(b, at, end, D_QUEUE);
  if (o < 0) return undefined;
  const queue = plainString(b, o, end);
  o = literal(b, at, end, D_DELIVERY_ID);
  if (o < 0) return undefined;
  const deliveryId = plainString(b, o, end);
  o = literal(b, at, end, D_DELIVERY_COUNT);
  if (o < 0) return undefined;
  const deliveryCount = uint(b, o, end);
  if (at < 0 || at !== end - 1 || b[at] !== 0x7d) return undefined;
  return { priority, timestamp, queue, delivery_id: deliveryId, delivery_count: deliveryCount };
}

function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  Object.freeze(value);
  for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) >= 0x80) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Encoding

const EMPTY = new Uint8Array(0);

export function encodeControl(type: ControlType, reqId: number, body: object): Uint8Array {
  const json = encoder.encode(JSON.stringify(body));
  const length = 1 + 4 + json.length;
  const out = new Uint8Array(4 + length);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(0, length);
  out[4] = type;
  view.setUint32(5, reqId >>> 0);
  out.set(json, 9);
  return out;
}

const PING_BYTES = Uint8Array.of(0, 0, 0, 1, FrameType.PING);
const PONG_BYTES = Uint8Array.of(0, 0, 0, 1, FrameType.PONG);
export function encodePing(): Uint8Array {
  return PING_BYTES;
}
export function encodePong(): Uint8Array {
  return PONG_BYTES;
}

export function encodeError(reqId: number, error: WireError): Uint8Array {
  return encodeControl(FrameType.ERR, reqId, error);
}

/**
 * Encodes PUB (first field = request id) or MSG (first field = subscription id). Both share one layout:
 * `u32 id | u8 flags | [16-byte message id] | u16 topic | topic | u16 reply | reply | u32 meta | meta JSON |
 * payload`.
 */
export function encodeMessage(
  type: typeof FrameType.PUB | typeof FrameType.MSG,
  id: number,
  flags: number,
  topic: string,
  reply: string,
  meta: MessageMeta | undefined,
  payload: Uint8Array,
  msgId?: Uint8Array,
): Uint8Array {
  const topicBytes = topic.length <= 64 && isAscii(topic) ? asciiBytes(topic) : encoder.encode(topic);
  const replyBytes = reply ? encoder.encode(reply) : EMPTY;
  const metaBytes = meta ? encoder.encode(JSON.stringify(meta)) : EMPTY;
  const size = messageFrameSize(
    topicBytes.length,
    replyBytes.length,
    metaBytes.length,
    payload.length,
    msgId,
  );
  const out = new Uint8Array(size);
  writeMessageFrame(out, 0, type, id, flags, msgId, topicBytes, replyBytes, metaBytes, payload);
  return out;
}

function asciiBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/**
 * Bytes of a whole PUB/MSG frame (length prefix included) with these encoded parts. Throws BAD_REQUEST
 * for a topic or reply that does not fit its 16-bit length, or a message id that is not 16 bytes — before
 * anything is written, so a caller that reserves room first never leaves a half-written frame.
 */
export function messageFrameSize(
  topicBytes: number,
  replyBytes: number,
  metaBytes: number,
  payloadBytes: number,
  msgId: Uint8Array | undefined,
): number {
  if (topicBytes > 0xffff || replyBytes > 0xffff) {
    throw new MessagingError('BAD_REQUEST', 'topic and reply must each be shorter than 65536 bytes');
  }
  let idLen = 0;
  if (msgId) {
    if (msgId.length !== MESSAGE_ID_BYTES)
      throw new MessagingError('BAD_REQUEST', 'message id must be 16 bytes');
    idLen = MESSAGE_ID_BYTES;
  }
  return 4 + 1 + 4 + 1 + idLen + 2 + topicBytes + 2 + replyBytes + 4 + metaBytes + payloadBytes;
}

/**
 * Writes a PUB/MSG frame from already encoded parts into `out` at `offset`, which must have room for
 * `messageFrameSize(...)` bytes (call it first: it validates). Lets a client encode a publish straight
 * into its output buffer instead of allocating a frame per message. Returns the offset after the frame.
 */
export function writeMessageFrame(
  out: Uint8Array,
  offset: number,
  type: typeof FrameType.PUB | typeof FrameType.MSG,
  id: number,
  flags: number,
  msgId: Uint8Array | undefined,
  topic: Uint8Array,
  reply: Uint8Array,
  meta: Uint8Array,
  payload: Uint8Array,
): number {
  let o = writeMessageHead(out, offset, type, id, flags, msgId, topic, reply, meta.length, payload.length);
  if (meta.length) {
    out.set(meta, o);
    o += meta.length;
  }
  if (payload.length) {
    out.set(payload, o);
    o += payload.length;
  }
  return o;
}

/**
 * Writes a PUB or MSG frame up to its metadata, for a caller that writes the `metaLength` bytes of
 * metadata and then the `payloadLength` bytes of payload itself (e.g. a JSON string encoded in place).
 * Returns the offset where the metadata goes.
 */
export function writeMessageHead(
  out: Uint8Array,
  offset: number,
  type: typeof FrameType.PUB | typeof FrameType.MSG,
  id: number,
  flags: number,
  msgId: Uint8Array | undefined,
  topic: Uint8Array,
  reply: Uint8Array,
  metaLength: number,
  payloadLength: number,
): number {
  const idLen = msgId ? MESSAGE_ID_BYTES : 0;
  const length = 1 + 4 + 1 + idLen + 2 + topic.length + 2 + reply.length + 4 + metaLength + payloadLength;
  // Plain byte stores: cheaper than a DataView per message on this hot path.
  writeU32(out, offset, length);
  out[offset + 4] = type;
  writeU32(out, offset + 5, id >>> 0);
  out[offset + 9] = msgId ? flags | FLAG_HAS_ID : flags & ~FLAG_HAS_ID;
  let o = offset + 10;
  if (msgId) {
    out.set(msgId, o);
    o += MESSAGE_ID_BYTES;
  }
  o = writeField16(out, o, topic);
  o = writeField16(out, o, reply);
  writeU32(out, o, metaLength);
  return o + 4;
}

/** A u16 length and the bytes; short fields by hand, where `set`'s fixed cost outweighs the copy. */
function writeField16(out: Uint8Array, o: number, bytes: Uint8Array): number {
  const n = bytes.length;
  out[o] = n >>> 8;
  out[o + 1] = n & 0xff;
  o += 2;
  if (n <= 32) for (let i = 0; i < n; i++) out[o + i] = bytes[i]!;
  else out.set(bytes, o);
  return o + n;
}

function writeU32(out: Uint8Array, o: number, v: number): void {
  out[o] = v >>> 24;
  out[o + 1] = (v >>> 16) & 0xff;
  out[o + 2] = (v >>> 8) & 0xff;
  out[o + 3] = v & 0xff;
}

/** Bytes `writeMsgFrame` writes for a message whose encoded rest is `restLength` bytes. */
export function msgFrameSize(restLength: number): number {
  return 4 + 1 + 4 + 1 + MESSAGE_ID_BYTES + restLength;
}

/**
 * Writes a MSG frame for subscription `sid` into `out` at `offset` from a decoded PUB's `rest` bytes and
 * a message id — a server forwards a message this way with one copy and no re-encoding. Returns the
 * offset after the frame.
 */
export function writeMsgFrame(
  out: Uint8Array,
  offset: number,
  sid: number,
  msgId: Uint8Array,
  rest: Uint8Array,
): number {
  writeU32(out, offset, 1 + 4 + 1 + MESSAGE_ID_BYTES + rest.length);
  out[offset + 4] = FrameType.MSG;
  writeU32(out, offset + 5, sid >>> 0);
  out[offset + 9] = FLAG_HAS_ID;
  out.set(msgId, offset + 10);
  out.set(rest, offset + 10 + MESSAGE_ID_BYTES);
  return offset + 10 + MESSAGE_ID_BYTES + rest.length;
}

/** Optional parts of a PUB or MSG frame. */
export interface MessageFrameOptions {
  reply?: string;
  meta?: MessageMeta;
  flags?: number;
  msgId?: Uint8Array;
}

function encodeWithOptions(
  type: typeof FrameType.PUB | typeof FrameType.MSG,
  id: number,
  topic: string,
  payload: Uint8Array,
  o: MessageFrameOptions,
): Uint8Array {
  return encodeMessage(type, id, o.flags ?? 0, topic, o.reply ?? '', o.meta, payload, o.msgId);
}

/** A PUB frame; a non-zero `reqId` asks for a confirm. */
export function encodePub(
  reqId: number,
  topic: string,
  payload: Uint8Array,
  options: MessageFrameOptions = {},
): Uint8Array {
  return encodeWithOptions(FrameType.PUB, reqId, topic, payload, options);
}

/** A MSG frame for subscription `sid`. */
export function encodeMsg(
  sid: number,
  topic: string,
  payload: Uint8Array,
  options: MessageFrameOptions = {},
): Uint8Array {
  return encodeWithOptions(FrameType.MSG, sid, topic, payload, options);
}

/**
 * Re-targets an encoded MSG frame at another subscription id in place. Fan-out encodes a message once
 * and copies it per subscriber, patching only these four bytes.
 */
export function setMsgSid(frame: Uint8Array, sid: number): void {
  frame[5] = (sid >>> 24) & 0xff;
  frame[6] = (sid >>> 16) & 0xff;
  frame[7] = (sid >>> 8) & 0xff;
  frame[8] = sid & 0xff;
}

// ---------------------------------------------------------------------------------------------------------
// Decoding of one complete frame body (the parser has already checked the length prefix).

function snippet(bytes: Uint8Array, at: number): string {
  const from = Math.max(0, at - 8);
  const part = Array.from(bytes.subarray(from, Math.min(bytes.length, at + 8)), (b) =>
    b.toString(16).padStart(2, '0'),
  );
  return part.join(' ');
}

function bodyError(type: number, what: string, body: Uint8Array, at: number): MessagingError {
  return new MessagingError(
    'PROTOCOL_ERROR',
    `malformed ${frameTypeName(type)} frame: ${what} (at body offset ${at}, bytes: ${snippet(body, at)})`,
  );
}

function decodeJsonObject(
  type: number,
  body: Uint8Array,
  start: number,
  end: number,
): Record<string, unknown> {
  if (start === end) return {};
  let value: unknown;
  try {
    value = JSON.parse(utf8Decode(body, start, end));
  } catch {
    throw bodyError(type, 'JSON part does not parse', body, start);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw bodyError(type, 'JSON part is not an object', body, start);
  }
  return value as Record<string, unknown>;
}

/**
 * Decodes a frame from its type byte and body. `body` may be a view into a larger buffer; the payload of
 * PUB/MSG is returned as a view too (no copy), so callers that keep it past the current tick must copy.
 */
export function decodeFrame(type: number, body: Uint8Array): Frame {
  return decodeFrameBody(type, body, 0, body.length);
}

/**
 * As `decodeFrame`, for a body lying at `start..end` of `bytes` — the parser decodes in place this way,
 * without a view per frame.
 */
export function decodeFrameBody(type: number, bytes: Uint8Array, start: number, end: number): Frame {
  switch (type) {
    case FrameType.PUB:
    case FrameType.MSG:
      return decodeMessage(type, bytes, start, end);
    case FrameType.PING:
    case FrameType.PONG:
      if (end !== start)
        throw bodyError(type, 'PING/PONG must have an empty body', bytes.subarray(start, end), 0);
      return { type };
    case FrameType.CONFIRM:
      if (end - start !== 4 + MESSAGE_ID_BYTES)
        throw bodyError(
          type,
          `CONFIRM must have a ${4 + MESSAGE_ID_BYTES}-byte body`,
          bytes.subarray(start, end),
          0,
        );
      return { type, reqId: readU32(bytes, start), msgId: bytes.subarray(start + 4, end) };
    case FrameType.HELLO:
    case FrameType.WELCOME:
    case FrameType.OK:
    case FrameType.ERR:
    case FrameType.SUB:
    case FrameType.UNSUB:
    case FrameType.CMD: {
      const body = bytes.subarray(start, end);
      if (body.length < 4) throw bodyError(type, 'missing request id', body, 0);
      return { type, reqId: readU32(body, 0), body: decodeJsonObject(type, body, 4, body.length) };
    }
    default:
      throw new MessagingError(
        'UNKNOWN_FRAME_TYPE',
        `unknown frame type 0x${type.toString(16).padStart(2, '0')} (this server speaks protocol version ${PROTOCOL_VERSION})`,
      );
  }
}

function readU32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** A malformed PUB/MSG body; offsets in the message are relative to the body, as the parser reports. */
function messageError(
  type: number,
  what: string,
  b: Uint8Array,
  start: number,
  end: number,
  at: number,
): MessagingError {
  return bodyError(type, what, b.subarray(start, end), at - start);
}

/**
 * Hot path: plain byte reads on the enclosing buffer, no closures or DataView, and no copies (payload,
 * message id and `rest` are views). MSG frames get no `rest`: only a server forwards those bytes, and
 * it forwards PUBs.
 */
function decodeMessage(
  type: typeof FrameType.PUB | typeof FrameType.MSG,
  b: Uint8Array,
  start: number,
  end: number,
): PubFrame | MsgFrame {
  if (end - start < 5) throw messageError(type, 'truncated header', b, start, end, start);
  const id = readU32(b, start);
  const flags = b[start + 4]!;
  let o = start + 5;
  let msgId: Uint8Array | undefined;
  if (flags & FLAG_HAS_ID) {
    if (o + MESSAGE_ID_BYTES > end) throw messageError(type, 'truncated message id', b, start, end, o);
    msgId = b.subarray(o, o + MESSAGE_ID_BYTES);
    o += MESSAGE_ID_BYTES;
  }
  const restStart = o;
  if (o + 2 > end) throw messageError(type, 'truncated topic length', b, start, end, o);
  const topicLen = (b[o]! << 8) | b[o + 1]!;
  o += 2;
  if (o + topicLen > end) throw messageError(type, 'truncated topic', b, start, end, o);
  const topic = decodeTopic(b, o, o + topicLen);
  o += topicLen;
  if (o + 2 > end) throw messageError(type, 'truncated reply length', b, start, end, o);
  const replyLen = (b[o]! << 8) | b[o + 1]!;
  o += 2;
  if (o + replyLen > end) throw messageError(type, 'truncated reply', b, start, end, o);
  const reply = replyLen ? utf8Decode(b, o, o + replyLen) : '';
  o += replyLen;
  if (o + 4 > end) throw messageError(type, 'truncated metadata length', b, start, end, o);
  const metaLen = readU32(b, o);
  o += 4;
  if (o + metaLen > end) throw messageError(type, 'truncated metadata', b, start, end, o);
  let meta: MessageMeta | undefined;
  if (metaLen) {
    const body = b.subarray(start, end);
    meta =
      type === FrameType.PUB
        ? decodePubMeta(body, o - start, o - start + metaLen)
        : (decodeDeliveryMeta(body, o - start, o - start + metaLen) ??
          (decodeJsonObject(type, body, o - start, o - start + metaLen) as MessageMeta));
  }
  o += metaLen;
  const payload = b.subarray(o, end);
  return type === FrameType.PUB
    ? { type, reqId: id, flags, msgId, topic, reply, meta, payload, rest: b.subarray(restStart, end) }
    : { type, sid: id, flags, msgId, topic, reply, meta, payload };
}
