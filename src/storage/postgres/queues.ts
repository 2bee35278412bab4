/**
 * The queue half of the `postgres` engine: declarations, publishing, consuming and housekeeping, each a
 * single transaction. The semantics are the shared engine's (`queue-engine.ts`) — the same validation
 * functions, the same rules for delivery counts, dead letters and overflow — expressed as row changes.
 *
 * Locking, so that servers sharing the database never deadlock on the common paths:
 * - a publisher locks the rows of its target queues (name order; exclusively only for a queue with a
 *   `max_length`, which needs its publishers counted one at a time), then its streams (name order);
 * - consumers lock entry rows with `FOR UPDATE SKIP LOCKED`: two servers taking from one queue never
 *   wait for each other and never pick the same message;
 * - `queue_counters` rows are updated last, in name order, one random shard row each (see `TxEffects`).
 * Anything else that still deadlocks is rolled back and retried by `Db.tx`.
 */
import { MessagingError } from '../../protocol/errors.ts';
import type {
  AppendResult,
  DeadLetterReason,
  Delivery,
  MessageInput,
  NackOptions,
  QueueSpec,
  QueueSpecInput,
  QueueStats,
  TickResult,
} from '../types.ts';
import { normalizeMessage, normalizeQueueSpec, sameSpec, unknownDelivery } from '../validate.ts';
import { PgBase, type QueueRow } from './base.ts';
import type { Sql } from './db.ts';
import { insertMessage, KeyAllocator, loadMessages, type TxEffects } from './rows.ts';
import { COUNTER_SHARDS } from './schema.ts';
import { recordInStreams, retain, STREAM_COLS, type StreamRow } from './stream-ops.ts';

/** An entry whose delivery failed or that is being dead-lettered. */
interface EntryRef {
  queue: string;
  key: number;
  dc: number;
  max_deliveries?: number;
}

export abstract class PgQueueEngine extends PgBase {
  /** Clock value of this instance's previous tick: delays that came due since then make queues ready. */
  private lastTickAt = 0;
  /** Message keys, taken before the publish transaction starts (see KeyAllocator). */
  protected readonly keys = new KeyAllocator(async (n) =>
    (
      await this.db.query<{ v: number }>(`SELECT nextval('msg_keys') AS v FROM generate_series(1, $1)`, [n])
    ).map((r) => r.v),
  );

  // ---- declarations --------------------------------------------------------------------------------

  async declareQueue(input: QueueSpecInput): Promise<QueueSpec> {
    const spec = normalizeQueueSpec(input);
    return this.db.tx(async (c) => {
      const inserted = (
        await c.query(
          `INSERT INTO queues (name, spec, ack_timeout_ms, max_deliveries) VALUES ($1, $2::json, $3, $4)
           ON CONFLICT (name) DO NOTHING RETURNING name`,
          [spec.name, JSON.stringify(spec), spec.ack_timeout_ms, spec.max_deliveries],
        )
      ).rows;
      if (inserted.length) {
        await c.query(
          'INSERT INTO queue_counters (name, shard) SELECT $1, g FROM generate_series(0, $2 - 1) AS g',
          [spec.name, COUNTER_SHARDS],
        );
        const fx = this.fx();
        fx.note({ kind: 'declared' });
        await fx.apply(c);
        return { ...spec };
      }
      const existing = await this.queueRow(c, spec.name);
      if (sameSpec(existing.spec, spec)) return { ...existing.spec };
      throw new MessagingError('ALREADY_EXISTS', `queue "${spec.name}" exists with different settings`);
    });
  }

  async deleteQueue(name: string): Promise<void> {
    await this.db.tx(async (c) => {
      await this.queueRow(c, name, 'FOR UPDATE');
      const keys = (
        await c.query<{ key: number }>('DELETE FROM entries WHERE queue = $1 RETURNING key', [name])
      ).rows;
      await c.query('DELETE FROM queues WHERE name = $1', [name]);
      const fx = this.fx();
      fx.note({ kind: 'declared' });
      fx.release(keys.map((k) => k.key));
      await fx.apply(c);
    });
  }

  async listQueues(): Promise<QueueSpec[]> {
    const rows = await this.db.query<{ spec: QueueSpec }>(
      'SELECT spec FROM queues ORDER BY name COLLATE "C"',
    );
    return rows.map((r) => r.spec);
  }

  async getQueue(name: string): Promise<QueueSpec> {
    return (await this.queueRow(this.sql(), name)).spec;
  }

  async purgeQueue(name: string): Promise<number> {
    return this.db.tx(async (c) => {
      await this.queueRow(c, name, 'FOR NO KEY UPDATE');
      const gone = (
        await c.query<{ key: number }>(`DELETE FROM entries WHERE queue = $1 AND state = 'w' RETURNING key`, [
          name,
        ])
      ).rows;
      const fx = this.fx();
      fx.release(gone.map((g) => g.key));
      await fx.apply(c);
      return gone.length;
    });
  }

  async stats(name: string): Promise<QueueStats> {
    const now = this.now();
    const rows = await this.db.query<{
      published: number;
      acked: number;
      dead_total: number;
      depth: number;
      delayed: number;
      in_flight: number;
      dead: number;
      oldest: number | null;
    }>(
      `SELECT c.published, c.acked, c.dead AS dead_total, s.depth, s.delayed, s.in_flight, s.dead,
         (SELECT m.ts FROM entries e JOIN messages m ON m.key = e.key
           WHERE e.queue = $1 AND e.state = 'w' AND e.not_before <= $2 ORDER BY e.ord LIMIT 1) AS oldest
       FROM (SELECT sum(published)::bigint AS published, sum(acked)::bigint AS acked,
                    sum(dead)::bigint AS dead FROM queue_counters WHERE name = $1 HAVING count(*) > 0) c,
         LATERAL (SELECT count(*) FILTER (WHERE state = 'w' AND not_before <= $2) AS depth,
                         count(*) FILTER (WHERE state = 'w' AND not_before > $2) AS delayed,
                         count(*) FILTER (WHERE state = 'f') AS in_flight,
                         count(*) FILTER (WHERE state = 'd') AS dead
                  FROM entries WHERE queue = $1) s`,
      [name, now],
    );
    const r = rows[0];
    if (!r) throw new MessagingError('NOT_FOUND', `queue "${name}" does not exist`);
    return {
      queue: name,
      depth: r.depth,
      in_flight: r.in_flight,
      delayed: r.delayed,
      dead_letters: r.dead,
      oldest_message_age_ms: r.oldest === null ? null : Math.max(0, now - r.oldest),
      published_total: r.published,
      acked_total: r.acked,
      dead_lettered_total: r.dead_total,
    };
  }

  // ---- publishing ----------------------------------------------------------------------------------

  append(queues: string | readonly string[], message: MessageInput): Promise<AppendResult> {
    return this.publish({ queues: typeof queues === 'string' ? [queues] : queues }, message);
  }

  streamAppend(streams: string | readonly string[], message: MessageInput): Promise<AppendResult> {
    return this.publish({ streams: typeof streams === 'string' ? [streams] : streams }, message);
  }

  async publish(
    targets: { queues?: readonly string[]; streams?: readonly string[] },
    input: MessageInput,
  ): Promise<AppendResult> {
    const now = this.now();
    const msg = normalizeMessage(input, now);
    const queueNames = [...new Set(targets.queues ?? [])];
    const streamNames = [...new Set(targets.streams ?? [])];
    const key = await this.keys.next();
    return this.db.tx(async (c) => {
      const qs = await this.lockQueues(c, queueNames);
      const ss = await this.lockStreams(c, streamNames);
      if (qs.length + ss.length === 0)
        throw new MessagingError('BAD_REQUEST', 'a message needs at least one queue or stream');
      const fx = this.fx();
      const limited = qs.filter((q) => q.spec.max_length !== undefined);
      const waiting = await this.waitingCounts(
        c,
        limited.map((q) => q.name),
      );
      // All or nothing: refuse before anything is written if one reject-publish queue is full.
      for (const q of limited) {
        const max = q.spec.max_length!;
        if (q.spec.overflow === 'reject-publish' && (waiting.get(q.name) ?? 0) >= max) {
          throw new MessagingError('QUEUE_FULL', `queue "${q.name}" is full (${max} messages)`, {
            details: { queue: q.name },
          });
        }
      }
      for (const q of limited) {
        const excess = (waiting.get(q.name) ?? 0) - q.spec.max_length! + 1;
        if (q.spec.overflow !== 'drop-oldest' || excess <= 0) continue;
        // Oldest waiting first: ready ones by FIFO position, then delayed ones. Rows a consumer is taking
        // right now are skipped: they are leaving the waiting set anyway.
        const victims = (
          await c.query<{ key: number; dc: number }>(
            `SELECT key, dc FROM entries WHERE queue = $1 AND state = 'w'
             ORDER BY (not_before > $2), ord LIMIT $3 FOR UPDATE SKIP LOCKED`,
            [q.name, now, excess],
          )
        ).rows;
        await this.deadLetter(
          c,
          victims.map((v) => ({ queue: q.name, key: v.key, dc: v.dc })),
          'overflow',
          now,
          fx,
        );
      }
      const size = await insertMessage(c, key, msg);
      if (qs.length) {
        const nb = msg.deliver_at ?? 0;
        const ex = msg.ttl_ms !== undefined ? msg.timestamp + msg.ttl_ms : 0;
        await c.query(
          `INSERT INTO entries (queue, key, ord, prio, state, dc, not_before, expires_at)
           SELECT q, $2, $2, $3, 'w', 0, $4, $5 FROM unnest($1::text[]) AS q`,
          [qs.map((q) => q.name), key, msg.priority, nb, ex],
        );
        for (const q of qs) {
          fx.count(q.name, 'published');
          fx.note({ kind: 'queue', queue: q.name });
        }
      }
      const streams = await recordInStreams(c, ss, key, msg.timestamp, size, now, fx);
      for (const [stream, seq] of Object.entries(streams)) fx.note({ kind: 'stream', stream, seq });
      await fx.apply(c);
      return { id: msg.id, streams };
    });
  }

  /**
   * Locks the named queues' rows (name order) against deletion while the message goes in; NOT_FOUND
   * names the first missing one as given. Publishers of a queue with `max_length` also take the row
   * exclusively, so that they count its waiting messages one at a time; other publishers run in parallel.
   */
  private async lockQueues(c: Sql, names: readonly string[]): Promise<QueueRow[]> {
    if (names.length === 0) return [];
    const rows = (
      await c.query<QueueRow>(
        `SELECT name, spec, ack_timeout_ms, max_deliveries FROM queues WHERE name = ANY($1::text[])
         ORDER BY name COLLATE "C" FOR KEY SHARE`,
        [names],
      )
    ).rows;
    const byName = new Map(rows.map((r) => [r.name, r]));
    const found = names.map((n) => {
      const q = byName.get(n);
      if (!q) throw new MessagingError('NOT_FOUND', `queue "${n}" does not exist`);
      return q;
    });
    const limited = found.filter((q) => q.spec.max_length !== undefined).map((q) => q.name);
    if (limited.length) {
      await c.query(
        `SELECT 1 FROM queues WHERE name = ANY($1::text[]) ORDER BY name COLLATE "C" FOR NO KEY UPDATE`,
        [limited],
      );
    }
    return found;
  }

  protected async lockStreams(c: Sql, names: readonly string[]): Promise<StreamRow[]> {
    if (names.length === 0) return [];
    const rows = (
      await c.query<StreamRow>(
        `SELECT ${STREAM_COLS} FROM streams WHERE name = ANY($1::text[]) ORDER BY name COLLATE "C"
         FOR NO KEY UPDATE`,
        [names],
      )
    ).rows;
    const byName = new Map(rows.map((r) => [r.name, r]));
    return names.map((n) => {
      const s = byName.get(n);
      if (!s) throw new MessagingError('NOT_FOUND', `stream "${n}" does not exist`);
      return s;
    });
  }

  private async waitingCounts(c: Sql, names: readonly string[]): Promise<Map<string, number>> {
    if (names.length === 0) return new Map();
    const rows = (
      await c.query<{ queue: string; n: number }>(
        `SELECT queue, count(*) AS n FROM entries WHERE queue = ANY($1::text[]) AND state = 'w' GROUP BY queue`,
        [names],
      )
    ).rows;
    return new Map(rows.map((r) => [r.queue, r.n]));
  }

  // ---- consuming -----------------------------------------------------------------------------------

  async take(queue: string, consumerId: string, max: number): Promise<Delivery[]> {
    const now = this.now();
    return this.db.tx(async (c) => {
      const q = await this.queueRow(c, queue);
      if (!Number.isSafeInteger(max) || max < 0)
        throw new MessagingError('BAD_REQUEST', 'max must be a non-negative integer');
      if (typeof consumerId !== 'string' || consumerId.length === 0)
        throw new MessagingError('BAD_REQUEST', 'consumer id must be a non-empty string');
      const fx = this.fx();
      await this.expireDeliveries(c, now, fx, queue);
      const picked: { key: number; id: string }[] = [];
      while (picked.length < max) {
        const need = max - picked.length;
        // SKIP LOCKED: another server's take holds those rows and delivers them; we take the next ones.
        const rows = (
          await c.query<{ key: number; dc: number; expires_at: number }>(
            `SELECT key, dc, expires_at FROM entries
             WHERE queue = $1 AND state = 'w' AND not_before <= $2
             ORDER BY prio DESC, ord LIMIT $3 FOR UPDATE SKIP LOCKED`,
            [queue, now, need],
          )
        ).rows;
        const expired = rows.filter((r) => r.expires_at > 0 && r.expires_at <= now);
        if (expired.length)
          await this.deadLetter(
            c,
            expired.map((r) => ({ queue, key: r.key, dc: r.dc })),
            'expired',
            now,
            fx,
          );
        const live = rows.filter((r) => !(r.expires_at > 0 && r.expires_at <= now));
        if (live.length) {
          const ids = live.map(() => this.nextDeliveryId());
          await c.query(
            `UPDATE entries e SET state = 'f', dc = e.dc + 1, delivery_id = v.id, consumer = $2, deadline = $3
             FROM unnest($4::bigint[], $5::text[]) AS v(key, id) WHERE e.queue = $1 AND e.key = v.key`,
            [queue, this.consumerKey(consumerId), now + q.ack_timeout_ms, live.map((r) => r.key), ids],
          );
          live.forEach((r, i) => picked.push({ key: r.key, id: ids[i]! }));
        }
        if (rows.length < need) break;
      }
      await fx.apply(c);
      if (picked.length === 0) return [];
      const dcs = new Map(
        (
          await c.query<{ key: number; dc: number }>(
            'SELECT key, dc FROM entries WHERE queue = $1 AND key = ANY($2::bigint[])',
            [queue, picked.map((p) => p.key)],
          )
        ).rows.map((r) => [r.key, r.dc]),
      );
      const messages = await loadMessages(
        c,
        picked.map((p) => p.key),
      );
      const out: Delivery[] = [];
      for (const p of picked) {
        const message = messages.get(p.key);
        if (message) out.push({ queue, delivery_id: p.id, delivery_count: dcs.get(p.key) ?? 1, message });
      }
      return out;
    });
  }

  /** The in-flight entry of a delivery, locked; NOT_FOUND / UNKNOWN_DELIVERY as the contract says. */
  private async delivery(
    c: Sql,
    queue: string,
    consumerId: string,
    deliveryId: string,
  ): Promise<{ q: QueueRow; key: number; dc: number }> {
    const q = await this.queueRow(c, queue);
    const rows = (
      await c.query<{ key: number; dc: number }>(
        `SELECT key, dc FROM entries WHERE queue = $1 AND state = 'f' AND delivery_id = $2 AND consumer = $3
         FOR UPDATE`,
        [queue, deliveryId, this.consumerKey(consumerId)],
      )
    ).rows;
    const r = rows[0];
    if (!r) throw unknownDelivery(deliveryId);
    return { q, key: r.key, dc: r.dc };
  }

  async ack(queue: string, consumerId: string, deliveryId: string): Promise<void> {
    const unknown = await this.ackMany(queue, consumerId, [deliveryId]);
    if (unknown.length > 0) throw unknownDelivery(deliveryId);
  }

  /** One transaction and one DELETE for the whole batch. */
  async ackMany(queue: string, consumerId: string, deliveryIds: readonly string[]): Promise<string[]> {
    return this.db.tx(async (c) => {
      const gone = (
        await c.query<{ key: number; delivery_id: string }>(
          `DELETE FROM entries WHERE queue = $1 AND state = 'f' AND delivery_id = ANY($2::text[]) AND consumer = $3
           RETURNING key, delivery_id`,
          [queue, deliveryIds, this.consumerKey(consumerId)],
        )
      ).rows;
      if (gone.length === 0) await this.queueRow(c, queue); // NOT_FOUND for a missing queue
      const acked = new Set(gone.map((g) => g.delivery_id));
      // A repeated id is acked once; its repeats are unknown, as a second ack of it would be.
      const unknown = deliveryIds.filter((id) => !acked.delete(id));
      if (gone.length > 0) {
        const fx = this.fx();
        fx.count(queue, 'acked', gone.length);
        fx.release(gone.map((g) => g.key));
        await fx.apply(c);
      }
      return unknown;
    });
  }

  async nack(queue: string, consumerId: string, deliveryId: string, options: NackOptions): Promise<void> {
    const now = this.now();
    await this.db.tx(async (c) => {
      const d = await this.delivery(c, queue, consumerId, deliveryId);
      const delay = options.delay_ms ?? 0;
      if (!Number.isFinite(delay) || delay < 0)
        throw new MessagingError('BAD_REQUEST', 'delay_ms must be >= 0');
      const fx = this.fx();
      const ref = { queue, key: d.key, dc: d.dc, max_deliveries: d.q.max_deliveries };
      if (!options.requeue) await this.deadLetter(c, [ref], 'rejected', now, fx, options.error);
      else await this.failedDeliveries(c, [ref], now, delay, fx, options.error);
      await fx.apply(c);
    });
  }

  async touch(queue: string, consumerId: string, deliveryId: string): Promise<void> {
    const now = this.now();
    await this.db.tx(async (c) => {
      const d = await this.delivery(c, queue, consumerId, deliveryId);
      await c.query('UPDATE entries SET deadline = $3 WHERE queue = $1 AND key = $2', [
        queue,
        d.key,
        now + d.q.ack_timeout_ms,
      ]);
    });
  }

  async releaseConsumer(consumerId: string): Promise<number> {
    const now = this.now();
    return this.db.tx(async (c) => {
      const rows = (
        await c.query<EntryRef & { max_deliveries: number }>(
          `SELECT e.queue, e.key, e.dc, q.max_deliveries FROM entries e JOIN queues q ON q.name = e.queue
           WHERE e.consumer = $1 AND e.state = 'f' ORDER BY e.queue, e.key FOR UPDATE OF e`,
          [this.consumerKey(consumerId)],
        )
      ).rows;
      if (rows.length === 0) return 0;
      const fx = this.fx();
      await this.failedDeliveries(c, rows, now, 0, fx, 'consumer released');
      await fx.apply(c);
      return rows.length;
    });
  }

  async tick(): Promise<TickResult> {
    const now = this.now();
    const since = this.lastTickAt;
    this.lastTickAt = now;
    const result = await this.db.tx(async (c) => {
      const fx = this.fx();
      const redelivered = await this.expireDeliveries(c, now, fx);
      // TTL expiry of waiting messages: they must reach the dead letters even if nobody consumes.
      const expired = (
        await c.query<EntryRef>(
          `SELECT queue, key, dc FROM entries WHERE state = 'w' AND expires_at > 0 AND expires_at <= $1
           ORDER BY queue, key FOR UPDATE SKIP LOCKED`,
          [now],
        )
      ).rows;
      await this.deadLetter(c, expired, 'expired', now, fx);
      // Delays that came due since the last tick: their queues have new ready messages.
      const due = (
        await c.query<{ queue: string }>(
          `SELECT DISTINCT queue FROM entries WHERE state = 'w' AND not_before > $1 AND not_before <= $2`,
          [since, now],
        )
      ).rows;
      for (const d of due) fx.readied.add(d.queue);
      for (const queue of fx.readied) fx.note({ kind: 'queue', queue });
      const dead = fx.deadTotal;
      await fx.apply(c);
      return { redelivered, dead_lettered: dead, ready_queues: [...fx.readied].sort() };
    });
    // Stream age retention, one short transaction per stream, after the queue work has committed (a
    // stream row is never locked while entry rows are held: publishers lock them the other way round).
    const aged = await this.db.query<StreamRow>(
      `SELECT ${STREAM_COLS} FROM streams WHERE spec::jsonb ? 'max_age_ms' AND count > 0`,
    );
    for (const s of aged) await this.retainStream(s.name, now);
    const next = await this.db.query<{ at: number | null }>(
      `SELECT least(
         (SELECT min(not_before) FROM entries WHERE state = 'w' AND not_before > $1),
         (SELECT min(expires_at) FROM entries WHERE state = 'w' AND expires_at > 0),
         (SELECT min(deadline) FROM entries WHERE state = 'f'),
         (SELECT min(f.ts + (s.spec->>'max_age_ms')::float8 + 1) FROM streams s
            CROSS JOIN LATERAL (SELECT ts FROM stream_entries WHERE stream = s.name ORDER BY seq LIMIT 1) f
            WHERE s.spec::jsonb ? 'max_age_ms')) AS at`,
      [now],
    );
    return { ...result, next_due_at: next[0]?.at ?? null };
  }

  /** Age/size retention of one stream in its own transaction; skipped when another server holds it. */
  protected async retainStream(name: string, now: number): Promise<void> {
    await this.db.tx(async (c) => {
      const rows = (
        await c.query<StreamRow>(
          `SELECT ${STREAM_COLS} FROM streams WHERE name = $1 FOR NO KEY UPDATE SKIP LOCKED`,
          [name],
        )
      ).rows;
      if (!rows[0]) return;
      const fx = this.fx();
      await retain(c, rows[0], now, fx);
      await fx.apply(c);
    });
  }

  // ---- internals -----------------------------------------------------------------------------------

  /** A reader outside a transaction, for helpers that take an `Sql`. */
  protected sql(): Sql {
    return {
      query: async <R extends import('pg').QueryResultRow>(text: string, values?: unknown[]) => ({
        rows: await this.db.query<R>(text, values),
      }),
    };
  }

  /** Deliveries past their ack deadline (of one queue, or all) fail; returns how many were redelivered. */
  private async expireDeliveries(c: Sql, now: number, fx: TxEffects, queue?: string): Promise<number> {
    const rows = (
      await c.query<EntryRef & { max_deliveries: number }>(
        `SELECT e.queue, e.key, e.dc, q.max_deliveries FROM entries e JOIN queues q ON q.name = e.queue
         WHERE e.state = 'f' AND e.deadline <= $1 AND ($2::text IS NULL OR e.queue = $2)
         ORDER BY e.queue, e.key FOR UPDATE OF e SKIP LOCKED`,
        [now, queue ?? null],
      )
    ).rows;
    if (rows.length === 0) return 0;
    return this.failedDeliveries(c, rows, now, 0, fx, 'ack timeout');
  }

  /**
   * Failed deliveries (nack, timeout, consumer gone): back to their queue (after `delayMs`), or to the
   * dead letters once `max_deliveries` is reached. Returns how many went back.
   */
  private async failedDeliveries(
    c: Sql,
    refs: readonly EntryRef[],
    now: number,
    delayMs: number,
    fx: TxEffects,
    error?: string,
  ): Promise<number> {
    const dead = refs.filter((r) => (r.max_deliveries ?? 0) > 0 && r.dc >= r.max_deliveries!);
    const back = refs.filter((r) => !((r.max_deliveries ?? 0) > 0 && r.dc >= r.max_deliveries!));
    await this.deadLetter(c, dead, 'max_deliveries', now, fx, error);
    if (back.length) {
      await c.query(
        `UPDATE entries e SET state = 'w', not_before = $1, delivery_id = NULL, consumer = NULL, deadline = NULL
         FROM unnest($2::text[], $3::bigint[]) AS v(queue, key) WHERE e.queue = v.queue AND e.key = v.key`,
        [delayMs > 0 ? now + delayMs : 0, back.map((r) => r.queue), back.map((r) => r.key)],
      );
      if (delayMs === 0)
        for (const r of back) {
          fx.readied.add(r.queue);
          fx.note({ kind: 'queue', queue: r.queue });
        }
    }
    return back.length;
  }

  protected async deadLetter(
    c: Sql,
    refs: readonly EntryRef[],
    reason: DeadLetterReason,
    now: number,
    fx: TxEffects,
    error?: string,
  ): Promise<void> {
    if (refs.length === 0) return;
    await c.query(
      `UPDATE entries e SET state = 'd', dead_reason = $1, dead_at = $2, dead_error = $3, dc = v.dc,
         delivery_id = NULL, consumer = NULL, deadline = NULL
       FROM unnest($4::text[], $5::bigint[], $6::integer[]) AS v(queue, key, dc)
       WHERE e.queue = v.queue AND e.key = v.key`,
      [reason, now, error ?? null, refs.map((r) => r.queue), refs.map((r) => r.key), refs.map((r) => r.dc)],
    );
    for (const r of refs) fx.count(r.queue, 'dead');
  }
}
