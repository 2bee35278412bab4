/**
 * The `postgres` storage engine (`[message_bus] storage = postgres`): every queue, stream, task and
 * schedule lives in PostgreSQL tables, so several servers pointed at one database and schema share them
 * (see docs/storage-postgres.md). Every mutating method is one transaction; time comes from the
 * injected clock, never from the database, so the conformance suite can drive it.
 */
import { MessagingError } from '../../protocol/errors.ts';
import type { Logger, PostgresOptions, Storage, StorageEvent } from '../types.ts';
import { Db, isSchemaName } from './db.ts';
import { channelOf, Listener } from './listen.ts';
import { sweepBodies } from './rows.ts';
import { migrate } from './schema.ts';
import { PgTaskEngine } from './tasks.ts';

export interface PostgresStorageOptions extends PostgresOptions {
  logger?: Logger;
  now?: () => number;
}

export const DEFAULT_SCHEMA = 'messaging';

/** Unreferenced message bodies are swept at most this often by the housekeeping tick. */
const SWEEP_EVERY_MS = 60_000;

export class PostgresStorage extends PgTaskEngine implements Storage {
  readonly engine = 'postgres';
  private closed = false;
  private lastSweep = 0;
  private readonly listener: Listener;

  private constructor(
    db: Db,
    now: () => number,
    readonly schema: string,
    logger: Logger | undefined,
  ) {
    super(db, now, channelOf(schema));
    this.listener = new Listener(db, this.channel, this.instance, logger);
  }

  /** Connects, creates the schema's tables when missing, and checks the connection works. */
  static async open(options: PostgresStorageOptions): Promise<PostgresStorage> {
    const schema = options.schema ?? DEFAULT_SCHEMA;
    if (!isSchemaName(schema)) {
      throw new MessagingError(
        'BAD_REQUEST',
        `PostgreSQL schema name "${schema}" must be letters, digits and _ (not starting with a digit)`,
      );
    }
    const db = new Db({ ...options, schema }, options.logger);
    try {
      await db.tx((c) => migrate(c, schema));
    } catch (err) {
      await db.close();
      throw err;
    }
    return new PostgresStorage(db, options.now ?? Date.now, schema, options.logger);
  }

  override async tick(): ReturnType<PgTaskEngine['tick']> {
    const result = await super.tick();
    // Leftover bodies (two last references released at once) are rare; a periodic sweep is enough.
    if (Date.now() - this.lastSweep > SWEEP_EVERY_MS) {
      this.lastSweep = Date.now();
      // A failed sweep is simply tried again next time; the tick itself succeeded.
      await this.db.tx(sweepBodies).catch(() => undefined);
    }
    return result;
  }

  /** What the other servers on this schema write (LISTEN on one connection of its own). */
  watch(listener: (event: StorageEvent) => void): () => void {
    return this.listener.add(listener);
  }

  async readMeta(prefix: string): Promise<Record<string, string>> {
    const rows = await this.db.query<{ name: string; value: string }>(
      // starts_with, not LIKE: the prefix is data, not a pattern.
      'SELECT name, value FROM meta WHERE starts_with(name, $1) ORDER BY name',
      [prefix],
    );
    return Object.fromEntries(rows.map((r) => [r.name, r.value]));
  }

  async writeMeta(name: string, value: string): Promise<void> {
    await this.db.query(
      'INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2',
      [name, value],
    );
  }

  async compact(): Promise<void> {
    this.lastSweep = Date.now();
    await this.db.tx(sweepBodies);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.listener.stop();
    await this.db.close();
  }
}
