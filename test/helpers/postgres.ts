/**
 * PostgreSQL for tests: the server the machine runs (127.0.0.1:5432, user postgres, trust auth; override
 * with TEST_PG_HOST / TEST_PG_PORT / TEST_PG_USER / TEST_PG_PASSWORD / TEST_PG_DATABASE), unique
 * schemas and databases per test run that the tests drop again, and `messaging_server` processes with
 * `storage = postgres`.
 */
import pg from 'pg';
import type { PostgresOptions } from '../../src/storage/index.ts';
import { spawnServer, type ChildServer } from './child-server.ts';

export const PG: PostgresOptions = {
  host: process.env.TEST_PG_HOST ?? '127.0.0.1',
  port: Number(process.env.TEST_PG_PORT ?? 5432),
  database: process.env.TEST_PG_DATABASE ?? 'postgres',
  user: process.env.TEST_PG_USER ?? 'postgres',
  password: process.env.TEST_PG_PASSWORD ?? '',
};

const run = `${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
let n = 0;

/** A schema name no other test (or test run) uses; `prefix` says which test made it. */
export function uniqueSchema(prefix: string): string {
  return `t_${prefix}_${run}_${n++}`;
}

/** Drops the named schemas with everything in them (also those of a test that failed half-way). */
export async function dropSchemas(names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  const client = new pg.Client({ ...PG, password: PG.password ?? '' });
  await client.connect();
  try {
    for (const name of names) await client.query(`DROP SCHEMA IF EXISTS "${name}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** Creates an empty database (for servers, which use the default schema of the database they are given). */
export async function createDatabase(name: string): Promise<void> {
  const client = new pg.Client({ ...PG, password: PG.password ?? '' });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
}

/** Drops a database, closing whatever connections are still open to it. */
export async function dropDatabase(name: string): Promise<void> {
  const client = new pg.Client({ ...PG, password: PG.password ?? '' });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/** A database name no other test (or test run) uses. */
export function uniqueDatabase(prefix: string): string {
  return uniqueSchema(prefix);
}

/** The environment that points `messaging_server` at `database` on the test PostgreSQL. */
export function postgresEnv(database: string): Record<string, string> {
  return {
    DB_HOST: PG.host,
    DB_PORT: String(PG.port),
    DB_NAME: database,
    DB_USER: PG.user,
    DB_PASSWORD: PG.password ?? '',
  };
}

/**
 * Runs `bin/messaging_server.js` with `storage = postgres` on `database` (a real process, like production)
 * and resolves once it reports ready.
 */
export function startPostgresServer(
  database: string,
  env: Record<string, string> = {},
): Promise<ChildServer> {
  return spawnServer(
    ['--storage', 'postgres'],
    { MESSAGING_LOG_LEVEL: 'warn', ...postgresEnv(database), ...env },
    'SIGTERM',
  );
}
