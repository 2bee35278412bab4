/** `messaging pub | sub | req | reply` — core pub/sub and request/reply from the terminal. */
import type { Command } from 'commander';
import type { Connection, Message, PublishAck } from '../../client/index.ts';
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
import { LineWriter, note, onInterrupt, readStdin } from '../io.ts';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const lenientUtf8 = new TextDecoder();

/** `--json` line for a message: payload as text when it is valid UTF-8, else `payload_base64`. */
export function messageToJson(m: Message): string {
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
  return JSON.stringify(out);
}

/** Plain line for a message: `[topic] payload`. */
export function messageToLine(m: Message): string {
  return `[${m.topic}] ${lenientUtf8.decode(m.payload)}`;
}

async function payloadFrom(data: string): Promise<Uint8Array | string> {
  return data === '-' ? readStdin() : data;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Publishes with confirms, at most `window` in flight; returns the failures. */
async function publishConfirmedMany(
  conn: Connection,
  topic: string,
  payload: Uint8Array | string,
  count: number,
  headers: Record<string, string> | undefined,
  timeoutMs: number,
): Promise<unknown[]> {
  const window = 256;
  const failures: unknown[] = [];
  const inflight = new Set<Promise<PublishAck | void>>();
  for (let i = 0; i < count; i++) {
    const p: Promise<PublishAck | void> = conn
      .publishConfirmed(topic, payload, { headers, timeoutMs })
      .catch((err: unknown) => void failures.push(err))
      .finally(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size >= window) await Promise.race(inflight);
  }
  await Promise.all(inflight);
  return failures;
}

async function runPub(topic: string, data: string, opts: PubOptions): Promise<void> {
  const count = opts.count ?? 1;
  const headers = headersFrom(opts.header);
  const payload = await payloadFrom(data);
  const conn = await connectFromOptions(opts);
  try {
    if (opts.confirm) {
      const failures = await publishConfirmedMany(conn, topic, payload, count, headers, timeoutFrom(opts));
      if (failures.length > 0) {
        const first = describeError(failures[0], { server: serverFrom(opts) });
        throw new CliError(
          `${failures.length} of ${plural(count, 'message')} to ${topic} not confirmed: ${first.message}`,
          first.exitCode,
        );
      }
      note(`published ${plural(count, 'message')} to ${topic} (all confirmed)`);
      return;
    }
    for (let i = 0; i < count; i++) {
      conn.publish(topic, payload, { headers });
      // Round-trip now and then: it bounds what waits in the socket buffer for large counts.
      if (i % 10_000 === 9_999) await conn.flush();
    }
    // The PONG proves the server has taken every PUB before we close.
    await conn.flush();
    note(`published ${plural(count, 'message')} to ${topic}`);
  } catch (err) {
    throw describeError(err, { server: serverFrom(opts) });
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

function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
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
    .option('--confirm', 'wait for the server to confirm each message; exit 1 unless all are confirmed')
    .addHelpText(
      'after',
      examples(
        `messaging pub orders.created '{"id":42}' --header source=cli`,
        'echo hello | messaging pub greetings - --count 10 --confirm',
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
