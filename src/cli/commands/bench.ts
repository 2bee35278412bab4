/**
 * `messaging bench …` — load generators against a running server. `pub-sub` measures core pub/sub
 * throughput: K subscriber connections and one publisher, all in this process.
 */
import { performance } from 'node:perf_hooks';
import type { Command } from 'commander';
import cliProgress from 'cli-progress';
import type { Connection } from '../../client/index.ts';
import { connectFromOptions, positiveInt, serverFrom, type GlobalOptions } from '../connect.ts';
import { CliError, describeError } from '../errors.ts';
import { note } from '../io.ts';
import { renderTable } from '../table.ts';

interface PubSubOptions extends GlobalOptions {
  messages: number;
  size: number;
  subscribers: number;
}

export interface PubSubResult {
  messages: number;
  size: number;
  subscribers: number;
  publishSeconds: number;
  receiveSeconds: number;
  received: number;
}

/** Gives up when subscribers stop making progress for this long (messages were lost). */
const STALL_MS = 10_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const yieldToIo = (): Promise<void> => new Promise((r) => setImmediate(r));

async function runPubSub(opts: PubSubOptions): Promise<void> {
  const { messages, size, subscribers } = opts;
  const server = serverFrom(opts);
  const topic = `bench.pubsub.${process.pid}.${Date.now().toString(36)}`;
  const conns: Connection[] = [];
  const counts = new Array<number>(subscribers).fill(0);
  let lastReceiveAt = 0;
  const total = messages * subscribers;
  let received = 0;

  const bar =
    process.stderr.isTTY === true
      ? new cliProgress.SingleBar(
          {
            stream: process.stderr,
            format: 'pub-sub |{bar}| {percentage}% | {value}/{total} deliveries | {eta_formatted} left',
            hideCursor: true,
            clearOnComplete: true,
          },
          cliProgress.Presets.shades_classic,
        )
      : undefined;

  try {
    for (let k = 0; k < subscribers; k++) {
      const conn = await connectFromOptions(opts);
      conns.push(conn);
      const sub = conn.subscribe(topic, {
        callback: () => {
          counts[k]!++;
          received++;
          lastReceiveAt = performance.now();
        },
      });
      await sub.ready();
    }
    const pub = await connectFromOptions(opts);
    conns.push(pub);
    if (!bar)
      note(`bench pub-sub: ${messages} messages of ${size} B to ${subscribers} subscriber(s) on ${server}…`);
    bar?.start(total, 0);
    const ticker = bar ? setInterval(() => bar.update(received), 100) : undefined;

    // Flow control: keep the slowest subscriber within a window of the publisher, so the benchmark
    // measures throughput instead of filling the server's per-connection buffer (SLOW_CONSUMER).
    const window = Math.max(1000, Math.floor((2 * 1024 * 1024) / (size + 64)));
    const payload = new Uint8Array(size).fill(0x61);
    const minCount = (): number => Math.min(...counts);
    const started = performance.now();
    for (let i = 0; i < messages; i++) {
      pub.publish(topic, payload);
      if ((i & 255) === 255) {
        // Yield to I/O (no round trip: that would serialise the pipeline) and hold back while the
        // slowest subscriber is a window behind.
        do await yieldToIo();
        while (i + 1 - minCount() > window);
      }
    }
    await pub.flush();
    const published = performance.now();

    let lastProgress = received;
    let lastProgressAt = performance.now();
    while (received < total) {
      await sleep(5);
      if (received !== lastProgress) {
        lastProgress = received;
        lastProgressAt = performance.now();
      } else if (performance.now() - lastProgressAt > STALL_MS) break;
    }
    if (ticker) clearInterval(ticker);
    bar?.update(received);
    bar?.stop();

    const result: PubSubResult = {
      messages,
      size,
      subscribers,
      publishSeconds: (published - started) / 1000,
      receiveSeconds: ((received > 0 ? lastReceiveAt : performance.now()) - started) / 1000,
      received,
    };
    process.stdout.write(renderPubSubResult(result, server) + '\n');
    if (received < total) {
      throw new CliError(
        `subscribers received ${received} of ${total} messages — pub/sub is at most once; check the server log for slow consumers`,
      );
    }
  } catch (err) {
    bar?.stop();
    throw describeError(err, { server });
  } finally {
    await Promise.all(conns.map((c) => c.close()));
  }
}

/** The result table: one row for the publisher, one for all subscribers together. */
export function renderPubSubResult(r: PubSubResult, server: string): string {
  const row = (role: string, count: number, seconds: number): Array<string | number> => {
    const s = Math.max(seconds, 1e-9);
    return [role, count, count / s, (count * r.size) / s / 1e6, `${seconds.toFixed(3)} s`];
  };
  const title = `pub-sub benchmark: ${r.messages} messages × ${r.size} B, ${r.subscribers} subscriber${r.subscribers === 1 ? '' : 's'}, ${server}`;
  const table = renderTable(
    ['role', 'messages', 'msgs/s', 'MB/s', 'elapsed'],
    [
      row('publisher', r.messages, r.publishSeconds),
      row(`subscribers (${r.subscribers})`, r.received, r.receiveSeconds),
    ],
    ['left', 'right', 'right', 'right', 'right'],
  );
  return `${title}\n${table}`;
}

/** Registers the `bench` command group. */
export function registerBench(program: Command): void {
  const bench = program
    .command('bench')
    .description('run load benchmarks against a server')
    .addHelpText(
      'after',
      '\nExample:\n  $ messaging bench pub-sub --messages 100000 --size 128 --subscribers 2\n',
    );

  bench
    .command('pub-sub')
    .description('core pub/sub throughput: K subscribers, one publisher; prints msgs/s, MB/s, elapsed')
    .option('-m, --messages <n>', 'messages to publish', positiveInt('--messages'), 100_000)
    .option('-s, --size <bytes>', 'payload size in bytes', positiveInt('--size'), 128)
    .option('-k, --subscribers <k>', 'subscriber connections', positiveInt('--subscribers'), 1)
    .addHelpText(
      'after',
      '\nExample:\n  $ messaging bench pub-sub --messages 100000 --size 128 --subscribers 2\n',
    )
    .action(async (_o: unknown, cmd: Command) => runPubSub(cmd.optsWithGlobals<PubSubOptions>()));
}
