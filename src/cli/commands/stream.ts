/** `messaging stream add | ls | info | read | rm` — streams from the terminal. */
import { InvalidArgumentError, type Command } from 'commander';
import type { Connection, StreamFrom, StreamInfo, StreamMessage } from '../../client/index.ts';
import {
  connectFromOptions,
  positiveInt,
  print,
  serverFrom,
  withConnection,
  type GlobalOptions,
} from '../connect.ts';
import { describeError } from '../errors.ts';
import {
  collect,
  durationArg,
  examples,
  formatBytes,
  formatCount,
  formatDuration,
  renderKeyValues,
} from '../format.ts';
import { LineWriter, note, onInterrupt } from '../io.ts';
import { renderTable } from '../table.ts';
import { messageToLine, messageToObject } from './pubsub.ts';

interface AddOptions extends GlobalOptions {
  bind: string[];
  maxAge?: number;
  maxBytes?: number;
  maxMsgs?: number;
}

interface JsonOption extends GlobalOptions {
  json?: boolean;
}

interface ReadOptions extends GlobalOptions {
  from?: StreamFrom;
  count?: number;
  follow?: boolean;
  reader?: string;
  json?: boolean;
}

/** Messages per `stream.read` when paging through a stream. */
const PAGE = 100;
/** How often `read --follow --reader` saves the reader's position. */
const COMMIT_EVERY_MS = 1000;

/** `earliest`, `latest`, `last`, a sequence number or an ISO-8601 time. */
export function parseFrom(value: string): StreamFrom {
  if (value === 'earliest' || value === 'latest' || value === 'last') return value;
  if (/^\d+$/.test(value)) return { seq: Number(value) };
  // Only things that look like dates: Date.parse alone accepts far too much.
  if (/^\d{4}-\d{2}-\d{2}/.test(value)) {
    const time = Date.parse(value);
    if (Number.isFinite(time)) return { time };
  }
  throw new InvalidArgumentError(
    '--from is earliest, latest, last, a sequence number, or an ISO time such as 2024-05-01T12:00:00Z.',
  );
}

function streamMessageToJson(m: StreamMessage): string {
  return JSON.stringify({ stream: m.stream, seq: m.seq, ...messageToObject(m) });
}

function streamMessageToLine(m: StreamMessage): string {
  return `#${m.seq} ${messageToLine(m)}`;
}

async function runAdd(name: string, opts: AddOptions): Promise<void> {
  const spec = await withConnection(opts, { stream: name }, (conn) =>
    conn.streams.declare({
      name,
      bindings: opts.bind,
      maxAgeMs: opts.maxAge,
      maxBytes: opts.maxBytes,
      maxMsgs: opts.maxMsgs,
    }),
  );
  note(`stream '${spec.name}' ready, recording ${spec.bindings.join(', ')}`);
}

function retention(s: StreamInfo): string {
  const parts: string[] = [];
  if (s.max_age_ms !== undefined) parts.push(`max age ${formatDuration(s.max_age_ms)}`);
  if (s.max_bytes !== undefined) parts.push(`max ${formatBytes(s.max_bytes)}`);
  if (s.max_msgs !== undefined) parts.push(`max ${formatCount(s.max_msgs)} messages`);
  return parts.join(', ') || 'unlimited';
}

function readers(s: StreamInfo): string {
  const entries = Object.entries(s.readers ?? {});
  return entries.length > 0 ? entries.map(([r, next]) => `${r}@${next}`).join(', ') : '-';
}

async function runLs(opts: JsonOption): Promise<void> {
  const streams = await withConnection(opts, {}, (conn) => conn.streams.list());
  streams.sort((a, b) => a.name.localeCompare(b.name));
  if (opts.json) return print(JSON.stringify(streams));
  if (streams.length === 0) {
    note("no streams — create one with: messaging stream add audit --bind 'orders.#'");
    return;
  }
  await print(
    renderTable(
      ['NAME', 'BINDINGS', 'MESSAGES', 'BYTES', 'FIRST SEQ', 'LAST SEQ', 'READERS'],
      streams.map((s) => [
        s.name,
        s.bindings.join(', ') || '-',
        formatCount(s.messages),
        formatBytes(s.bytes),
        String(s.first_seq),
        String(s.last_seq),
        readers(s),
      ]),
      ['left', 'left', 'right', 'right', 'right', 'right', 'left'],
    ),
  );
}

async function runInfo(name: string, opts: JsonOption): Promise<void> {
  const s = await withConnection(opts, { stream: name }, (conn) => conn.streams.info(name));
  if (opts.json) return print(JSON.stringify(s));
  await print(
    renderKeyValues([
      ['stream', s.name],
      ['bindings', s.bindings.join(', ') || '-'],
      ['retention', retention(s)],
      ['messages', formatCount(s.messages)],
      ['bytes', formatBytes(s.bytes)],
      ['first seq', String(s.first_seq)],
      ['last seq', String(s.last_seq)],
      ['readers', readers(s)],
    ]),
  );
}

async function runRm(name: string, opts: GlobalOptions): Promise<void> {
  await withConnection(opts, { stream: name }, (conn) => conn.streams.delete(name));
  note(`stream '${name}' removed with its messages and readers`);
}

/**
 * Where `read` starts: `--from` when given; else a durable reader's saved position (a new reader
 * starts at the beginning); else `earliest`, or `latest` with --follow.
 */
async function startOf(conn: Connection, name: string, opts: ReadOptions): Promise<StreamFrom> {
  if (opts.from !== undefined) return opts.from;
  if (opts.reader !== undefined) {
    const position = await conn.streams.readerPosition(name, opts.reader);
    return position !== undefined ? { seq: position } : 'earliest';
  }
  return opts.follow ? 'latest' : 'earliest';
}

/** Pages through the stream up to its current end (or `--count`); with a reader, saves its position. */
async function readOnce(conn: Connection, name: string, opts: ReadOptions, out: LineWriter): Promise<number> {
  const format = opts.json ? streamMessageToJson : streamMessageToLine;
  let from = await startOf(conn, name, opts);
  let left = opts.count ?? Infinity;
  let printed = 0;
  while (left > 0 && !out.isBroken) {
    // Never ask for more than we will print: with a reader, the server moves it past all it returned.
    const page = await conn.streams.read(name, { from, max: Math.min(PAGE, left), reader: opts.reader });
    for (const m of page.messages) out.line(format(m));
    printed += page.messages.length;
    left -= page.messages.length;
    const advanced = typeof from === 'object' && 'seq' in from ? page.nextSeq > from.seq : true;
    if (page.nextSeq > page.lastSeq || !advanced) break;
    from = { seq: page.nextSeq };
  }
  return printed;
}

async function follow(conn: Connection, name: string, opts: ReadOptions, out: LineWriter): Promise<number> {
  const format = opts.json ? streamMessageToJson : streamMessageToLine;
  const from = await startOf(conn, name, opts);
  const tail = conn.streams.subscribe(name, { from, reader: opts.reader });
  const stopInterrupt = onInterrupt(() => void tail.stop());
  let committed: number | undefined;
  const commit = async (): Promise<void> => {
    const next = tail.nextSeq;
    if (opts.reader === undefined || next === undefined || next === committed) return;
    committed = next;
    await tail.commit();
  };
  const timer =
    opts.reader !== undefined ? setInterval(() => void commit().catch(() => {}), COMMIT_EVERY_MS) : undefined;
  let printed = 0;
  try {
    await tail.ready();
    note(
      `following stream '${name}' on ${conn.server}${opts.reader ? ` as reader '${opts.reader}'` : ''}${opts.count ? `, exiting after ${opts.count} messages` : ''} (Ctrl-C to stop)`,
    );
    for await (const m of tail) {
      out.line(format(m));
      if (out.isBroken || (opts.count !== undefined && ++printed >= opts.count)) break;
    }
    await commit();
  } finally {
    clearInterval(timer);
    stopInterrupt();
  }
  return printed;
}

async function runRead(name: string, opts: ReadOptions): Promise<void> {
  const out = new LineWriter(process.stdout);
  const conn = await connectFromOptions(opts, opts.follow ? { reconnect: true } : {});
  try {
    if (opts.follow) await follow(conn, name, opts, out);
    else {
      const n = await readOnce(conn, name, opts, out);
      if (n === 0)
        note(`no messages to read in stream '${name}'${opts.reader ? ` for reader '${opts.reader}'` : ''}`);
    }
    await out.flush();
  } catch (err) {
    await out.flush();
    throw describeError(err, { server: serverFrom(opts), stream: name });
  } finally {
    await conn.close();
  }
}

/** Registers the `stream` command group. */
export function registerStream(program: Command): void {
  const stream = program
    .command('stream')
    .description('streams: record topics as a numbered log; read from any position, follow live')
    .addHelpText(
      'after',
      examples(
        "messaging stream add audit --bind 'orders.#' --max-age 7d",
        'messaging stream read audit --from earliest --count 10',
        'messaging stream read audit --follow --reader billing',
      ),
    );

  stream
    .command('add')
    .description('create a stream (idempotent when the settings are the same)')
    .argument('<name>', 'stream name')
    .requiredOption('-b, --bind <pattern>', 'record messages whose topic matches (repeatable)', collect)
    .option(
      '--max-age <duration>',
      'drop messages older than this: 90s, 10m, 2h, 7d or ms',
      durationArg('--max-age'),
    )
    .option('--max-bytes <n>', 'drop the oldest messages beyond this many bytes', positiveInt('--max-bytes'))
    .option('--max-msgs <n>', 'drop the oldest messages beyond this many', positiveInt('--max-msgs'))
    .action(async (name: string, _o: unknown, cmd: Command) =>
      runAdd(name, cmd.optsWithGlobals<AddOptions>()),
    );

  stream
    .command('ls')
    .description('list streams: bindings, messages, bytes, sequence range, readers')
    .option('--json', 'print the streams as a JSON array')
    .action(async (_o: unknown, cmd: Command) => runLs(cmd.optsWithGlobals<JsonOption>()));

  stream
    .command('info')
    .description("show a stream's settings, sequence range and durable readers")
    .argument('<name>', 'stream name')
    .option('--json', 'print as a JSON object')
    .action(async (name: string, _o: unknown, cmd: Command) =>
      runInfo(name, cmd.optsWithGlobals<JsonOption>()),
    );

  stream
    .command('read')
    .description('print messages of a stream, one line each (`#seq [topic] payload`)')
    .argument('<name>', 'stream name')
    .option(
      '--from <position>',
      'earliest | latest | last | SEQ | ISO-TIME (default: the reader position, else earliest; latest with --follow)',
      parseFrom,
    )
    .option('-n, --count <n>', 'stop after N messages', positiveInt('--count'))
    .option('-f, --follow', 'keep following new messages (Ctrl-C to stop)')
    .option('--reader <name>', 'a durable reader: continue where it left off, and save where this run stops')
    .option('--json', 'print each message as a JSON object (as sub --json, plus stream and seq)')
    .addHelpText(
      'after',
      examples(
        'messaging stream read audit --from 41 --count 10',
        'messaging stream read audit --from 2024-05-01T00:00:00Z --json',
        'messaging stream read audit --reader nightly-export   # run again: continues after the last one printed',
      ),
    )
    .action(async (name: string, _o: unknown, cmd: Command) =>
      runRead(name, cmd.optsWithGlobals<ReadOptions>()),
    );

  stream
    .command('rm')
    .description('remove a stream with its messages and readers')
    .argument('<name>', 'stream name')
    .action(async (name: string, _o: unknown, cmd: Command) =>
      runRm(name, cmd.optsWithGlobals<GlobalOptions>()),
    );
}
