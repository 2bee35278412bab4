/**
 * Tables of the `postgres` engine and their migrations. Opening runs every migration not yet applied,
 * under an advisory lock so that servers starting together against an empty schema do not race on
 * `CREATE`; each migration is applied at most once (recorded in `schema_version`), so reopening is free.
 *
 * Layout, in queue terms:
 * - `messages`: one row per stored message (payload bytea, headers jsonb), shared by every queue entry
 *   and stream slot that holds it; removed when nothing references it.
 * - `entries`: a message in one queue — waiting (`w`; ready or delayed by `not_before`), in flight (`f`,
 *   with its delivery id, consumer and ack deadline) or dead (`d`, with reason and time).
 * - `queue_counters`: published/acked/dead-lettered totals in COUNTER_SHARDS rows per queue, each
 *   transaction bumping a random one: a single counter row would serialise every publish and ack of a
 *   queue on its row lock, held until commit (an fsync).
 * - `streams`, `stream_entries`, `readers`: the log, its sequence → message index and durable positions.
 * - `tasks`: the whole record as jsonb plus generated columns for the indexes claims and housekeeping use.
 * - `schedules`: the schedule record; its `last_tick` is advanced by a compare-and-set update.
 * - `meta`: named values kept with the data by the layers above (`Storage.readMeta`/`writeMeta`).
 *
 * Times are float8 milliseconds (exact for integers, and the contract allows fractional ones). Queue and
 * stream specs are `json`, not `jsonb`, so they come back with their keys in the order they were declared.
 */
import type { Sql } from './db.ts';

/** Counter rows per queue (see `queue_counters` above). */
export const COUNTER_SHARDS = 16;

const TERMINAL = `('succeeded','failed','cancelled','expired')`;

const MIGRATIONS: string[] = [
  `
  CREATE SEQUENCE msg_keys;
  CREATE SEQUENCE task_seq;

  CREATE TABLE messages (
    key bigint PRIMARY KEY,
    id text NOT NULL,
    topic text NOT NULL,
    headers jsonb NOT NULL,
    payload bytea NOT NULL,
    priority smallint NOT NULL,
    ts float8 NOT NULL,
    ttl_ms float8,
    deliver_at float8,
    correlation_id text,
    reply_to text,
    type text,
    trace_id text,
    size integer NOT NULL
  );

  CREATE TABLE queues (
    name text PRIMARY KEY,
    spec json NOT NULL,
    ack_timeout_ms float8 NOT NULL,
    max_deliveries integer NOT NULL
  );

  CREATE TABLE queue_counters (
    name text NOT NULL REFERENCES queues(name) ON DELETE CASCADE,
    shard smallint NOT NULL,
    published bigint NOT NULL DEFAULT 0,
    acked bigint NOT NULL DEFAULT 0,
    dead bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (name, shard)
  );

  CREATE TABLE entries (
    queue text NOT NULL REFERENCES queues(name) ON DELETE CASCADE,
    key bigint NOT NULL,
    ord bigint NOT NULL,
    prio smallint NOT NULL,
    state "char" NOT NULL,
    dc integer NOT NULL DEFAULT 0,
    not_before float8 NOT NULL DEFAULT 0,
    expires_at float8 NOT NULL DEFAULT 0,
    delivery_id text,
    consumer text,
    deadline float8,
    dead_reason text,
    dead_at float8,
    dead_error text,
    PRIMARY KEY (queue, key)
  );
  CREATE INDEX entries_ready ON entries (queue, prio DESC, ord) WHERE state = 'w';
  CREATE INDEX entries_fifo ON entries (queue, ord) WHERE state = 'w';
  CREATE INDEX entries_delay ON entries (not_before) WHERE state = 'w' AND not_before > 0;
  CREATE INDEX entries_ttl ON entries (expires_at) WHERE state = 'w' AND expires_at > 0;
  CREATE INDEX entries_deadline ON entries (deadline) WHERE state = 'f';
  CREATE INDEX entries_delivery ON entries (queue, delivery_id) WHERE state = 'f';
  CREATE INDEX entries_consumer ON entries (consumer) WHERE state = 'f';
  CREATE INDEX entries_dead ON entries (queue, dead_at, key) WHERE state = 'd';
  CREATE INDEX entries_key ON entries (key);

  CREATE TABLE streams (
    name text PRIMARY KEY,
    spec json NOT NULL,
    first_seq bigint NOT NULL DEFAULT 1,
    last_seq bigint NOT NULL DEFAULT 0,
    count bigint NOT NULL DEFAULT 0,
    bytes bigint NOT NULL DEFAULT 0
  );

  CREATE TABLE stream_entries (
    stream text NOT NULL REFERENCES streams(name) ON DELETE CASCADE,
    seq bigint NOT NULL,
    key bigint NOT NULL,
    ts float8 NOT NULL,
    size integer NOT NULL,
    PRIMARY KEY (stream, seq)
  );
  CREATE INDEX stream_entries_key ON stream_entries (key);
  CREATE INDEX stream_entries_ts ON stream_entries (stream, ts);

  CREATE TABLE readers (
    stream text NOT NULL REFERENCES streams(name) ON DELETE CASCADE,
    reader text NOT NULL,
    pos bigint NOT NULL,
    PRIMARY KEY (stream, reader)
  );

  CREATE TABLE tasks (
    id text PRIMARY KEY,
    rec jsonb NOT NULL,
    created_seq bigint NOT NULL,
    ready_seq bigint NOT NULL DEFAULT 0,
    state text GENERATED ALWAYS AS (rec->>'state') STORED,
    kind text GENERATED ALWAYS AS (rec->>'kind') STORED,
    queue text GENERATED ALWAYS AS (rec->>'queue') STORED,
    name text GENERATED ALWAYS AS (rec->>'name') STORED,
    priority integer GENERATED ALWAYS AS ((rec->>'priority')::integer) STORED,
    worker text GENERATED ALWAYS AS (rec->>'worker') STORED,
    attempts integer GENERATED ALWAYS AS ((rec->>'attempts')::integer) STORED,
    eta float8 GENERATED ALWAYS AS ((rec->>'eta')::float8) STORED,
    expires float8 GENERATED ALWAYS AS ((rec->>'expires')::float8) STORED,
    lock_until float8 GENERATED ALWAYS AS ((rec->>'lock_until')::float8) STORED,
    delete_at float8 GENERATED ALWAYS AS ((rec->>'delete_at')::float8) STORED,
    idempotency_key text GENERATED ALWAYS AS (rec->>'idempotency_key') STORED
  );
  CREATE UNIQUE INDEX tasks_idempotency ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;
  CREATE INDEX tasks_ready ON tasks (queue, priority DESC, ready_seq) WHERE state = 'queued' AND kind = 'task';
  CREATE INDEX tasks_due ON tasks (eta) WHERE state IN ('pending','retrying');
  CREATE INDEX tasks_expiry ON tasks (expires) WHERE state IN ('pending','queued','retrying');
  CREATE INDEX tasks_locks ON tasks (lock_until) WHERE state = 'running';
  CREATE INDEX tasks_purge ON tasks (delete_at) WHERE state IN ${TERMINAL};
  CREATE INDEX tasks_created ON tasks (created_seq);

  CREATE TABLE schedules (
    id text PRIMARY KEY,
    rec jsonb NOT NULL
  );
  `,
  // 2: small values that travel with the data (the encryption key verifiers: Storage.readMeta).
  `
  CREATE TABLE meta (
    name text PRIMARY KEY,
    value text NOT NULL
  );
  `,
];

/** Creates the schema and applies the migrations it lacks; safe to run from several servers at once. */
export async function migrate(c: Sql, schema: string): Promise<void> {
  // Serialises concurrent opens of the same schema (released at commit).
  await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`messaging-schema:${schema}`]);
  await c.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  await c.query(`SET LOCAL search_path TO "${schema}"`);
  await c.query('CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)');
  const rows = (await c.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_version')).rows;
  const current = rows[0]?.v ?? 0;
  for (let v = current; v < MIGRATIONS.length; v++) {
    await c.query(MIGRATIONS[v]!);
    await c.query('INSERT INTO schema_version (version) VALUES ($1)', [v + 1]);
  }
}

export const TERMINAL_STATES = TERMINAL;
