/**
 * Rebuilds state from the segment files on open. Every record is checked against its CRC-32C and applied
 * in journal order. A torn or corrupt tail of the newest segment — what a crash mid-write leaves — is
 * truncated with a warning; everything before it was written whole, so no confirmed record is lost.
 * Damage inside an older segment cannot come from a crash: the rest of that segment is skipped with a
 * warning (the file is left for inspection) and recovery continues with the next one.
 */
import { readdir, readFile, truncate, unlink } from 'node:fs/promises';
import type { State } from '../internal/state.ts';
import type { Logger } from '../types.ts';
import { MessagingError } from '../../protocol/errors.ts';
import { decodeRecord, HEADER_BYTES, readHeader } from './codec.ts';
import { SEGMENT_RE, segmentPath } from './segment-log.ts';

export interface RecoveredSegment {
  seg: number;
  /** Valid bytes (after any truncation). */
  size: number;
}

export interface Recovery {
  segments: RecoveredSegment[];
  records: number;
}

export async function listSegments(dir: string): Promise<number[]> {
  const names = await readdir(dir);
  return names
    .map((n) => SEGMENT_RE.exec(n)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

export async function recover(dir: string, state: State, logger: Logger): Promise<Recovery> {
  const segs = await listSegments(dir);
  const out: RecoveredSegment[] = [];
  let records = 0;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const last = i === segs.length - 1;
    const path = segmentPath(dir, seg);
    const buf = await readFile(path);
    if (readHeader(buf) !== seg) {
      if (last) {
        // A crash right after creating the file: nothing in it was ever confirmed.
        logger.warn(
          { segment: path, bytes: buf.length },
          'storage: newest segment has no valid header; removing it',
        );
        await unlink(path);
      } else {
        logger.warn({ segment: path }, 'storage: segment has no valid header; skipping it');
      }
      continue;
    }
    let off = HEADER_BYTES;
    while (off < buf.length) {
      const r = decodeRecord(buf, off);
      if (!r.ok && r.why === 'newer') {
        // Intact data this version cannot read: truncating it as a torn tail would destroy it.
        throw new MessagingError(
          'STORAGE_FAILURE',
          `${path} holds records written by a newer messaging_server (${r.detail} at offset ${off}); ` +
            'run that version or a later one on this directory — nothing was changed',
        );
      }
      if (!r.ok) {
        const dropped = buf.length - off;
        if (last) {
          logger.warn(
            { segment: path, offset: off, dropped_bytes: dropped, problem: r.why, detail: r.detail },
            'storage: truncating a torn or corrupt tail record of the newest segment',
          );
          await truncate(path, off);
        } else {
          logger.warn(
            { segment: path, offset: off, skipped_bytes: dropped, problem: r.why, detail: r.detail },
            'storage: corrupt record inside an older segment; skipping the rest of it',
          );
        }
        break;
      }
      state.apply(r.rec, { seg, off, len: r.len });
      records++;
      off += r.len;
    }
    out.push({ seg, size: Math.min(off, buf.length) });
  }
  return { segments: out, records };
}
