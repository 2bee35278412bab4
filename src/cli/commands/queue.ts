/** `messaging queue add | ls | info | purge | rm | consume` — durable queues from the terminal. */
import { InvalidArgumentError, type Command } from 'commander';
import type { QueueInfo, QueueMessage } from '../../client/index.ts';
import {
  connectFromOptions,
  positiveInt,
  print,
  serverFrom,
  withConnection,
  type GlobalOptions,
} from '../connect.ts';
import { CliError, describeError } from '../errors.ts';
import {
  collect,
  durationArg,
  examples,
  formatCount,
  formatDuration,
  nonNegativeInt,
  renderKeyValues,
} from '../format.ts';
import { LineWriter, note, onInterrupt } from '../io.ts';
import { renderTable } from '../table.ts';
import { messageToJson, messageToLine } from './pubsub.ts';

interface AddOptions extends GlobalOptions {
  bind?: string[];
  maxLength?: number;
  overflow?: 'reject-publish' | 'drop-oldest';
  ackTimeout?: number;
  maxDeliveries?: number;
}

interface JsonOption extends GlobalOptions {
  json?: boolean;
}

interface ConsumeCliOptions extends GlobalOptions {
  count?: number;
  ack?: boolean;
  json?: boolean;
  prefetch?: number;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

async function runAdd(name: string, opts: AddOptions): Promise<void> {
  const spec = await withConnection(opts, { queue: name }, (conn) =>
    conn.queues.declare({
      name,
      bindings: opts.bind ?? [],
      maxLength: opts.maxLength,
      overflow: opts.overflow,
      ackTimeoutMs: opts.ackTimeout,
      maxDeliveries: opts.maxDeliveries,
    }),
  );
  const bindings = spec.bindings.length > 0 ? `bound to ${spec.bindings.join(', ')}` : 'with no bindings';
  note(`queue '${spec.name}' ready, ${bindings}`);
  if (spec.bindings.length === 0) {
    note(`only direct publishes reach it: messaging pub <topic> <data> --queue ${spec.name}`);
  }
}

function queueRows(queues: QueueInfo[]): string[][] {
  return queues.map((q) => [
    q.name,
    q.bindings.join(', ') || '-',
    formatCount(q.stats.depth),
    formatCount(q.stats.in_flight),
    formatCount(q.stats.delayed),
    formatCount(q.stats.dead_letters),
    formatDuration(q.stats.oldest_message_age_ms),
  ]);
}

async function runLs(opts: JsonOption): Promise<void> {
  const queues = await withConnection(opts, {}, (conn) => conn.queues.list());
  queues.sort((a, b) => a.name.localeCompare(b.name));
  if (opts.json) return print(JSON.stringify(queues));
  if (queues.length === 0) {
    note("no queues — create one with: messaging queue add orders --bind 'orders.#'");
    return;
  }
  await print(
    renderTable(
      ['NAME', 'BINDINGS', 'DEPTH', 'IN FLIGHT', 'DELAYED', 'DEAD LETTERS', 'OLDEST'],
      queueRows(queues),
      ['left', 'left', 'right', 'right', 'right', 'right', 'right'],
    ),
  );
}

function infoText(q: QueueInfo): string {
  const s = q.stats;
  const rate = (n: number | undefined): string => (n === undefined ? '-' : `${n}/s`);
  return renderKeyValues([
    ['queue', q.name],
    ['bindings', q.bindings.join(', ') || '- (direct publishes only)'],
    ['max length', q.max_length !== undefined ? formatCount(q.max_length) : 'unbounded'],
    ['overflow', q.overflow],
    ['ack timeout', formatDuration(q.ack_timeout_ms)],
    ['max deliveries', q.max_deliveries === 0 ? 'unlimited' : String(q.max_deliveries)],
    ['depth', formatCount(s.depth)],
    ['in flight', formatCount(s.in_flight)],
    ['delayed', formatCount(s.delayed)],
    ['dead letters', formatCount(s.dead_letters)],
    ['oldest message age', formatDuration(s.oldest_message_age_ms)],
    ['published total', formatCount(s.published_total)],
    ['acked total', formatCount(s.acked_total)],
    ['dead-lettered total', formatCount(s.dead_lettered_total)],
    ['publish rate', rate(s.publish_rate)],
    ['ack rate', rate(s.ack_rate)],
  ]);
}

async function runInfo(name: string, opts: JsonOption): Promise<void> {
  const info = await withConnection(opts, { queue: name }, (conn) => conn.queues.info(name));
  await print(opts.json ? JSON.stringify(info) : infoText(info));
}

async function runPurge(name: string, opts: GlobalOptions): Promise<void> {
  const purged = await withConnection(opts, { queue: name }, (conn) => conn.queues.purge(name));
  note(`purged ${plural(purged, 'message')} from queue '${name}'`);
}

async function runRm(name: string, opts: GlobalOptions): Promise<void> {
  await withConnection(opts, { queue: name }, (conn) => conn.queues.delete(name));
  note(`queue '${name}' removed with its messages and dead letters`);
}

/** Plain line for a queue delivery: the `sub` format plus the delivery id and attempt. */
export function queueMessageToLine(m: QueueMessage): string {
  return `${messageToLine(m)}  (delivery_id=${m.deliveryId} delivery_count=${m.deliveryCount})`;
}

async function runConsume(name: string, opts: ConsumeCliOptions): Promise<void> {
  const out = new LineWriter(process.stdout);
  const conn = await connectFromOptions(opts, { reconnect: true });
  const ctx = { server: serverFrom(opts), queue: name };
  // No point holding more unacknowledged deliveries than we will print.
  const prefetch = opts.count !== undefined ? Math.min(opts.prefetch ?? 10, opts.count) : opts.prefetch;
  const consumer = conn.queues.consume(name, { prefetch });
  const stopInterrupt = onInterrupt(() => void consumer.stop());
  const acks: Array<Promise<void>> = [];
  const ackFailures: unknown[] = [];
  try {
    await consumer.ready();
    note(
      `consuming queue '${name}' on ${conn.server}${opts.count ? `, exiting after ${plural(opts.count, 'message')}` : ''}; ${
        opts.ack ? 'acking each message' : 'messages are NOT acked: they return to the queue when this exits'
      }`,
    );
    const format = opts.json ? messageToJson : queueMessageToLine;
    let n = 0;
    for await (const m of consumer) {
      out.line(format(m));
      if (opts.ack) acks.push(m.ack().catch((err: unknown) => void ackFailures.push(err)));
      if (out.isBroken || (opts.count !== undefined && ++n >= opts.count)) break;
    }
    await Promise.all(acks);
    await out.flush();
    if (ackFailures.length > 0) {
      const first = describeError(ackFailures[0], ctx);
      throw new CliError(
        `${ackFailures.length} of ${plural(acks.length, 'ack')} failed: ${first.message} — those messages will be delivered again`,
        first.exitCode,
      );
    }
    if (opts.ack) note(`acked ${plural(acks.length, 'message')}`);
  } catch (err) {
    await out.flush();
    throw describeError(err, ctx);
  } finally {
    stopInterrupt();
    await conn.close();
  }
}

/** Registers the `queue` command group. */
export function registerQueue(program: Command): void {
  const queue = program
    .command('queue')
    .description('durable queues: create, inspect, purge, remove and consume')
    .addHelpText(
      'after',
      examples(
        "messaging queue add orders --bind 'orders.#' --max-length 100000",
        'messaging queue ls',
        'messaging queue consume orders --count 10 --ack --json',
      ),
    );

  queue
    .command('add')
    .description('create a durable queue (idempotent when the settings are the same)')
    .argument('<name>', 'queue name')
    .option(
      '-b, --bind <pattern>',
      "store messages whose topic matches (repeatable; '*' one token, '#' any)",
      collect,
    )
    .option('--max-length <n>', 'most messages waiting; then --overflow applies', positiveInt('--max-length'))
    .option(
      '--overflow <policy>',
      'when full: reject-publish (QUEUE_FULL to the publisher) or drop-oldest',
      (v) => {
        if (v !== 'reject-publish' && v !== 'drop-oldest') {
          throw new InvalidArgumentError('--overflow is reject-publish or drop-oldest.');
        }
        return v;
      },
    )
    .option(
      '--ack-timeout <duration>',
      'redeliver an unacked message after this long, e.g. 30s',
      durationArg('--ack-timeout'),
    )
    .option(
      '--max-deliveries <n>',
      'dead-letter a message after this many deliveries (0 = never)',
      nonNegativeInt('--max-deliveries'),
    )
    .addHelpText(
      'after',
      examples(
        "messaging queue add orders --bind 'orders.#'",
        "messaging queue add emails --bind 'email.*' --bind 'notify.email' --max-length 1000 --overflow drop-oldest --ack-timeout 2m --max-deliveries 3",
      ),
    )
    .action(async (name: string, _o: unknown, cmd: Command) =>
      runAdd(name, cmd.optsWithGlobals<AddOptions>()),
    );

  queue
    .command('ls')
    .description('list queues: bindings, depth, in flight, delayed, dead letters, oldest message age')
    .option('--json', 'print the queues as a JSON array (settings and all stats)')
    .action(async (_o: unknown, cmd: Command) => runLs(cmd.optsWithGlobals<JsonOption>()));

  queue
    .command('info')
    .description("show a queue's settings and all its stats")
    .argument('<name>', 'queue name')
    .option('--json', 'print as a JSON object')
    .action(async (name: string, _o: unknown, cmd: Command) =>
      runInfo(name, cmd.optsWithGlobals<JsonOption>()),
    );

  queue
    .command('purge')
    .description('delete the waiting messages of a queue (in-flight ones stay with their consumers)')
    .argument('<name>', 'queue name')
    .action(async (name: string, _o: unknown, cmd: Command) =>
      runPurge(name, cmd.optsWithGlobals<GlobalOptions>()),
    );

  queue
    .command('rm')
    .description('remove a queue with its messages and dead letters')
    .argument('<name>', 'queue name')
    .action(async (name: string, _o: unknown, cmd: Command) =>
      runRm(name, cmd.optsWithGlobals<GlobalOptions>()),
    );

  queue
    .command('consume')
    .description('print one line per message delivered from a queue (Ctrl-C to stop)')
    .argument('<name>', 'queue name')
    .option('-n, --count <n>', 'exit after N messages', positiveInt('--count'))
    .option('--ack', 'ack each message; exit only once every ack is confirmed, 1 if any failed')
    .option(
      '--json',
      'print each message as a JSON object (as sub --json, plus queue, delivery_id, delivery_count)',
    )
    .option('--prefetch <n>', 'most unacked messages held at once (default 10)', positiveInt('--prefetch'))
    .addHelpText(
      'after',
      `
Without --ack the messages are left unacknowledged: they go back to the queue (and are
delivered again) when this command exits or after the queue's ack timeout.
${examples('messaging queue consume orders --count 10 --ack --json', 'messaging queue consume orders --count 1   # peek: the message stays queued')}`,
    )
    .action(async (name: string, _o: unknown, cmd: Command) =>
      runConsume(name, cmd.optsWithGlobals<ConsumeCliOptions>()),
    );
}
