/**
 * Stream steps used inside other transactions: recording a message in streams (sequence assignment under
 * the stream row's lock, so sequences are gapless and ordered across servers) and retention.
 * The rules are the shared engine's (`retentionPoint`): trim from the front while over a limit.
 */
import type { StreamSpec } from '../types.ts';
import type { Sql } from './db.ts';
import type { TxEffects } from './rows.ts';

export interface StreamRow {
  name: string;
  spec: StreamSpec;
  first_seq: number;
  last_seq: number;
  count: number;
  bytes: number;
}

export const STREAM_COLS = 'name, spec, first_seq, last_seq, count, bytes';

function hasLimits(spec: StreamSpec): boolean {
  return spec.max_msgs !== undefined || spec.max_bytes !== undefined || spec.max_age_ms !== undefined;
}

/** Appends message `key` to each (locked) stream; returns the sequence assigned in each. */
export async function recordInStreams(
  c: Sql,
  streams: readonly StreamRow[],
  key: number,
  ts: number,
  size: number,
  now: number,
  fx: TxEffects,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of streams) {
    const seq = s.last_seq + 1;
    await c.query('UPDATE streams SET last_seq = $2, count = count + 1, bytes = bytes + $3 WHERE name = $1', [
      s.name,
      seq,
      size,
    ]);
    await c.query('INSERT INTO stream_entries (stream, seq, key, ts, size) VALUES ($1, $2, $3, $4, $5)', [
      s.name,
      seq,
      key,
      ts,
      size,
    ]);
    out[s.name] = seq;
    await retain(c, { ...s, last_seq: seq, count: s.count + 1, bytes: s.bytes + size }, now, fx);
  }
  return out;
}

/**
 * Trims a stream (whose row the caller has locked) to its limits at `now`; returns whether it removed
 * anything. Entries are read from the front in pages until the first one that may stay.
 */
export async function retain(c: Sql, s: StreamRow, now: number, fx: TxEffects): Promise<boolean> {
  const { max_msgs: maxMsgs, max_bytes: maxBytes, max_age_ms: maxAge } = s.spec;
  if (!hasLimits(s.spec) || s.count === 0) return false;
  let count = s.count;
  let bytes = s.bytes;
  let first = s.first_seq;
  let from = s.first_seq;
  for (let done = false; !done;) {
    const page = (
      await c.query<{ seq: number; ts: number; size: number }>(
        'SELECT seq, ts, size FROM stream_entries WHERE stream = $1 AND seq >= $2 ORDER BY seq LIMIT 256',
        [s.name, from],
      )
    ).rows;
    if (page.length === 0) break;
    for (const e of page) {
      const over =
        (maxMsgs !== undefined && count > maxMsgs) ||
        (maxBytes !== undefined && bytes > maxBytes) ||
        (maxAge !== undefined && e.ts <= now - maxAge);
      if (!over) {
        done = true;
        break;
      }
      count--;
      bytes -= e.size;
      first = e.seq + 1;
    }
    from = page[page.length - 1]!.seq + 1;
    if (page.length < 256) break;
  }
  if (first <= s.first_seq) return false;
  const gone = (
    await c.query<{ key: number }>(
      'DELETE FROM stream_entries WHERE stream = $1 AND seq < $2 RETURNING key',
      [s.name, first],
    )
  ).rows;
  await c.query('UPDATE streams SET first_seq = $2, count = $3, bytes = $4 WHERE name = $1', [
    s.name,
    first,
    count,
    bytes,
  ]);
  fx.release(gone.map((g) => g.key));
  s.first_seq = first;
  s.count = count;
  s.bytes = bytes;
  return true;
}

/** Whether age retention has something to remove from the stream now (a cheap, lock-free look). */
export async function ageDue(c: Sql, s: StreamRow, now: number): Promise<boolean> {
  const maxAge = s.spec.max_age_ms;
  if (maxAge === undefined || s.count === 0) return false;
  const rows = (
    await c.query<{ ts: number }>('SELECT ts FROM stream_entries WHERE stream = $1 ORDER BY seq LIMIT 1', [
      s.name,
    ])
  ).rows;
  const ts = rows[0]?.ts;
  return ts !== undefined && ts <= now - maxAge;
}
