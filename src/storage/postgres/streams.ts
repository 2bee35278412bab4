/**
 * Dead letters and streams of the `postgres` engine (the counterpart of `engine.ts`).
 */
import { MessagingError } from '../../protocol/errors.ts';
import type {
  DeadLetter,
  DeadLetterReason,
  StreamInfo,
  StreamReadResult,
  StreamSpec,
  StreamSpecInput,
  StreamStart,
} from '../types.ts';
import { checkName, normalizeStreamSpec, sameSpec } from '../validate.ts';
import type { Sql } from './db.ts';
import { PgQueueEngine } from './queues.ts';
import { MSG_COLS, rowToMessage, type MessageRow } from './rows.ts';
import { ageDue, STREAM_COLS, type StreamRow } from './stream-ops.ts';

export abstract class PgStreamEngine extends PgQueueEngine {
  // ---- dead letters --------------------------------------------------------------------------------

  async listDeadLetters(
    queue: string,
    options: { limit?: number; offset?: number } = {},
  ): Promise<DeadLetter[]> {
    await this.queueRow(this.sql(), queue);
    const limit = options.limit ?? 100;
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(limit) || limit < 0 || !Number.isSafeInteger(offset) || offset < 0) {
      throw new MessagingError('BAD_REQUEST', 'limit and offset must be non-negative integers');
    }
    const rows = await this.db.query<
      MessageRow & {
        key: number;
        dead_reason: string;
        dc: number;
        dead_error: string | null;
        dead_at: number;
      }
    >(
      `SELECT e.key, e.dead_reason, e.dc, e.dead_error, e.dead_at, ${MSG_COLS}
       FROM entries e JOIN messages m ON m.key = e.key
       WHERE e.queue = $1 AND e.state = 'd' ORDER BY e.dead_at, e.key LIMIT $2 OFFSET $3`,
      [queue, limit, offset],
    );
    return rows.map((r) => {
      const dl: DeadLetter = {
        id: String(r.key),
        queue,
        reason: r.dead_reason as DeadLetterReason,
        failures: r.dc,
        dead_lettered_at: r.dead_at,
        message: rowToMessage(r),
      };
      if (r.dead_error !== null) dl.last_error = r.dead_error;
      return dl;
    });
  }

  async replayDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    return this.db.tx(async (c) => {
      await this.queueRow(c, queue);
      // Dead-letter ids (message keys) or message ids; ids the caller named first, in its order.
      const rows = (
        await c.query<{ key: number }>(
          `SELECT e.key FROM entries e JOIN messages m ON m.key = e.key
           WHERE e.queue = $1 AND e.state = 'd'
             AND ($2::text[] IS NULL OR e.key::text = ANY($2) OR m.id = ANY($2))
           ORDER BY array_position($2, e.key::text) NULLS LAST, e.dead_at, e.key
           FOR UPDATE OF e`,
          [queue, ids === undefined ? null : [...ids]],
        )
      ).rows;
      if (rows.length === 0) return 0;
      // A replayed message starts over at the tail: a fresh FIFO position, no attempts, no TTL.
      const ords = (
        await c.query<{ v: number }>(`SELECT nextval('msg_keys') AS v FROM generate_series(1, $1)`, [
          rows.length,
        ])
      ).rows
        .map((r) => r.v)
        .sort((a, b) => a - b);
      await c.query(
        `UPDATE entries e SET state = 'w', ord = v.ord, dc = 0, not_before = 0, expires_at = 0,
           dead_reason = NULL, dead_at = NULL, dead_error = NULL
         FROM unnest($2::bigint[], $3::bigint[]) AS v(key, ord) WHERE e.queue = $1 AND e.key = v.key`,
        [queue, rows.map((r) => r.key), ords],
      );
      const fx = this.fx();
      fx.note({ kind: 'queue', queue });
      await fx.apply(c);
      return rows.length;
    });
  }

  async purgeDeadLetters(queue: string, options: { olderThanMs?: number } = {}): Promise<number> {
    const cutoff = options.olderThanMs === undefined ? Infinity : this.now() - options.olderThanMs;
    return this.db.tx(async (c) => {
      await this.queueRow(c, queue);
      const gone = (
        await c.query<{ key: number }>(
          `DELETE FROM entries WHERE queue = $1 AND state = 'd' AND dead_at < $2 RETURNING key`,
          [queue, cutoff],
        )
      ).rows;
      const fx = this.fx();
      fx.release(gone.map((g) => g.key));
      await fx.apply(c);
      return gone.length;
    });
  }

  // ---- streams -------------------------------------------------------------------------------------

  async declareStream(input: StreamSpecInput): Promise<StreamSpec> {
    const spec = normalizeStreamSpec(input);
    return this.db.tx(async (c) => {
      const inserted = (
        await c.query(
          `INSERT INTO streams (name, spec) VALUES ($1, $2::json) ON CONFLICT (name) DO NOTHING RETURNING name`,
          [spec.name, JSON.stringify(spec)],
        )
      ).rows;
      if (inserted.length) {
        const fx = this.fx();
        fx.note({ kind: 'declared' });
        await fx.apply(c);
        return { ...spec };
      }
      const existing = await this.streamRow(c, spec.name);
      if (sameSpec(existing.spec, spec)) return { ...existing.spec };
      throw new MessagingError('ALREADY_EXISTS', `stream "${spec.name}" exists with different settings`);
    });
  }

  async deleteStream(name: string): Promise<void> {
    await this.db.tx(async (c) => {
      await this.lockStreams(c, [name]);
      const gone = (
        await c.query<{ key: number }>('DELETE FROM stream_entries WHERE stream = $1 RETURNING key', [name])
      ).rows;
      await c.query('DELETE FROM streams WHERE name = $1', [name]);
      const fx = this.fx();
      fx.note({ kind: 'declared' });
      fx.release(gone.map((g) => g.key));
      await fx.apply(c);
    });
  }

  async listStreams(): Promise<StreamInfo[]> {
    const now = this.now();
    let rows = await this.db.query<StreamRow>(`SELECT ${STREAM_COLS} FROM streams ORDER BY name COLLATE "C"`);
    let trimmed = false;
    for (const s of rows) {
      if (await ageDue(this.sql(), s, now)) {
        await this.retainStream(s.name, now);
        trimmed = true;
      }
    }
    if (trimmed)
      rows = await this.db.query<StreamRow>(`SELECT ${STREAM_COLS} FROM streams ORDER BY name COLLATE "C"`);
    const readers = await this.db.query<{ stream: string; reader: string; pos: number }>(
      'SELECT stream, reader, pos FROM readers',
    );
    return rows.map((s) =>
      this.info(
        s,
        readers.filter((r) => r.stream === s.name),
      ),
    );
  }

  async getStream(name: string): Promise<StreamInfo> {
    const s = await this.freshStream(name);
    const readers = await this.db.query<{ reader: string; pos: number }>(
      'SELECT reader, pos FROM readers WHERE stream = $1',
      [name],
    );
    return this.info(s, readers);
  }

  async streamRead(stream: string, options: { from: StreamStart; max: number }): Promise<StreamReadResult> {
    const max = options.max;
    // Reads never return what retention has already condemned.
    const s = await this.freshStream(stream);
    if (!Number.isSafeInteger(max) || max < 0)
      throw new MessagingError('BAD_REQUEST', 'max must be a non-negative integer');
    const start = Math.max(await this.startSeq(s, options.from), s.first_seq);
    const rows =
      max === 0
        ? []
        : await this.db.query<MessageRow & { seq: number }>(
            `SELECT se.seq, ${MSG_COLS} FROM stream_entries se JOIN messages m ON m.key = se.key
             WHERE se.stream = $1 AND se.seq >= $2 ORDER BY se.seq LIMIT $3`,
            [stream, start, max],
          );
    let next: number;
    if (rows.length) next = rows[rows.length - 1]!.seq + 1;
    else {
      const present = await this.db.query<{ seq: number | null }>(
        'SELECT min(seq) AS seq FROM stream_entries WHERE stream = $1 AND seq >= $2',
        [stream, start],
      );
      next = Math.min(present[0]?.seq ?? s.last_seq + 1, s.last_seq + 1);
    }
    return {
      messages: rows.map((r) => ({ seq: r.seq, message: rowToMessage(r) })),
      next_seq: next,
      first_seq: s.first_seq,
      last_seq: s.last_seq,
    };
  }

  private async startSeq(s: StreamRow, from: StreamStart): Promise<number> {
    if (from === 'earliest') return s.first_seq;
    if (from === 'latest') return s.last_seq + 1;
    if (from === 'last') return s.count > 0 ? s.last_seq : s.last_seq + 1;
    if (typeof from === 'object' && from !== null) {
      if ('seq' in from && Number.isSafeInteger(from.seq) && from.seq >= 0) return from.seq;
      if ('reader' in from && typeof from.reader === 'string') {
        const pos = await this.getReaderPosition(s.name, from.reader);
        if (pos === undefined)
          throw new MessagingError('NOT_FOUND', `reader "${from.reader}" does not exist`);
        return pos;
      }
      if ('time' in from && Number.isFinite(from.time)) {
        const rows = await this.db.query<{ seq: number | null }>(
          'SELECT min(seq) AS seq FROM stream_entries WHERE stream = $1 AND ts >= $2',
          [s.name, from.time],
        );
        return rows[0]?.seq ?? s.last_seq + 1;
      }
    }
    throw new MessagingError('BAD_REQUEST', 'from must be earliest, latest, last, {seq}, {time} or {reader}');
  }

  async setReaderPosition(stream: string, reader: string, nextSeq: number): Promise<void> {
    await this.streamRow(this.sql(), stream);
    checkName('reader', reader);
    if (!Number.isSafeInteger(nextSeq) || nextSeq < 0)
      throw new MessagingError('BAD_REQUEST', 'position must be a non-negative integer');
    const rows = await this.db.query(
      `INSERT INTO readers (stream, reader, pos) SELECT name, $2, $3 FROM streams WHERE name = $1
       ON CONFLICT (stream, reader) DO UPDATE SET pos = EXCLUDED.pos RETURNING reader`,
      [stream, reader, nextSeq],
    );
    if (rows.length === 0) throw new MessagingError('NOT_FOUND', `stream "${stream}" does not exist`);
  }

  async getReaderPosition(stream: string, reader: string): Promise<number | undefined> {
    await this.streamRow(this.sql(), stream);
    const rows = await this.db.query<{ pos: number }>(
      'SELECT pos FROM readers WHERE stream = $1 AND reader = $2',
      [stream, reader],
    );
    return rows[0]?.pos;
  }

  async deleteReader(stream: string, reader: string): Promise<void> {
    await this.streamRow(this.sql(), stream);
    await this.db.query('DELETE FROM readers WHERE stream = $1 AND reader = $2', [stream, reader]);
  }

  // ---- internals -----------------------------------------------------------------------------------

  private async streamRow(c: Sql, name: string): Promise<StreamRow> {
    const rows = (await c.query<StreamRow>(`SELECT ${STREAM_COLS} FROM streams WHERE name = $1`, [name]))
      .rows;
    const s = rows[0];
    if (!s) throw new MessagingError('NOT_FOUND', `stream "${name}" does not exist`);
    return s;
  }

  /** The stream row after age retention (trimmed first when something aged out). */
  private async freshStream(name: string): Promise<StreamRow> {
    const now = this.now();
    const s = await this.streamRow(this.sql(), name);
    if (!(await ageDue(this.sql(), s, now))) return s;
    await this.retainStream(name, now);
    return this.streamRow(this.sql(), name);
  }

  private info(s: StreamRow, readers: readonly { reader: string; pos: number }[]): StreamInfo {
    return {
      ...s.spec,
      first_seq: s.first_seq,
      last_seq: s.last_seq,
      messages: s.count,
      bytes: s.bytes,
      readers: Object.fromEntries(readers.map((r) => [r.reader, r.pos])),
    };
  }
}
