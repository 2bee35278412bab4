/**
 * On-disk record format of the file engine.
 *
 *   segment  = header record*
 *   header   = "MSGLOG" 0x00 0x01 | u32 segment number | u32 CRC-32C of the preceding 12 bytes   (16 bytes)
 *   record   = u32 body length | u32 CRC-32C of body | body                                       (LE)
 *   body     = 0x01 JSON                                   — every record but messages
 *            | 0x02 u32 JSON length | JSON | payload bytes — `msg` records; the payload stays binary
 *
 * The checksum covers the whole body, so a torn or corrupt tail is detected and never half-applied.
 */
import type { Rec } from '../internal/records.ts';
import { crc32c } from './crc32c.ts';

export const HEADER_BYTES = 16;
export const FRAME_BYTES = 8;
/** Sanity bound while scanning: a larger length field can only be garbage. */
export const MAX_RECORD_BYTES = 256 * 1024 * 1024;

const MAGIC = Buffer.from([0x4d, 0x53, 0x47, 0x4c, 0x4f, 0x47, 0x00, 0x01]); // "MSGLOG" v1
const KIND_JSON = 1;
const KIND_MSG = 2;

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

export function encodeRecord(rec: Rec): Buffer {
  if (rec.t === 'msg') {
    const { payload, ...rest } = rec;
    const json = Buffer.from(JSON.stringify(rest));
    const body = 1 + 4 + json.length + (payload?.length ?? 0);
    const b = Buffer.allocUnsafe(FRAME_BYTES + body);
    b.writeUInt32LE(body, 0);
    b[8] = KIND_MSG;
    b.writeUInt32LE(json.length, 9);
    json.copy(b, 13);
    if (payload) b.set(payload, 13 + json.length);
    b.writeUInt32LE(crc32c(b, FRAME_BYTES), 4);
    return b;
  }
  const json = Buffer.from(JSON.stringify(rec));
  const b = Buffer.allocUnsafe(FRAME_BYTES + 1 + json.length);
  b.writeUInt32LE(1 + json.length, 0);
  b[8] = KIND_JSON;
  json.copy(b, 9);
  b.writeUInt32LE(crc32c(b, FRAME_BYTES), 4);
  return b;
}

export type Scan =
  | { ok: true; rec: Rec; len: number }
  /** `torn`: the bytes end inside the record; `corrupt`: they are all there but wrong. */
  | { ok: false; why: 'torn' | 'corrupt'; detail: string };

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
  try {
    const kind = buf[off + FRAME_BYTES];
    if (kind === KIND_JSON) {
      const rec = JSON.parse(buf.toString('utf8', off + FRAME_BYTES + 1, end)) as Rec;
      return { ok: true, rec, len: FRAME_BYTES + body };
    }
    if (kind === KIND_MSG) {
      const jsonLen = buf.readUInt32LE(off + FRAME_BYTES + 1);
      const jsonStart = off + FRAME_BYTES + 5;
      if (jsonStart + jsonLen > end)
        return { ok: false, why: 'corrupt', detail: 'message header overruns record' };
      const rec = JSON.parse(buf.toString('utf8', jsonStart, jsonStart + jsonLen)) as Rec;
      if (rec.t !== 'msg') return { ok: false, why: 'corrupt', detail: 'message record of another type' };
      // A plain Uint8Array view: consumers get the type the interface promises, not a Buffer.
      rec.payload = new Uint8Array(
        buf.buffer,
        buf.byteOffset + jsonStart + jsonLen,
        end - jsonStart - jsonLen,
      );
      return { ok: true, rec, len: FRAME_BYTES + body };
    }
    return { ok: false, why: 'corrupt', detail: `unknown record kind ${String(kind)}` };
  } catch (err) {
    return { ok: false, why: 'corrupt', detail: `undecodable: ${(err as Error).message}` };
  }
}
