/**
 * Our durable queues in the durable suite, through the SDK: a durable queue on the file engine
 * (fsync `batch`: a publish is confirmed only after the fsync of its group), direct publishes with
 * publisher confirms, a consumer with prefetch 100 and manual acks (acks of one tick go out as one
 * `queue.ack`). Producer and consumer on separate connections, like the rivals.
 *
 * The extras (recovery time, RAM per stored message) start their own server on a fresh directory,
 * since they restart it or read its memory.
 */
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Connection } from '../../src/client/index.ts';
import type { DurableExtras, DurableSystem, Endpoints, OnPayload } from '../types.ts';
import pg from 'pg';
import { startOursServer, type OursServer } from '../lib/ours-server.ts';
import { closeAll, runTag, UnavailableError } from '../lib/util.ts';

const PREFETCH = 100;

async function oursConnect(url: string | undefined, name: string, why?: string): Promise<Connection> {
  if (!url) throw new UnavailableError(why ?? 'our server is not running');
  return connect({ servers: url, name, reconnect: false, timeoutMs: 30_000 });
}

export function oursDurable(ep: Endpoints): DurableSystem {
  return durableAdapter(ep, {
    id: 'ours',
    label: 'messaging-system',
    notes: `durable queue on the file engine, direct publish with confirms, prefetch ${PREFETCH}, manual ack`,
    fsync: 'fsync batch: each confirm follows the fsync of its write group (no confirm before fsync)',
  });
}

/**
 * The same clients against a server of our own with the file store's fsync `none`: a confirm follows the
 * write to the OS (survives a crash of the server, not of the machine) — the durability class of the
 * JetStream (fsync every 2 min) and Redis (no fsync at all) rows here, so it compares like with like.
 */
export function oursDurableNoFsync(ep: Endpoints): DurableSystem {
  return durableAdapter(ep, {
    id: 'ours-nofsync',
    label: 'messaging-system (fsync none)',
    notes: 'as messaging-system, on its own server with fsync none',
    fsync: 'none: each confirm follows the write() to the OS page cache (survives a process crash)',
    fsyncPolicy: 'none',
  });
}

/**
 * The same clients against a server of our own on the memory engine (`storage = memory`): nothing is
 * written to disk and a restart loses everything — the durability class of a Redis without AOF or RDB.
 */
export function oursDurableMemory(ep: Endpoints): DurableSystem {
  return durableAdapter(ep, {
    id: 'ours-memory',
    label: 'messaging-system (memory engine)',
    notes: 'as messaging-system, on its own server with storage = memory',
    fsync: 'none: memory only, nothing reaches the disk (a restart loses the queue)',
    memory: true,
  });
}

/**
 * The same clients against a server of our own on the PostgreSQL engine (the shared store of several
 * servers), on a fresh database of the PostgreSQL running here (127.0.0.1:5432, user postgres, or
 * BENCH_PG_HOST/PORT/USER/PASSWORD), dropped afterwards.
 */
export function oursDurablePostgres(ep: Endpoints): DurableSystem {
  return durableAdapter(ep, {
    id: 'ours-postgres',
    label: 'messaging-system (PostgreSQL engine)',
    notes: `as messaging-system, on its own server with storage = postgres (one transaction per publish and per ack batch)`,
    fsync:
      "PostgreSQL's: each confirm follows the commit of its transaction (synchronous_commit as configured here)",
    postgres: true,
  });
}

interface Variant {
  id: string;
  label: string;
  notes: string;
  fsync: string;
  /** Start a server of our own on a fresh PostgreSQL database instead of using the harness's. */
  postgres?: boolean;
  /** Start a server of our own with this fsync policy instead of using the harness's. */
  fsyncPolicy?: 'none' | 'batch' | 'always';
  /** Start a server of our own on the memory engine. */
  memory?: boolean;
}

const PG = {
  host: process.env.BENCH_PG_HOST ?? '127.0.0.1',
  port: Number(process.env.BENCH_PG_PORT ?? 5432),
  user: process.env.BENCH_PG_USER ?? 'postgres',
  password: process.env.BENCH_PG_PASSWORD ?? '',
};

/** Runs one statement on the `postgres` database (create and drop the benchmark's own database). */
async function pgAdmin(sql: string): Promise<void> {
  const client = new pg.Client({ ...PG, database: 'postgres' });
  try {
    await client.connect();
    await client.query(sql);
  } catch (err) {
    throw new UnavailableError(`PostgreSQL at ${PG.host}:${PG.port}: ${(err as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function durableAdapter(ep: Endpoints, v: Variant): DurableSystem {
  const queue = `bench.durable.${runTag()}`;
  const database = `bench_durable_${runTag().replace(/\W/g, '_')}`.toLowerCase();
  let producer: Connection | undefined;
  let consumer: Connection | undefined;
  let version: string | undefined;
  let own: OursServer | undefined;
  return {
    id: v.id,
    label: v.label,
    client: 'src/client',
    notes: v.notes,
    fsync: v.fsync,
    async setup() {
      let url = ep.oursUrl;
      if (v.postgres) {
        if (!ep.oursUrl) throw new UnavailableError(ep.oursUnavailable ?? 'our server does not start');
        await pgAdmin(`CREATE DATABASE "${database}"`);
        own = await startOursServer({ postgres: { ...PG, database } });
        url = own.url;
      } else if (v.fsyncPolicy || v.memory) {
        if (!ep.oursUrl) throw new UnavailableError(ep.oursUnavailable ?? 'our server does not start');
        own = await startOursServer({ fsync: v.fsyncPolicy, memory: v.memory });
        url = own.url;
      }
      producer = await oursConnect(url, 'bench-durable-producer', ep.oursUnavailable);
      consumer = await oursConnect(url, 'bench-durable-consumer', ep.oursUnavailable);
      version = producer.info.server_version;
      await producer.queues.declare({ name: queue });
    },
    async startConsumer(onAcked: OnPayload) {
      const c = consumer!.queues.consume(queue, {
        prefetch: PREFETCH,
        callback: (msg) => {
          msg.ack().catch(() => undefined); // a close mid-run fails the run elsewhere
          onAcked(msg.payload);
        },
      });
      await c.ready();
    },
    async publish(payload: Uint8Array) {
      await producer!.queues.publish(queue, payload);
    },
    serverVersion: () => version,
    async close() {
      if (producer) await producer.queues.delete(queue).catch(() => undefined);
      await closeAll([producer, consumer].filter((c) => c !== undefined).map((c) => () => c.close()));
      if (own) {
        await own.stop();
        own = undefined;
      }
      if (v.postgres)
        await pgAdmin(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`).catch(() => undefined);
    },
  };
}

/** Publishes `messages` 256-byte messages with confirms, 2000 outstanding at a time. */
async function fill(url: string, queue: string, messages: number): Promise<void> {
  const nc = await oursConnect(url, 'bench-fill');
  try {
    await nc.queues.declare({ name: queue });
    const payload = new Uint8Array(256).fill(0x61);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < messages) {
        next++;
        await nc.queues.publish(queue, payload);
      }
    };
    await Promise.all(Array.from({ length: 2000 }, worker));
  } finally {
    await nc.close();
  }
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  if (!kb) throw new Error('cannot read VmRSS');
  return Number(kb) * 1024;
}

/** Recovery time for N stored messages and RAM per stored message: ours only, no rival equivalent. */
export function oursDurableExtras(_ep: Endpoints): DurableExtras {
  return {
    async recoveryTimeMs(messages: number) {
      const dir = mkdtempSync(join(tmpdir(), 'bench-recovery-'));
      try {
        const first = await startOursServer({ dataDir: dir, fsync: 'none' });
        await fill(first.url, 'recovery', messages);
        await first.stop();
        const t0 = performance.now();
        const second = await startOursServer({ dataDir: dir });
        // Serving again = the recovered queue answers with every message counted.
        const nc = await oursConnect(second.url, 'bench-recovery');
        const info = await nc.queues.info('recovery');
        const ms = performance.now() - t0;
        await nc.close();
        await second.stop();
        if (info.stats.depth !== messages)
          throw new Error(`recovered ${info.stats.depth} of ${messages} messages`);
        return ms;
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    async ramBytesPerMessage(messages: number) {
      const dir = mkdtempSync(join(tmpdir(), 'bench-ram-'));
      try {
        // The target counts RAM beyond the bounded body cache: a 1 MiB cache keeps it out of the number.
        const server = await startOursServer({ dataDir: dir, fsync: 'none', cacheMb: 1 });
        try {
          const nc = await oursConnect(server.url, 'bench-ram');
          await nc.queues.declare({ name: 'ram' });
          await fill(server.url, 'ram', 10_000); // warm up code paths and caches before the baseline
          const before = rssBytes(server.pid);
          await fill(server.url, 'ram', messages);
          const after = rssBytes(server.pid);
          await nc.close();
          return (after - before) / messages;
        } finally {
          await server.stop();
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
