/**
 * On-disk record format of the file engine.
 *
 *   segment  = header record*
 *   header   = "MSGLOG" 0x00 0x01 | u32 segment number | u32 CRC-32C of the preceding 12 bytes   (16 bytes)
 *   record   = u32 body length | u32 CRC-32C of body | body                                       (LE)
 *   body     = 0x01 JSON                                   — every record but messages and acks
 *            | 0x02 u32 JSON length | JSON | payload bytes — `msg` records of earlier versions (read only)
 *            | 0x03 binary msg                             — `msg` records (see below)
 *            | 0x04 f64 key | str16 queue                  — `ack` records (one ack)
 *            | 0x05 u32 n | n × f64 key | str16 queue      — `acks` records (a consumer's batch)
 *
 *   binary msg = u8 flags (1 = carried, 2 = extras follow) | f64 key | f64 timestamp | u8 priority
 *                | str16 id | str16 topic
 *                | u16 n × (str16 queue | f64 order | u32 deliveries | f64 not-before | f64 expires-at)
 *                | u16 n × (str16 stream | f64 seq)
 *                | [u32 length | JSON {h?: rarer head fields, d?: {entry index: dead-letter fact}}]
 *                | payload bytes
 *   str16      = u16 byte length | UTF-8
 *
 * Messages and acks are nearly every record a busy queue writes, so their heads are binary: building and
 * parsing JSON for them was most of the journal's CPU cost. Kinds 1 and 2 are still read, so segment
 * files of earlier versions recover as they are. The checksum covers the whole body, so a torn or
 * corrupt tail is detected and never half-applied.
 */
import type { EntryFact, MessageHead, Rec } from '../internal/records.ts';
import { crc32c } from './crc32c.ts';

export const HEADER_BYTES = 16;
export const FRAME_BYTES = 8;
/** Sanity bound while scanning: a larger length field can only be garbage. */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;

const MAGIC = Buffer.from([0x4d, 0x53, 0x47, 0x4c, 0x4f, 0x47, 0x00, 0x01]); // "MSGLOG" v1
const KIND_JSON = 1;
const KIND_MSG_JSON = 2;
const KIND_MSG = 3;
const KIND_ACK = 4;
const KIND_ACKS = 5;

const FLAG_CARRIED = 1;
const FLAG_EXTRA = 2;

export function encodeHeader(seg: number): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  MAGIC.copy(b, 0);
  b.writeUInt32LE(seg, 8);
  b.writeUInt32LE(crc32c(b, 0, 12), 12);
  return b;
}

/** The segment number in a valid header, or -1. */
export function readHeader(b: Uint8Array): number {
  if (b.length < HEADER_BYTES) return -1;
  const buf = Buffer.from(b.buffer, b.byteOffset, HEADER_BYTES);
  if (!buf.subarray(0, 8).equals(MAGIC)) return -1;
  if (buf.readUInt32LE(12) !== crc32c(buf, 0, 12)) return -1;
  return buf.readUInt32LE(8);
}

// ---- strings -------------------------------------------------------------------------------------

/** UTF-8 length of `s`; ASCII (nearly every name and id) without a call into the runtime. */
function utf8Length(s: string): number {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8');
  return s.length;
}

/** Writes a str16 whose UTF-8 length `n` the caller measured; returns the offset after it. */
function putStr(b: Buffer, o: number, s: string, n: number): number {
  b[o] = n & 0xff;
  b[o + 1] = n >>> 8;
  o += 2;
  if (n !== s.length) b.write(s, o, n, 'utf8');
  else if (n <= 32) for (let i = 0; i < n; i++) b[o + i] = s.charCodeAt(i);
  else b.write(s, o, n, 'latin1');
  return o + n;
}

/**
 * Recently decoded names: a journal repeats a few queue names and topics over and over, and comparing a
 * few bytes is cheaper than building the string again (replay decodes millions of records).
 */
class NameCache {
  private bytes = Buffer.alloc(64);
  private len = -1;
  private str = '';

  get(buf: Buffer, start: number, end: number): string {
    const n = end - start;
    if (n === this.len) {
      let i = 0;
      while (i < n && buf[start + i] === this.bytes[i]) i++;
      if (i === n) return this.str;
    }
    const s = buf.toString('utf8', start, end);
    if (n <= 64) {
      buf.copy(this.bytes, 0, start, end);
      this.len = n;
      this.str = s;
    }
    return s;
  }
}

const queueNames = new NameCache();
const streamNames = new NameCache();
const topics = new NameCache();

// ---- encoding ------------------------------------------------------------------------------------

type MsgRec = Extract<Rec, { t: 'msg' }>;

/**
 * Head fields without a binary slot: they travel in the extras JSON (with non-empty `headers`). Named one
 * by one rather than found with for…in, which cost a tenth of a message's encoding.
 */
type RareField = Exclude<keyof MessageHead, 'id' | 'topic' | 'headers' | 'priority' | 'timestamp'>;
/** Every rare field, checked by the compiler: a new head field must be added here to be journaled. */
const RARE_FIELDS: Record<RareField, true> = {
  ttl_ms: true,
  deliver_at: true,
  correlation_id: true,
  reply_to: true,
  type: true,
  trace_id: true,
};
const HEAD_RARE = Object.keys(RARE_FIELDS) as RareField[];

/**
 * Encoding is two steps so a record can be written straight into the journal's group buffer:
 * `measureRecord` sizes it (and keeps what it worked out in the module state below), then
 * `writeRecord` writes that record at a given place. Nothing may be measured in between.
 */
const enum Form {
  Msg,
  Ack,
  Acks,
  /** Pre-encoded body bytes (`json`): JSON records and the JSON-head message form. */
  Bytes,
}
let form = Form.Bytes;
let pending: Rec | undefined;
/** Bytes of the record body (after the 8-byte frame). */
let bodyBytes = 0;
const EMPTY_BUF = Buffer.alloc(0);
let json: Buffer = EMPTY_BUF;
let idLen = 0;
let topicLen = 0;
let nameLen = 0;
const qLens: number[] = [];
const sLens: number[] = [];
let extra: Buffer | undefined;

/** Bytes of the encoded record, frame included. Prepares `writeRecord`. */
export function measureRecord(rec: Rec): number {
  pending = rec;
  if (rec.t === 'msg') {
    if (measureMsg(rec)) form = Form.Msg;
    else {
      const { payload, ...rest } = rec;
      const head = Buffer.from(JSON.stringify(rest));
      json = Buffer.allocUnsafe(1 + 4 + head.length + (payload?.length ?? 0));
      json[0] = KIND_MSG_JSON;
      json.writeUInt32LE(head.length, 1);
      head.copy(json, 5);
      if (payload) json.set(payload, 5 + head.length);
      form = Form.Bytes;
      bodyBytes = json.length;
    }
    return FRAME_BYTES + bodyBytes;
  }
  if (rec.t === 'ack' || rec.t === 'acks') {
    nameLen = utf8Length(rec.q);
    if (nameLen <= 0xffff) {
      form = rec.t === 'ack' ? Form.Ack : Form.Acks;
      bodyBytes = rec.t === 'ack' ? 1 + 8 + 2 + nameLen : 1 + 4 + 8 * rec.keys.length + 2 + nameLen;
      return FRAME_BYTES + bodyBytes;
    }
  }
  const text = Buffer.from(JSON.stringify(rec));
  json = Buffer.allocUnsafe(1 + text.length);
  json[0] = KIND_JSON;
  text.copy(json, 1);
  form = Form.Bytes;
  bodyBytes = json.length;
  return FRAME_BYTES + bodyBytes;
}

/** Writes the record last measured at `b[o, o + measured size)`, checksum included. */
export function writeRecord(b: Buffer, o: number): void {
  const rec = pending!;
  pending = undefined;
  b.writeUInt32LE(bodyBytes, o);
  const body = o + FRAME_BYTES;
  if (form === Form.Msg) writeMsg(rec as MsgRec, b, body);
  else if (form === Form.Ack) {
    const ack = rec as Extract<Rec, { t: 'ack' }>;
    b[body] = KIND_ACK;
    b.writeDoubleLE(ack.key, body + 1);
    putStr(b, body + 9, ack.q, nameLen);
  } else if (form === Form.Acks) {
    const { keys, q } = rec as Extract<Rec, { t: 'acks' }>;
    b[body] = KIND_ACKS;
    b.writeUInt32LE(keys.length, body + 1);
    let at = body + 5;
    for (let i = 0; i < keys.length; i++, at += 8) b.writeDoubleLE(keys[i]!, at);
    putStr(b, at, q, nameLen);
  } else {
    json.copy(b, body);
    json = EMPTY_BUF; // do not keep a large payload alive
  }
  b.writeUInt32LE(crc32c(b, body, body + bodyBytes), o + 4);
}

/** A record in a buffer of its own (the journal writes into its slab instead; tests and tools use this). */
export function encodeRecord(rec: Rec): Buffer {
  const b = Buffer.allocUnsafe(measureRecord(rec));
  writeRecord(b, 0);
  return b;
}

/** Sizes the binary form; false for a message it cannot hold (a field past its width). */
function measureMsg(rec: MsgRec): boolean {
  const head = rec.head;
  const { priority, timestamp } = head;
  if (!(priority >= 0 && priority <= 255 && Number.isInteger(priority)) || typeof timestamp !== 'number')
    return false;
  const qs = rec.queues;
  const ss = rec.streams;
  if (qs.length > 0xffff || ss.length > 0xffff) return false;
  idLen = utf8Length(head.id);
  topicLen = utf8Length(head.topic);
  let size = 1 + 1 + 8 + 8 + 1 + 2 + idLen + 2 + topicLen + 2 + 2;
  let wide = idLen > 0xffff || topicLen > 0xffff;
  let dead: Record<number, unknown> | undefined;
  for (let i = 0; i < qs.length; i++) {
    const f = qs[i]!;
    const n = utf8Length(f.q);
    qLens[i] = n;
    wide ||= n > 0xffff || !(f.dc >= 0 && f.dc <= 0xffffffff);
    size += 2 + n + 8 + 4 + 8 + 8;
    if (f.dead) (dead ??= {})[i] = f.dead;
  }
  for (let i = 0; i < ss.length; i++) {
    const n = utf8Length(ss[i]!.s);
    sLens[i] = n;
    wide ||= n > 0xffff;
    size += 2 + n + 8;
  }
  if (wide) return false;
  let rare: Record<string, unknown> | undefined;
  if (!isEmpty(head.headers)) (rare ??= {}).headers = head.headers;
  for (const k of HEAD_RARE) {
    const v = head[k];
    if (v !== undefined) (rare ??= {})[k] = v;
  }
  extra = undefined;
  if (rare || dead) {
    extra = Buffer.from(
      JSON.stringify(rare && dead ? { h: rare, d: dead } : rare ? { h: rare } : { d: dead }),
    );
    size += 4 + extra.length;
  }
  bodyBytes = size + (rec.payload?.length ?? 0);
  return true;
}

function writeMsg(rec: MsgRec, b: Buffer, o: number): void {
  const head = rec.head;
  b[o++] = KIND_MSG;
  b[o++] = (rec.carried ? FLAG_CARRIED : 0) | (extra ? FLAG_EXTRA : 0);
  b.writeDoubleLE(rec.key, o);
  b.writeDoubleLE(head.timestamp, o + 8);
  b[o + 16] = head.priority;
  o = putStr(b, o + 17, head.id, idLen);
  o = putStr(b, o, head.topic, topicLen);
  const qs = rec.queues;
  b.writeUInt16LE(qs.length, o);
  o += 2;
  for (let i = 0; i < qs.length; i++) {
    const f = qs[i]!;
    o = putStr(b, o, f.q, qLens[i]!);
    b.writeDoubleLE(f.o, o);
    b.writeUInt32LE(f.dc, o + 8);
    b.writeDoubleLE(f.nb, o + 12);
    b.writeDoubleLE(f.ex, o + 20);
    o += 28;
  }
  const ss = rec.streams;
  b.writeUInt16LE(ss.length, o);
  o += 2;
  for (let i = 0; i < ss.length; i++) {
    o = putStr(b, o, ss[i]!.s, sLens[i]!);
    b.writeDoubleLE(ss[i]!.seq, o);
    o += 8;
  }
  if (extra) {
    b.writeUInt32LE(extra.length, o);
    extra.copy(b, o + 4);
    o += 4 + extra.length;
    extra = undefined;
  }
  const payload = rec.payload;
  if (payload?.length) b.set(payload, o);
}

function isEmpty(o: Record<string, string> | undefined): boolean {
  for (const _ in o) return false;
  return true;
}

// ---- decoding ------------------------------------------------------------------------------------

export type Scan =
  | { ok: true; rec: Rec; len: number }
  /**
   * `torn`: the bytes end inside the record; `corrupt`: they are all there but wrong; `newer`: a whole,
   * checksummed record of a kind this version does not know — written by a newer version.
   */
  | { ok: false; why: 'torn' | 'corrupt' | 'newer'; detail: string };

/** Thrown by the binary readers when a field runs past the record; reported as corrupt. */
class Overrun extends Error {}

/**
 * Decodes the record at `off` of `buf` (which may hold more records). A `msg` record's payload is a view
 * into `buf`: copy it if it must outlive the buffer.
 */
export function decodeRecord(buf: Buffer, off: number): Scan {
  if (off + FRAME_BYTES > buf.length) return { ok: false, why: 'torn', detail: 'frame header cut short' };
  const body = buf.readUInt32LE(off);
  if (body === 0 || body > MAX_RECORD_BYTES)
    return { ok: false, why: 'corrupt', detail: `impossible length ${body}` };
  const end = off + FRAME_BYTES + body;
  if (end > buf.length) return { ok: false, why: 'torn', detail: `record of ${body} bytes cut short` };
  if (buf.readUInt32LE(off + 4) !== crc32c(buf, off + FRAME_BYTES, end))
    return { ok: false, why: 'corrupt', detail: 'checksum mismatch' };
  const len = FRAME_BYTES + body;
  try {
    const kind = buf[off + FRAME_BYTES];
    if (kind === KIND_MSG) return { ok: true, rec: decodeMsg(buf, off + FRAME_BYTES + 1, end), len };
    if (kind === KIND_ACK) {
      const o = off + FRAME_BYTES + 1;
      if (o + 10 > end) throw new Overrun();
      const key = buf.readDoubleLE(o);
      const n = buf.readUInt16LE(o + 8);
      if (o + 10 + n !== end) throw new Overrun();
      return { ok: true, rec: { t: 'ack', q: queueNames.get(buf, o + 10, end), key }, len };
    }
    if (kind === KIND_ACKS) {
      const o = off + FRAME_BYTES + 1;
      if (o + 4 > end) throw new Overrun();
      const count = buf.readUInt32LE(o);
      const at = o + 4 + 8 * count;
      if (at + 2 > end) throw new Overrun();
      const n = buf.readUInt16LE(at);
      if (at + 2 + n !== end) throw new Overrun();
      const keys = new Array<number>(count);
      for (let i = 0; i < count; i++) keys[i] = buf.readDoubleLE(o + 4 + 8 * i);
      return { ok: true, rec: { t: 'acks', q: queueNames.get(buf, at + 2, end), keys }, len };
    }
    if (kind === KIND_JSON) {
      const rec = JSON.parse(buf.toString('utf8', off + FRAME_BYTES + 1, end)) as Rec;
      return { ok: true, rec, len };
    }
    if (kind === KIND_MSG_JSON) {
      const jsonLen = buf.readUInt32LE(off + FRAME_BYTES + 1);
      const jsonStart = off + FRAME_BYTES + 5;
      if (jsonStart + jsonLen > end)
        return { ok: false, why: 'corrupt', detail: 'message header overruns record' };
      const rec = JSON.parse(buf.toString('utf8', jsonStart, jsonStart + jsonLen)) as Rec;
      if (rec.t !== 'msg') return { ok: false, why: 'corrupt', detail: 'message record of another type' };
      rec.payload = view(buf, jsonStart + jsonLen, end);
      return { ok: true, rec, len };
    }
    return { ok: false, why: 'newer', detail: `record kind ${String(kind)}` };
  } catch (err) {
    if (err instanceof Overrun) return { ok: false, why: 'corrupt', detail: 'a field overruns the record' };
    return { ok: false, why: 'corrupt', detail: `undecodable: ${(err as Error).message}` };
  }
}

/** A plain Uint8Array view: consumers get the type the interface promises, not a Buffer. */
function view(buf: Buffer, start: number, end: number): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset + start, end - start);
}

/**
 * The binary reader's cursor: module state rather than closures, since decoding never re-enters and a
 * closure per record costs more than the rest of the decoding (replay reads millions of them).
 */
let rbuf: Buffer = EMPTY_BUF;
let rpos = 0;
let rend = 0;

function need(n: number): void {
  if (rpos + n > rend) throw new Overrun();
}

function readStr(cache: NameCache | undefined): string {
  need(2);
  const n = rbuf[rpos]! | (rbuf[rpos + 1]! << 8);
  need(2 + n);
  const start = rpos + 2;
  rpos = start + n;
  return cache ? cache.get(rbuf, start, rpos) : rbuf.toString('utf8', start, rpos);
}

function decodeMsg(buf: Buffer, o: number, end: number): MsgRec {
  rbuf = buf;
  rpos = o;
  rend = end;
  need(18);
  const flags = buf[o]!;
  const key = buf.readDoubleLE(o + 1);
  const timestamp = buf.readDoubleLE(o + 9);
  const priority = buf[o + 17]!;
  rpos = o + 18;
  const id = readStr(undefined);
  const topic = readStr(topics);
  need(2);
  const nq = buf.readUInt16LE(rpos);
  rpos += 2;
  const queues: EntryFact[] = new Array<EntryFact>(nq);
  for (let i = 0; i < nq; i++) {
    const q = readStr(queueNames);
    need(28);
    const p = rpos;
    queues[i] = {
      q,
      o: buf.readDoubleLE(p),
      dc: buf.readUInt32LE(p + 8),
      nb: buf.readDoubleLE(p + 12),
      ex: buf.readDoubleLE(p + 20),
    };
    rpos = p + 28;
  }
  need(2);
  const ns = buf.readUInt16LE(rpos);
  rpos += 2;
  const streams: { s: string; seq: number }[] = new Array<{ s: string; seq: number }>(ns);
  for (let i = 0; i < ns; i++) {
    const s = readStr(streamNames);
    need(8);
    streams[i] = { s, seq: buf.readDoubleLE(rpos) };
    rpos += 8;
  }
  const head = { id, topic, headers: {}, priority, timestamp } as MessageHead;
  if (flags & FLAG_EXTRA) {
    need(4);
    const n = buf.readUInt32LE(rpos);
    need(4 + n);
    const extra = JSON.parse(buf.toString('utf8', rpos + 4, rpos + 4 + n)) as {
      h?: Record<string, unknown>;
      d?: Record<string, EntryFact['dead']>;
    };
    rpos += 4 + n;
    if (extra.h) Object.assign(head, extra.h);
    if (extra.d) for (const i in extra.d) if (queues[Number(i)]) queues[Number(i)]!.dead = extra.d[i];
  }
  const rec: MsgRec = { t: 'msg', key, head, payload: view(buf, rpos, end), queues, streams };
  rbuf = EMPTY_BUF; // do not keep the segment's buffer alive
  if (flags & FLAG_CARRIED) rec.carried = true;
  return rec;
}
