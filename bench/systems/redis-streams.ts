/**
 * Redis Streams through `ioredis`: XADD (pipelined; the scenario keeps a window of outstanding replies),
 * a consumer group read with XREADGROUP COUNT n BLOCK, each batch acked with one XACK. Redis here runs
 * without AOF and without RDB snapshots, so nothing reaches the disk: it is a memory-only baseline.
 */
import type { Redis } from 'ioredis';
import type { DurableSystem, Endpoints, OnPayload } from '../types.ts';
import { clientVersion } from '../lib/versions.ts';
import { asBuffer, closeAll, runTag } from '../lib/util.ts';
import { redisConnect, redisVersion } from './redis.ts';

const READ_COUNT = 100;
const GROUP = 'bench';

type StreamReply = Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;

export function redisStreamsDurable(ep: Endpoints): DurableSystem {
  const key = `bench:stream:${runTag()}`;
  let producer: Redis | undefined;
  let consumer: Redis | undefined;
  let version: string | undefined;
  let persistence = 'unknown';
  let running = false;
  let loop: Promise<void> | undefined;
  let failure: unknown;
  return {
    id: 'redis-streams',
    label: 'Redis Streams',
    client: clientVersion('ioredis'),
    notes: `XADD pipelined; XREADGROUP COUNT ${READ_COUNT} BLOCK 1000; one XACK per batch`,
    get fsync() {
      return persistence;
    },
    async setup() {
      producer = await redisConnect(ep.redisUrl, 'bench-streams-producer');
      consumer = await redisConnect(ep.redisUrl, 'bench-streams-consumer');
      version = await redisVersion(producer);
      const aof = (await producer.config('GET', 'appendonly')) as string[];
      const fsync = (await producer.config('GET', 'appendfsync')) as string[];
      const save = (await producer.config('GET', 'save')) as string[];
      persistence =
        aof[1] === 'yes'
          ? `AOF on, appendfsync ${fsync[1] ?? '?'}`
          : `none: AOF off (appendonly no)${save[1] ? `, RDB save "${save[1]}"` : ', no RDB snapshots'} — memory only`;
      await producer.xgroup('CREATE', key, GROUP, '$', 'MKSTREAM');
    },
    async startConsumer(onAcked: OnPayload) {
      const c = consumer!;
      running = true;
      loop = (async () => {
        // Bounded by `running` (close) and by the BLOCK timeout of each read.
        while (running) {
          const reply = (await c.callBuffer('XREADGROUP', [
            'GROUP',
            GROUP,
            'c1',
            'COUNT',
            READ_COUNT,
            'BLOCK',
            1000,
            'STREAMS',
            key,
            '>',
          ])) as StreamReply;
          const entries = reply?.[0]?.[1];
          if (!entries || entries.length === 0) continue;
          await c.xack(key, GROUP, ...entries.map(([id]) => id));
          for (const [, fields] of entries) {
            const payload = fields[1];
            if (payload) onAcked(payload);
          }
        }
      })().catch((err: unknown) => {
        // Surfaces through the next publish: a dead consumer must fail the run, not look like a slow one.
        if (running) failure ??= err;
      });
    },
    async publish(payload: Uint8Array) {
      if (failure !== undefined) throw failure;
      await producer!.xadd(key, '*', 'p', asBuffer(payload));
    },
    serverVersion: () => version,
    async close() {
      running = false;
      await Promise.race([loop, new Promise((r) => setTimeout(r, 1500))]).catch(() => undefined);
      await producer?.del(key).catch(() => undefined);
      // The consumer may sit in a BLOCKed read: disconnect rather than wait for QUIT's turn.
      consumer?.disconnect();
      await closeAll(producer ? [() => producer!.quit()] : []);
    },
  };
}
