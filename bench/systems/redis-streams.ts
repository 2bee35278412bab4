/**
 * Redis Streams through `ioredis`: XADD (pipelined; the scenario keeps a window of outstanding replies),
 * a consumer group read with XREADGROUP COUNT n BLOCK, each batch acked with one XACK.
 *
 * Three rows, one per durability class. `redis-streams` runs the server as configured (here: no AOF and
 * no RDB snapshots, so nothing reaches the disk — a memory-only baseline). The AOF rows switch the append-only
 * file on for their round (`CONFIG SET appendonly yes`, then `appendfsync always` or `everysec`) and put
 * the server's own settings back afterwards: `always` fsyncs the AOF before replying (the class of our
 * fsync `batch`), `everysec` writes it before replying and fsyncs once a second (the class of our fsync
 * `none`: survives a crash of the server, not of the machine).
 */
import type { Redis } from 'ioredis';
import type { DurableSystem, Endpoints, OnPayload } from '../types.ts';
import { clientVersion } from '../lib/versions.ts';
import { asBuffer, closeAll, runTag, sleep, UnavailableError } from '../lib/util.ts';
import { redisConnect, redisVersion } from './redis.ts';

const READ_COUNT = 100;
const GROUP = 'bench';

type StreamReply = Array<[Buffer, Array<[Buffer, Buffer[]]>]> | null;

export function redisStreamsDurable(ep: Endpoints): DurableSystem {
  return streamsAdapter(ep, { id: 'redis-streams', label: 'Redis Streams' });
}

export function redisStreamsDurableAof(ep: Endpoints): DurableSystem {
  return streamsAdapter(ep, {
    id: 'redis-streams-aof',
    label: 'Redis Streams (AOF, fsync always)',
    appendfsync: 'always',
  });
}

export function redisStreamsDurableEverysec(ep: Endpoints): DurableSystem {
  return streamsAdapter(ep, {
    id: 'redis-streams-everysec',
    label: 'Redis Streams (AOF, fsync every second)',
    appendfsync: 'everysec',
  });
}

interface Variant {
  id: string;
  label: string;
  /** Turn the AOF on with this policy for the round; undefined: leave the server as it is. */
  appendfsync?: 'always' | 'everysec';
}

/** Reads one CONFIG value. */
async function configGet(r: Redis, name: string): Promise<string> {
  const reply = (await r.config('GET', name)) as string[];
  return reply[1] ?? '';
}

/** Waits until no AOF rewrite runs or is scheduled (switching the AOF on starts one). */
async function aofSettled(r: Redis): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const info = await r.info('persistence');
    if (/aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info)) return;
    if (Date.now() > deadline) throw new Error('Redis AOF rewrite still running after 60 s');
    await sleep(50);
  }
}

function streamsAdapter(ep: Endpoints, v: Variant): DurableSystem {
  const key = `bench:stream:${runTag()}`;
  /** The server's own settings, put back at close when this round changed them. */
  let restore: { appendonly: string; appendfsync: string } | undefined;
  let producer: Redis | undefined;
  let consumer: Redis | undefined;
  let version: string | undefined;
  let persistence = 'unknown';
  let running = false;
  let loop: Promise<void> | undefined;
  let failure: unknown;
  return {
    id: v.id,
    label: v.label,
    client: clientVersion('ioredis'),
    notes: `XADD pipelined; XREADGROUP COUNT ${READ_COUNT} BLOCK 1000; one XACK per batch`,
    get fsync() {
      return persistence;
    },
    async setup() {
      producer = await redisConnect(ep.redisUrl, 'bench-streams-producer');
      consumer = await redisConnect(ep.redisUrl, 'bench-streams-consumer');
      version = await redisVersion(producer);
      if (v.appendfsync) {
        const own = {
          appendonly: await configGet(producer, 'appendonly'),
          appendfsync: await configGet(producer, 'appendfsync'),
        };
        try {
          await producer.config('SET', 'appendfsync', v.appendfsync);
          restore = own;
          if (own.appendonly !== 'yes') await producer.config('SET', 'appendonly', 'yes');
        } catch (err) {
          throw new UnavailableError(
            `cannot switch the Redis AOF on (CONFIG SET): ${(err as Error).message}`,
          );
        }
        await aofSettled(producer);
      }
      const aof = await configGet(producer, 'appendonly');
      const fsync = await configGet(producer, 'appendfsync');
      const save = await configGet(producer, 'save');
      persistence =
        aof === 'yes'
          ? `AOF on, appendfsync ${fsync}${v.appendfsync ? ' (set for this round)' : ''}`
          : `none: AOF off (appendonly no)${save ? `, RDB save "${save}"` : ', no RDB snapshots'} — memory only`;
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
      if (producer && restore) {
        const own = restore;
        restore = undefined;
        await aofSettled(producer).catch(() => undefined);
        if (own.appendonly !== 'yes')
          await producer.config('SET', 'appendonly', own.appendonly).catch(() => undefined);
        await producer.config('SET', 'appendfsync', own.appendfsync).catch(() => undefined);
      }
      // The consumer may sit in a BLOCKed read: disconnect rather than wait for QUIT's turn.
      consumer?.disconnect();
      await closeAll(producer ? [() => producer!.quit()] : []);
    },
  };
}
