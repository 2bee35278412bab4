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
import { startOursServer } from '../lib/ours-server.ts';
import { closeAll, runTag, UnavailableError } from '../lib/util.ts';

const PREFETCH = 100;

async function oursConnect(url: string | undefined, name: string, why?: string): Promise<Connection> {
  if (!url) throw new UnavailableError(why ?? 'our server is not running');
  return connect({ servers: url, name, reconnect: false, timeoutMs: 30_000 });
}

export function oursDurable(ep: Endpoints): DurableSystem {
  const queue = `bench.durable.${runTag()}`;
  let producer: Connection | undefined;
  let consumer: Connection | undefined;
  let version: string | undefined;
  return {
    id: 'ours',
    label: 'messaging-system',
    client: 'src/client',
    notes: `durable queue on the file engine, direct publish with confirms, prefetch ${PREFETCH}, manual ack`,
    fsync: 'fsync batch: each confirm follows the fsync of its write group (no confirm before fsync)',
    async setup() {
      producer = await oursConnect(ep.oursUrl, 'bench-durable-producer', ep.oursUnavailable);
      consumer = await oursConnect(ep.oursUrl, 'bench-durable-consumer', ep.oursUnavailable);
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
        const server = await startOursServer({ dataDir: dir, fsync: 'none' });
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
