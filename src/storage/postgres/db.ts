/**
 * The PostgreSQL connection of the `postgres` engine: one `pg.Pool`, transactions with a retry on
 * deadlock / serialization failures, and the translation of every driver error into a `MessagingError`
 * — a raw pg error never leaves the engine, and an unreachable server says what to check.
 */
import pg from 'pg';
import type { PoolClient, QueryResultRow } from 'pg';
import { MessagingError } from '../../protocol/errors.ts';
import type { DbObserver, Logger, PostgresOptions } from '../types.ts';

/** A connection inside a transaction (or the pool itself for single statements). */
export interface Sql {
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

const INT8_OID = 20;

/**
 * bigint columns (keys, sequences, counts) come back as JS numbers: every value we store stays far below
 * 2^53, and callers compare them as numbers. Time columns are float8, which pg parses itself.
 */
const types = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format as 'text');
  },
};

/** SQLSTATEs worth running the whole transaction again for. */
const RETRY_CODES = new Set(['40P01', '40001']);
/** Connection-level failures: the server is down, unreachable, or went away mid-query. */
const CONNECTION_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

export function isSchemaName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name);
}

export class Db {
  readonly pool: pg.Pool;
  private readonly config: pg.PoolConfig;
  private closed = false;
  /**
   * Operations wait here for a free connection rather than in the pool: pg-pool applies
   * `connectionTimeoutMillis` to its own wait queue too, so a burst of publishes larger than the pool
   * would fail as "cannot connect" although the database is fine. The timeout then covers connecting only.
   */
  private readonly slots: number;
  private busy = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly opts: PostgresOptions & { schema: string },
    private readonly logger: Logger | undefined,
  ) {
    this.config = {
      host: opts.host,
      port: opts.port,
      database: opts.database,
      user: opts.user,
      password: opts.password ?? '',
      max: opts.poolMax ?? 10,
      min: Math.min(opts.poolMin ?? 0, opts.poolMax ?? 10),
      connectionTimeoutMillis: opts.connectionTimeoutMs ?? 3000,
      idleTimeoutMillis: opts.idleTimeoutMs ?? 30_000,
      application_name: 'messaging_server',
      // Every connection works in the engine's schema, so statements name tables unqualified.
      options: `-c search_path=${opts.schema}`,
      ...(opts.statementTimeoutMs ? { statement_timeout: opts.statementTimeoutMs } : {}),
      types,
    };
    this.pool = new pg.Pool(this.config);
    this.slots = opts.poolMax ?? 10;
    // An idle connection that dies (server restart) is only reported; the next checkout opens a new one.
    this.pool.on('error', (err) => {
      this.logger?.warn({ err: this.translate(err) }, 'PostgreSQL connection lost; the pool reconnects');
    });
  }

  get where(): string {
    return `${this.opts.host}:${this.opts.port} (database "${this.opts.database}", user "${this.opts.user}")`;
  }

  /** One statement outside an explicit transaction (reads, and single-statement writes). */
  async query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<R[]> {
    this.check();
    await this.acquire();
    try {
      return (await this.timed(() => this.pool.query<R>(text, values))).rows;
    } catch (err) {
      throw this.translate(err);
    } finally {
      this.releaseSlot();
    }
  }

  private get observer(): DbObserver | undefined {
    return this.opts.observer;
  }

  private async timed<T>(run: () => Promise<T>): Promise<T> {
    const o = this.observer;
    if (!o) return run();
    const started = performance.now();
    try {
      const result = await run();
      o.query((performance.now() - started) / 1000, true);
      return result;
    } catch (err) {
      o.query((performance.now() - started) / 1000, false);
      throw err;
    }
  }

  private acquire(): Promise<void> | void {
    if (this.busy < this.slots) {
      this.busy++;
      this.observer?.connections(this.busy);
      return;
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Hands the slot straight to the next waiter (so `busy` stays counted), or frees it. */
  private releaseSlot(): void {
    const next = this.waiting.shift();
    if (next) next();
    else {
      this.busy--;
      this.observer?.connections(this.busy);
    }
  }

  /**
   * Runs `fn` in one transaction: all of it commits or none. A deadlock or serialization failure (another
   * server touched the same rows in the opposite order) rolls back and runs `fn` again, a few times.
   */
  async tx<T>(fn: (c: Sql) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      this.check();
      await this.acquire();
      let client: PoolClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        this.releaseSlot();
        throw this.translate(err);
      }
      let broken: Error | undefined;
      const sql: Sql = this.observer
        ? { query: (text, values) => this.timed(() => client.query(text, values)) }
        : client;
      let begun = false;
      try {
        await client.query('BEGIN');
        begun = true;
        const result = await fn(sql);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        if (!begun && isConnectionError(err) && attempt < 3) {
          // A pooled connection that died while idle (database restarted): nothing was done yet, so
          // simply try a fresh one.
          broken = err as Error;
          continue;
        }
        await client.query('ROLLBACK').catch((e: Error) => (broken = e));
        if (err instanceof MessagingError) throw err;
        const code = (err as { code?: string }).code;
        if (code && RETRY_CODES.has(code) && attempt < 6) {
          await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
          continue;
        }
        if (isConnectionError(err)) broken = err as Error;
        throw this.translate(err);
      } finally {
        client.release(broken);
        this.releaseSlot();
      }
    }
  }

  /** A connection of its own, outside the pool (for LISTEN, which holds its connection for good). */
  client(): pg.Client {
    return new pg.Client(this.config);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end().catch(() => undefined);
  }

  private check(): void {
    if (this.closed) throw new MessagingError('STORAGE_FAILURE', 'storage is closed');
  }

  /** Any driver error as a MessagingError that says what happened and, for connection trouble, what to check. */
  translate(err: unknown): MessagingError {
    if (err instanceof MessagingError) return err;
    const e = err as { code?: string; message?: string };
    const code = e.code ?? '';
    const text = e.message ?? String(err);
    if (isConnectionError(err)) {
      return new MessagingError(
        'STORAGE_FAILURE',
        `cannot reach PostgreSQL at ${this.where}: ${text}; check that the server is running and that ` +
          '[database] host and port (DB_HOST, DB_PORT) point at it',
        { cause: err },
      );
    }
    if (code === '3D000') {
      return new MessagingError(
        'STORAGE_FAILURE',
        `PostgreSQL database "${this.opts.database}" does not exist on ${this.opts.host}:${this.opts.port}; ` +
          'create it or set [database] database (DB_NAME)',
        { cause: err },
      );
    }
    if (code === '28P01' || code === '28000') {
      return new MessagingError(
        'STORAGE_FAILURE',
        `PostgreSQL refused the login to ${this.where}: ${text}; check [database] username and password ` +
          '(DB_USER, DB_PASSWORD)',
        { cause: err },
      );
    }
    if (code === '53100') {
      return new MessagingError('STORAGE_FULL', `PostgreSQL at ${this.where} is out of disk space: ${text}`, {
        cause: err,
      });
    }
    if (code === '53300') {
      return new MessagingError(
        'STORAGE_FAILURE',
        `PostgreSQL at ${this.where} has no free connection slots: ${text}; lower [database] max_pool_size ` +
          'or raise the server max_connections',
        { cause: err },
      );
    }
    return new MessagingError(
      'STORAGE_FAILURE',
      `PostgreSQL error${code ? ` ${code}` : ''} at ${this.where}: ${text}`,
      { cause: err },
    );
  }
}

function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (e.code && CONNECTION_ERRNOS.has(e.code)) return true;
  // Class 08 is "connection exception"; 57P01-03 are admin shutdown / crash / cannot connect now.
  if (e.code && (e.code.startsWith('08') || /^57P0[123]$/.test(e.code))) return true;
  const m = e.message ?? '';
  return (
    /timeout exceeded when trying to connect|Connection terminated|connect ETIMEDOUT|Client has encountered a connection error/i.test(
      m,
    ) && !e.code?.match(/^[0-9A-Z]{5}$/)
  );
}
