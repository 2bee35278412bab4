/**
 * Rows ↔ contract objects for the `postgres` engine: messages (columns), and the per-transaction
 * bookkeeping of queue counters and message bodies that may have lost their last reference.
 */
import { messageSize } from '../internal/state.ts';
import type { Message, MessageType, Priority, StorageEvent } from '../types.ts';
import type { Sql } from './db.ts';
import { COUNTER_SHARDS } from './schema.ts';

/** The message columns, for `SELECT … FROM messages m`. */
export const MSG_COLS =
  'm.id, m.topic, m.headers, m.payload, m.priority, m.ts, m.ttl_ms, m.deliver_at, m.correlation_id, ' +
  'm.reply_to, m.type, m.trace_id';

export interface MessageRow {
  id: string;
  topic: string;
  headers: Record<string, string>;
  payload: Buffer;
  priority: number;
  ts: number;
  ttl_ms: number | null;
  deliver_at: number | null;
  correlation_id: string | null;
  reply_to: string | null;
  type: string | null;
  trace_id: string | null;
}

export function rowToMessage(r: MessageRow): Message {
  const m: Message = {
    id: r.id,
    topic: r.topic,
    headers: r.headers,
    // A plain Uint8Array view, like the other engines hand out (Buffer is a subclass).
    payload: new Uint8Array(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength),
    priority: r.priority as Priority,
    timestamp: r.ts,
  };
  if (r.ttl_ms !== null) m.ttl_ms = r.ttl_ms;
  if (r.deliver_at !== null) m.deliver_at = r.deliver_at;
  if (r.correlation_id !== null) m.correlation_id = r.correlation_id;
  if (r.reply_to !== null) m.reply_to = r.reply_to;
  if (r.type !== null) m.type = r.type as MessageType;
  if (r.trace_id !== null) m.trace_id = r.trace_id;
  return m;
}

/** Stores the message body under `key` (also its FIFO position in every queue it enters); returns its size. */
export async function insertMessage(c: Sql, key: number, m: Message): Promise<number> {
  const size = messageSize(m, m.payload.byteLength);
  await c.query(
    `INSERT INTO messages (key, id, topic, headers, payload, priority, ts, ttl_ms, deliver_at,
       correlation_id, reply_to, type, trace_id, size)
     VALUES ($14, $1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
    [
      m.id,
      m.topic,
      JSON.stringify(m.headers),
      Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength),
      m.priority,
      m.timestamp,
      m.ttl_ms ?? null,
      m.deliver_at ?? null,
      m.correlation_id ?? null,
      m.reply_to ?? null,
      m.type ?? null,
      m.trace_id ?? null,
      size,
      key,
    ],
  );
  return size;
}

/**
 * Hands out message keys from the shared sequence in the order they are asked for. Keys are FIFO
 * positions, and concurrent publishes of one caller must queue in the order it made them, which the
 * order their transactions happen to reach `nextval` does not guarantee. Requests that arrive while a
 * fetch is under way are served together by the next one (one round trip for a whole burst).
 */
export class KeyAllocator {
  private readonly queue: { resolve(key: number): void; reject(err: unknown): void }[] = [];
  private fetching = false;

  constructor(private readonly fetch: (n: number) => Promise<number[]>) {}

  next(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ resolve, reject });
      if (!this.fetching) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.fetching = true;
    while (this.queue.length) {
      const batch = this.queue.splice(0);
      try {
        const keys = (await this.fetch(batch.length)).sort((a, b) => a - b);
        batch.forEach((w, i) => w.resolve(keys[i]!));
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.fetching = false;
  }
}

/** Loads messages by key; the map misses keys whose message is gone. */
export async function loadMessages(c: Sql, keys: readonly number[]): Promise<Map<number, Message>> {
  const out = new Map<number, Message>();
  if (keys.length === 0) return out;
  const rows = (
    await c.query<MessageRow & { key: number }>(
      `SELECT m.key, ${MSG_COLS} FROM messages m WHERE m.key = ANY($1::bigint[])`,
      [keys],
    )
  ).rows;
  for (const r of rows) out.set(r.key, rowToMessage(r));
  return out;
}

/**
 * What one transaction changed besides its rows: counter increments (applied last, in name order, each
 * to a random shard row of the queue's counters), message keys that may have lost their last reference
 * (removed at the end if nothing holds them any more), and events for the other servers.
 */
export class TxEffects {
  private readonly counters = new Map<string, { published: number; acked: number; dead: number }>();
  private readonly released = new Set<number>();
  /** Queues that gained ready messages (for `tick().ready_queues`). */
  readonly readied = new Set<string>();
  /** Events for the other servers, by a key that drops repeats. */
  private readonly events = new Map<string, StorageEvent>();

  /** `notify`: the channel and this instance's id, for NOTIFY at commit (see `watch`). */
  constructor(private readonly notify?: { channel: string; instance: string }) {}

  note(e: StorageEvent): void {
    const key =
      e.kind === 'queue'
        ? `q:${e.queue}`
        : e.kind === 'tasks'
          ? `t:${e.queue}`
          : e.kind === 'stream'
            ? `s:${e.stream}`
            : e.kind === 'task-ended'
              ? `e:${e.id}`
              : e.kind;
    const prev = this.events.get(key);
    // Of several due times, the earliest matters; of several stream appends, the last sequence.
    if (e.kind === 'task-due' && prev?.kind === 'task-due' && prev.at <= e.at) return;
    this.events.set(key, e);
  }

  count(queue: string, field: 'published' | 'acked' | 'dead', n = 1): void {
    let c = this.counters.get(queue);
    if (!c) this.counters.set(queue, (c = { published: 0, acked: 0, dead: 0 }));
    c[field] += n;
  }

  deadCount(queue: string): number {
    return this.counters.get(queue)?.dead ?? 0;
  }

  get deadTotal(): number {
    let n = 0;
    for (const c of this.counters.values()) n += c.dead;
    return n;
  }

  release(keys: Iterable<number>): void {
    for (const k of keys) this.released.add(k);
  }

  async apply(c: Sql): Promise<void> {
    if (this.released.size) await collectBodies(c, [...this.released]);
    if (this.notify && this.events.size) await notify(c, this.notify, [...this.events.values()]);
    for (const name of [...this.counters.keys()].sort()) {
      const v = this.counters.get(name)!;
      if (v.published + v.acked + v.dead === 0) continue;
      await c.query(
        `UPDATE queue_counters SET published = published + $2, acked = acked + $3, dead = dead + $4
         WHERE name = $1 AND shard = $5`,
        [name, v.published, v.acked, v.dead, Math.floor(Math.random() * COUNTER_SHARDS)],
      );
    }
  }
}

/**
 * Removes the messages among `keys` that no queue entry or stream slot references any more. Two
 * transactions releasing the last two references of one message at once can each still see the other's:
 * `sweepBodies` (compaction, and now and then the housekeeping tick) removes such leftovers.
 */
export async function collectBodies(c: Sql, keys: readonly number[]): Promise<void> {
  await c.query(
    `DELETE FROM messages m WHERE m.key = ANY($1::bigint[])
       AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.key = m.key)
       AND NOT EXISTS (SELECT 1 FROM stream_entries s WHERE s.key = m.key)`,
    [keys],
  );
}

/**
 * Every unreferenced message. Safe while others write: a message being published is invisible until its
 * transaction commits together with the entries that reference it.
 */
export async function sweepBodies(c: Sql): Promise<number> {
  const rows = (
    await c.query<{ n: number }>(
      `WITH gone AS (
         DELETE FROM messages m
         WHERE NOT EXISTS (SELECT 1 FROM entries e WHERE e.key = m.key)
           AND NOT EXISTS (SELECT 1 FROM stream_entries s WHERE s.key = m.key)
         RETURNING 1)
       SELECT count(*) AS n FROM gone`,
    )
  ).rows;
  return rows[0]?.n ?? 0;
}

/** NOTIFY payloads must stay under 8000 bytes: events are sent in chunks well below that. */
const NOTIFY_CHUNK = 6000;

/**
 * Sends the events to every server listening on the channel. NOTIFY is transactional: the others hear
 * of the change only when it commits, and never of one that rolled back.
 */
async function notify(
  c: Sql,
  to: { channel: string; instance: string },
  events: readonly StorageEvent[],
): Promise<void> {
  const payloads: string[] = [];
  let chunk: StorageEvent[] = [];
  let size = 0;
  for (const e of events) {
    const n = JSON.stringify(e).length + 1;
    if (chunk.length && size + n > NOTIFY_CHUNK) {
      payloads.push(JSON.stringify({ i: to.instance, e: chunk }));
      chunk = [];
      size = 0;
    }
    chunk.push(e);
    size += n;
  }
  if (chunk.length) payloads.push(JSON.stringify({ i: to.instance, e: chunk }));
  await c.query('SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p', [to.channel, payloads]);
}
