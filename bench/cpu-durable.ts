/**
 * CPU per message of our durable queue, split between the server and the SDK: the durable suite's
 * scenario (1 producer with 256 unconfirmed publishes, 1 consumer with prefetch 100 and manual acks,
 * 256-byte messages) against a server of its own, with the server's CPU time read from
 * /proc/<pid>/stat (every thread: event loop, GC helpers, thread pool) and the client's from
 * `process.cpuUsage()`. Not a comparison with the rivals — `bench/run.ts` is — but the number to watch
 * when changing the hot path, since the throughput of a 2-core machine is shared between both sides.
 *
 *   node --import tsx bench/cpu-durable.ts [none|batch|always|memory] [messages]
 */
import { readFileSync } from 'node:fs';
import { connect } from '../src/client/index.ts';
import { startOursServer } from './lib/ours-server.ts';
import { now, Window } from './lib/util.ts';

const mode = process.argv[2] ?? 'none';
const messages = Number(process.argv[3] ?? 200_000);
if (!['none', 'batch', 'always', 'memory'].includes(mode) || !(messages > 0)) {
  console.error('usage: node --import tsx bench/cpu-durable.ts [none|batch|always|memory] [messages]');
  process.exit(2);
}

/** User + system CPU of a process, all threads, in ms. */
function processCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime + stime, in clock ticks of 10 ms
}

const server = await startOursServer(
  mode === 'memory' ? { memory: true } : { fsync: mode as 'none' | 'batch' | 'always' },
);
const producer = await connect({ servers: server.url, reconnect: false, timeoutMs: 30_000 });
const consumer = await connect({ servers: server.url, reconnect: false, timeoutMs: 30_000 });
try {
  const queue = 'cpu.durable';
  await producer.queues.declare({ name: queue });
  let acked = 0;
  const sub = consumer.queues.consume(queue, {
    prefetch: 100,
    callback: (msg) => {
      msg.ack().catch(() => undefined);
      acked++;
    },
  });
  await sub.ready();
  const payload = Buffer.alloc(256, 0x63);
  const run = async (n: number): Promise<void> => {
    const window = new Window(256);
    const target = acked + n;
    for (let i = 0; i < n; i++) {
      await window.acquire();
      window.run(() => producer.queues.publish(queue, payload));
    }
    await window.drain(60_000);
    while (acked < target) await new Promise((resolve) => setTimeout(resolve, 1));
  };
  await run(Math.min(20_000, messages)); // warm-up: JIT and heap sizes settle
  const server0 = processCpuMs(server.pid);
  const client0 = process.cpuUsage();
  const t0 = now();
  await run(messages);
  const seconds = (now() - t0) / 1000;
  const client = process.cpuUsage(client0);
  const serverMs = processCpuMs(server.pid) - server0;
  const perMessage = (us: number): string => `${(us / messages).toFixed(1)} µs/msg`;
  console.log(
    `${mode}: ${Math.round(messages / seconds).toLocaleString('en-US')} msg/s; ` +
      `server ${perMessage(serverMs * 1000)}, SDK ${perMessage(client.user + client.system)}`,
  );
} finally {
  await producer.close();
  await consumer.close();
  await server.stop();
}
