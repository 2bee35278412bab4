/** `messaging pub | sub | req | reply` — core pub/sub and request/reply from the terminal. */
import { InvalidArgumentError, type Command } from 'commander';
import {
  PRIORITIES,
  type Message,
  type PriorityName,
  type PublishAck,
  type PublishOptions,
} from '../../client/index.ts';
import {
  collectHeader,
  connectFromOptions,
  headersFrom,
  positiveInt,
  serverFrom,
  timeoutFrom,
  type GlobalOptions,
} from '../connect.ts';
import { CliError, describeError } from '../errors.ts';
import { durationArg, examples } from '../format.ts';
import { LineWriter, note, onInterrupt, readStdin } from '../io.ts';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lenientUtf8 = new TextDecoder();

/** `--json` line for a message: payload as text when it is valid UTF-8, else `payload_base64`. */
export function messageToJson(m: Message): string {
  return JSON.stringify(messageToObject(m));
}

/** The object behind `messageToJson`, for commands that add fields (`seq`, a dead letter's reason). */
export function messageToObject(m: Message): Record<string, unknown> {
  const out: Record<string, unknown> = { topic: m.topic, headers: m.headers };
  try {
    out['payload'] = strictUtf8.decode(m.payload);
  } catch {
    out['payload_base64'] = Buffer.from(
      m.payload.buffer,
      m.payload.byteOffset,
      m.payload.byteLength,
    ).toString('base64');
  }
  out['reply'] = m.reply || null;
  out['id'] = m.id ?? null;
  if (m.timestamp !== undefined) out['timestamp'] = m.timestamp;
  for (const [k, v] of Object.entries(m.meta)) {
    if (k !== 'headers' && k !== 'id' && v !== undefined) out[k] = v;
  }
  return out;
}

/** Plain line for a message: `[topic] payload`. */
export function messageToLine(m: Message): string {
  return `[${m.topic}] ${lenientUtf8.decode(m.payload)}`;
}

async function payloadFrom(data: string): Promise<Uint8Array | string> {
  return data === '-' ? readStdin() : data;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Outcome of `publishConfirmedMany`: the failures, and where the confirmed messages were stored. */
interface ConfirmSummary {
  failures: unknown[];
  /** Confirmed, but no queue or stream was bound to the topic: delivered to subscribers only. */
  unstored: number;
  queues: Set<string>;
  streams: Set<string>;
}

/** Publishes `count` times with confirms, at most `window` in flight. */
async function publishConfirmedMany(
  count: number,
  publishOne: () => Promise<PublishAck>,
): Promise<ConfirmSummary> {
  const window = 256;
  const summary: ConfirmSummary = { failures: [], unstored: 0, queues: new Set(), streams: new Set() };
  const inflight = new Set<Promise<void>>();
  for (let i = 0; i < count; i++) {
    const p: Promise<void> = publishOne()
      .then((ack) => {
        const streams = Object.keys(ack.streams ?? {});
        if ((ack.queues ?? []).length === 0 && streams.length === 0) summary.unstored++;
        for (const q of ack.queues ?? []) summary.queues.add(q);
        for (const s of streams) summary.streams.add(s);
      })
      .catch((err: unknown) => void summary.failures.push(err))
      .finally(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size >= window) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  return summary;
}

const list = (names: Iterable<string>): string => [...names].sort().join(', ');

/** Where the confirmed messages went, for the closing note. */
function storedNote(topic: string, summary: ConfirmSummary): string {
  const parts: string[] = [];
  if (summary.queues.size > 0)
    parts.push(`${summary.queues.size === 1 ? 'queue' : 'queues'} ${list(summary.queues)}`);
  if (summary.streams.size > 0)
    parts.push(`${summary.streams.size === 1 ? 'stream' : 'streams'} ${list(summary.streams)}`);
  if (parts.length === 0)
    return `; no queue or stream is bound to ${topic}, so nothing was stored (subscribers only)`;
  return `; stored in ${parts.join(' and ')}`;
}

/** Message options from the pub flags (priority, ttl, delay, headers). */
function publishOptionsFrom(opts: PubOptions): PublishOptions {
  const options: PublishOptions = {};
  const headers = headersFrom(opts.header);
  if (headers) options.headers = headers;
  if (opts.priority !== undefined) options.priority = opts.priority;
  if (opts.ttl !== undefined) options.ttlMs = opts.ttl;
  if (opts.delay !== undefined) options.deliverAt = Date.now() + opts.delay;
  return options;
}

async function runPub(topic: string, data: string, opts: PubOptions): Promise<void> {
  const count = opts.count ?? 1;
  const options = publishOptionsFrom(opts);
  const payload = await payloadFrom(data);
  const conn = await connectFromOptions(opts);
  const ctx = { server: serverFrom(opts), queue: opts.queue };
  const target = opts.queue !== undefined ? `queue '${opts.queue}'` : topic;
  try {
    // A direct queue publish is always confirmed: the point is to know it was stored.
    if (opts.confirm || opts.queue !== undefined) {
      const timeoutMs = timeoutFrom(opts);
      const queue = opts.queue;
      const summary = await publishConfirmedMany(count, () =>
        queue !== undefined
          ? conn.queues.publish(queue, payload, { ...options, topic, timeoutMs })
          : conn.publishConfirmed(topic, payload, { ...options, timeoutMs }),
      );
      if (summary.failures.length > 0) {
        const first = describeError(summary.failures[0], ctx);
        throw new CliError(
          `${summary.failures.length} of ${plural(count, 'message')} to ${target} not confirmed: ${first.message}`,
          first.exitCode,
        );
      }
      if (queue === undefined && summary.unstored > 0) {
        // --confirm promises durability: a message only subscribers saw was not confirmed durable.
        throw new CliError(
          `${summary.unstored} of ${plural(count, 'message')} to ${topic} not stored: no queue or stream is bound to it — bind one with: messaging queue add NAME --bind '${topic}'`,
          1,
        );
      }
      note(
        `published ${plural(count, 'message')} to ${target} (all confirmed)${queue !== undefined ? '; stored' : storedNote(topic, summary)}`,
      );
      return;
    }
    for (let i = 0; i < count; i++) {
      conn.publish(topic, payload, options);
      // Round-trip now and then: it bounds what waits in the socket buffer for large counts.
      if (i % 10_000 === 9_999) await conn.flush();
    }
    // The PONG proves the server has taken every PUB before we close.
    await conn.flush();
    note(`published ${plural(count, 'message')} to ${topic}`);
  } catch (err) {
    throw describeError(err, ctx);
  } finally {
    await conn.close();
  }
}

async function runSub(pattern: string, opts: SubOptions): Promise<void> {
  const out = new LineWriter(process.stdout);
  const conn = await connectFromOptions(opts, { reconnect: true });
  const sub = conn.subscribe(pattern, { queue: opts.queue, max: opts.count });
  const stopInterrupt = onInterrupt(() => void sub.drain());
  try {
    await sub.ready();
    note(
      `subscribed to '${pattern}'${opts.queue ? ` in queue group '${opts.queue}'` : ''} on ${conn.server}${opts.count ? `, exiting after ${plural(opts.count, 'message')}` : ''}`,
    );
    const format = opts.json ? messageToJson : messageToLine;
    for await (const m of sub) {
      out.line(format(m));
      if (out.isBroken) break;
    }
    await out.flush();
    await conn.drain();
  } catch (err) {
    await out.flush();
    throw describeError(err, { server: serverFrom(opts) });
  } finally {
    stopInterrupt();
    await conn.close();
  }
}

async function runReq(topic: string, data: string, opts: ReqOptions): Promise<void> {
  const payload = await payloadFrom(data);
  const timeoutMs = timeoutFrom(opts);
  const conn = await connectFromOptions(opts);
  try {
    const reply = await conn.request(topic, payload, { timeoutMs, headers: headersFrom(opts.header) });
    const out = new LineWriter(process.stdout);
    out.line(opts.json ? messageToJson(reply) : lenientUtf8.decode(reply.payload));
    await out.flush();
  } catch (err) {
    throw describeError(err, { server: serverFrom(opts), topic, timeoutMs });
  } finally {
    await conn.close();
  }
}

async function runReply(topic: string, opts: ReplyOptions): Promise<void> {
  if (opts.echo && opts.data !== undefined) throw new CliError('use either --echo or --data, not both');
  const out = new LineWriter(process.stdout);
  const conn = await connectFromOptions(opts, { reconnect: true });
  const sub = conn.subscribe(topic, { queue: opts.queue, max: opts.count });
  const stopInterrupt = onInterrupt(() => void sub.drain());
  try {
    await sub.ready();
    note(
      `answering requests on '${topic}'${opts.queue ? ` in queue group '${opts.queue}'` : ''} on ${conn.server} (${opts.data !== undefined ? 'fixed data' : 'echo'})`,
    );
    for await (const m of sub) {
      out.line(messageToLine(m));
      const answered =
        opts.data !== undefined ? m.respond(opts.data) : m.respond(m.payload, { headers: { ...m.headers } });
      if (!answered) note(`message on '${m.topic}' has no reply topic; not answered`);
    }
    await out.flush();
    await conn.drain();
  } catch (err) {
    await out.flush();
    throw describeError(err, { server: serverFrom(opts) });
  } finally {
    stopInterrupt();
    await conn.close();
  }
}

interface PubOptions extends GlobalOptions {
  count?: number;
  header?: string[];
  confirm?: boolean;
  queue?: string;
  priority?: number | PriorityName;
  ttl?: number;
  delay?: number;
}
interface SubOptions extends GlobalOptions {
  queue?: string;
  count?: number;
  json?: boolean;
}
interface ReqOptions extends GlobalOptions {
  header?: string[];
  json?: boolean;
}
interface ReplyOptions extends GlobalOptions {
  echo?: boolean;
  queue?: string;
  count?: number;
  data?: string;
}

function priorityArg(value: string): number | PriorityName {
  if (value in PRIORITIES) return value as PriorityName;
  const n = Number(value);
  if (Number.isInteger(n) && n >= 0 && n <= 5) return n;
  throw new InvalidArgumentError(`priority is 0-5 or one of ${Object.keys(PRIORITIES).join(', ')}.`);
}

/** Registers pub, sub, req and reply on the root program. */
export function registerPubSub(program: Command): void {
  program
    .command('pub')
    .description('publish a message (fire-and-forget, or confirmed with --confirm)')
    .argument('<topic>', 'topic to publish to, e.g. orders.created')
    .argument('<data>', "payload text; '-' reads it from stdin")
    .option('-n, --count <n>', 'publish the message N times', positiveInt('--count'))
    .option('-H, --header <k=v>', 'add a header (repeatable)', collectHeader)
    .option(
      '--confirm',
      'wait until the server confirms each message (stored in every bound queue and stream); exit 1 unless all are confirmed',
    )
    .option(
      '--queue <name>',
      'publish straight into this durable queue, bypassing bindings (implies --confirm)',
    )
    .option(
      '--priority <p>',
      'priority 0-5 or lowest|low|normal|high|highest|critical (durable queues)',
      priorityArg,
    )
    .option(
      '--ttl <duration>',
      'expire the message after this long, e.g. 30s or 60000 (ms)',
      durationArg('--ttl'),
    )
    .option(
      '--delay <duration>',
      'deliver from durable queues no sooner than this from now, e.g. 10s or 5000 (ms)',
      durationArg('--delay', true),
    )
    .addHelpText(
      'after',
      examples(
        `messaging pub orders.created '{"id":42}' --header source=cli`,
        'echo hello | messaging pub greetings - --count 10 --confirm',
        `messaging pub orders.created '{"id":43}' --queue orders --priority high --delay 30s`,
      ),
    )
    .action(async (topic: string, data: string, _o: unknown, cmd: Command) =>
      runPub(topic, data, cmd.optsWithGlobals<PubOptions>()),
    );

  program
    .command('sub')
    .description('subscribe and print one line per message to stdout (Ctrl-C to stop)')
    .argument('<pattern>', "topic pattern: '*' matches one token, '#' zero or more")
    .option('-q, --queue <group>', 'join a queue group: members split the messages')
    .option('-n, --count <n>', 'exit after N messages', positiveInt('--count'))
    .option('--json', 'print each message as a JSON object (topic, headers, payload, reply, id, …)')
    .addHelpText(
      'after',
      examples("messaging sub 'orders.*'", "messaging sub 'orders.#' --queue billing --count 10 --json"),
    )
    .action(async (pattern: string, _o: unknown, cmd: Command) =>
      runSub(pattern, cmd.optsWithGlobals<SubOptions>()),
    );

  program
    .command('req')
    .description('send a request and print the reply (uses --timeout, default 5000 ms)')
    .argument('<topic>', 'topic a service answers on')
    .argument('<data>', "request payload; '-' reads it from stdin")
    .option('-H, --header <k=v>', 'add a header (repeatable)', collectHeader)
    .option('--json', 'print the reply as a JSON object instead of its payload')
    .addHelpText('after', examples(`messaging req users.lookup '{"id":7}' --timeout 2000`))
    .action(async (topic: string, data: string, _o: unknown, cmd: Command) =>
      runReq(topic, data, cmd.optsWithGlobals<ReqOptions>()),
    );

  program
    .command('reply')
    .description('answer requests on a topic: echo them (default) or send fixed data')
    .argument('<topic>', 'topic pattern to answer on')
    .option('--echo', 'answer with the request payload and headers (the default)')
    .option('--data <text>', 'answer every request with this text')
    .option('-q, --queue <group>', 'join a queue group so several responders share the load')
    .option('-n, --count <n>', 'exit after answering N requests', positiveInt('--count'))
    .addHelpText(
      'after',
      examples(
        'messaging reply users.lookup --echo',
        'messaging reply time.now --data ok --queue svc --count 1',
      ),
    )
    .action(async (topic: string, _o: unknown, cmd: Command) =>
      runReply(topic, cmd.optsWithGlobals<ReplyOptions>()),
    );
}
