/**
 * Streams (`conn.streams`): append-only logs numbered 1, 2, 3…, read from any position, tailed live,
 * with durable readers that remember where they are. Speaks docs/protocol.md, "Streams".
 */
import { encodeControl, FrameType, MessagingError, type MsgFrame } from '../protocol/index.ts';
import { frameFromJson, StreamMessage } from './durable-message.ts';
import type { Responder } from './message.ts';
import { narrowIterator, type DurableHost, type OpenedSubscription } from './opened-subscription.ts';

/**
 * Where reading starts: `earliest` (first kept), `latest` (only messages appended from now on), `last`
 * (the last message), a sequence, a time (first message at or after it), or a durable reader's saved
 * position.
 */
export type StreamFrom =
  'earliest' | 'latest' | 'last' | { seq: number } | { time: Date | number } | { reader: string };

/** Settings of `streams.declare`. */
export interface StreamDeclareOptions {
  name: string;
  /** Topic patterns whose messages the stream records. */
  bindings?: string[];
  /** Drop messages older than this. */
  maxAgeMs?: number;
  /** Drop the oldest messages beyond this many bytes. */
  maxBytes?: number;
  /** Drop the oldest messages beyond this count. */
  maxMsgs?: number;
}

/** A stream's settings as the server reports them. */
export interface StreamSpec {
  name: string;
  bindings: string[];
  max_age_ms?: number;
  max_bytes?: number;
  max_msgs?: number;
  [key: string]: unknown;
}

/** A stream's settings and state (`stream.info`). */
export interface StreamInfo extends StreamSpec {
  /** First kept sequence; `last_seq + 1` when the stream is empty. */
  first_seq: number;
  /** Last sequence assigned; 0 before the first message. */
  last_seq: number;
  messages: number;
  bytes: number;
  /** Durable reader name → the next sequence it will read. */
  readers: Record<string, number>;
}

/** Options of `streams.read`. */
export interface StreamReadOptions {
  /**
   * Default: the reader's saved position when `reader` is given (NotFoundError for a reader that never
   * saved one: see `readerPosition`), else `earliest`.
   */
  from?: StreamFrom;
  /** At most this many messages (server default 100). */
  max?: number;
  /** A durable reader: its saved position moves to `nextSeq` of this read. */
  reader?: string;
  timeoutMs?: number;
}

/** The result of `streams.read`. */
export interface StreamReadResult {
  messages: StreamMessage[];
  /** Pass as `{ seq: nextSeq }` to continue after these messages. */
  nextSeq: number;
  firstSeq: number;
  lastSeq: number;
}

/** Options of `streams.subscribe`. */
export interface StreamSubscribeOptions {
  /**
   * Default: the reader's saved position when `reader` is given (NotFoundError for a reader that never
   * saved one: see `readerPosition`), else `latest`.
   */
  from?: StreamFrom;
  /** A durable reader: the default start, and whose position `commit()` saves. */
  reader?: string;
  /** Called once per message instead of the async iterator. */
  callback?: (message: StreamMessage) => void | Promise<void>;
}

/** The wire form of a `from` (`{time}` in epoch milliseconds). */
export function wireFrom(from: StreamFrom): string | Record<string, number | string> {
  if (typeof from === 'string') return from;
  if ('time' in from) return { time: from.time instanceof Date ? from.time.getTime() : from.time };
  return { ...from };
}

function num(body: Record<string, unknown>, key: string): number {
  const v = body[key];
  return typeof v === 'number' ? v : 0;
}

/**
 * A live tail of a stream: replays from `from`, then follows new messages. After a reconnect it
 * resumes right after the last message it delivered, so nothing is skipped or repeated.
 */
export class StreamSubscription implements AsyncIterable<StreamMessage> {
  /** @internal created by `streams.subscribe` */
  constructor(
    /** The stream followed. */
    readonly stream: string,
    private readonly sub: OpenedSubscription,
    private readonly position: { last: number | undefined; next: number | undefined },
    private readonly save: ((nextSeq: number) => Promise<void>) | undefined,
  ) {}

  /**
   * Saves the durable reader's position (the tail's `nextSeq`), so a later read or subscribe with the
   * same reader continues after the last message delivered. Needs the `reader` option.
   */
  async commit(): Promise<void> {
    if (!this.save)
      throw new MessagingError('BAD_REQUEST', 'commit() needs a stream subscription with a reader');
    const next = this.nextSeq;
    if (next !== undefined) await this.save(next);
  }

  get sid(): number {
    return this.sub.sid;
  }

  /** Sequence of the last message delivered, undefined before the first. */
  get lastSeq(): number | undefined {
    return this.position.last;
  }

  /** The sequence the tail reads next (after `ready()`), e.g. to `commit` a reader's position. */
  get nextSeq(): number | undefined {
    return this.position.last !== undefined ? this.position.last + 1 : this.position.next;
  }

  get received(): number {
    return this.sub.received;
  }

  get isActive(): boolean {
    return this.sub.isActive;
  }

  /** Resolves once the server accepted the subscription; rejects e.g. with NotFoundError. */
  ready(): Promise<void> {
    return this.sub.ready();
  }

  closed(): Promise<MessagingError | undefined> {
    return this.sub.closed();
  }

  /** Stops following (UNSUB); resolves once the server processed it and running callbacks ended. */
  stop(): Promise<void> {
    return this.sub.drain();
  }

  [Symbol.asyncIterator](): AsyncIterator<StreamMessage> {
    return narrowIterator<StreamMessage>(this.sub);
  }
}

/** The stream API of a connection (`conn.streams`). */
export class Streams {
  /** @internal use `conn.streams` */
  constructor(private readonly host: DurableHost) {}

  /** Creates a stream, or confirms an existing one with the same settings. */
  async declare(options: StreamDeclareOptions): Promise<StreamSpec> {
    const args: Record<string, unknown> = { name: options.name, bindings: options.bindings ?? [] };
    if (options.maxAgeMs !== undefined) args['max_age_ms'] = options.maxAgeMs;
    if (options.maxBytes !== undefined) args['max_bytes'] = options.maxBytes;
    if (options.maxMsgs !== undefined) args['max_msgs'] = options.maxMsgs;
    return (await this.host.command('stream.declare', args)) as StreamSpec;
  }

  /** Deletes a stream with its messages and readers. */
  async delete(name: string): Promise<void> {
    await this.host.command('stream.delete', { name });
  }

  async list(): Promise<StreamInfo[]> {
    const body = await this.host.command('stream.list');
    return Array.isArray(body['streams']) ? (body['streams'] as StreamInfo[]) : [];
  }

  /** A stream's settings and state; NotFoundError when it does not exist. */
  async info(name: string): Promise<StreamInfo> {
    return (await this.host.command('stream.info', { name })) as StreamInfo;
  }

  /** Reads up to `max` messages from `from`. With `reader`, the reader's position moves past them. */
  async read(name: string, options: StreamReadOptions = {}): Promise<StreamReadResult> {
    const from = options.from ?? (options.reader !== undefined ? { reader: options.reader } : 'earliest');
    const args: Record<string, unknown> = { stream: name, from: wireFrom(from) };
    if (options.max !== undefined) args['max'] = options.max;
    if (options.reader !== undefined) args['reader'] = options.reader;
    const body = await this.host.command(
      'stream.read',
      args,
      options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : undefined,
    );
    const items = Array.isArray(body['messages']) ? (body['messages'] as Array<Record<string, unknown>>) : [];
    return {
      messages: items.map((item) => {
        const { frame, payload } = frameFromJson(item);
        return new StreamMessage(frame, payload, this.host.responder, name);
      }),
      nextSeq: num(body, 'next_seq'),
      firstSeq: num(body, 'first_seq'),
      lastSeq: num(body, 'last_seq'),
    };
  }

  /**
   * Follows a stream: replays from `from` (default `latest`, or the reader's position), then delivers
   * new messages live, each with its `seq`.
   */
  subscribe(name: string, options: StreamSubscribeOptions = {}): StreamSubscription {
    const { reader, callback } = options;
    const from = options.from ?? (reader !== undefined ? { reader } : 'latest');
    const position: { last: number | undefined; next: number | undefined } = {
      last: undefined,
      next: undefined,
    };
    // On a re-open after a reconnect, continue exactly where the tail was.
    const resumeFrom = (): StreamFrom => {
      if (position.last !== undefined) return { seq: position.last + 1 };
      if (position.next !== undefined) return { seq: position.next };
      return from;
    };
    const sub = this.host.open(
      {
        label: `stream '${name}'`,
        openFrame: (sid, reqId) =>
          encodeControl(FrameType.CMD, reqId, {
            op: 'stream.subscribe',
            stream: name,
            sid,
            from: wireFrom(resumeFrom()),
            ...(reader !== undefined ? { reader } : {}),
          }),
        opened: (body) => {
          if (position.last === undefined && typeof body['next_seq'] === 'number') {
            position.next = body['next_seq'];
          }
        },
        wrap: (frame: MsgFrame, payload: Uint8Array, responder: Responder) => {
          const m = new StreamMessage(frame, payload, responder, name);
          if (m.meta.seq !== undefined) position.last = m.seq;
          return m;
        },
      },
      callback ? { callback: (m) => callback(m as StreamMessage) } : {},
    );
    const save = reader !== undefined ? (next: number) => this.commit(name, reader, next) : undefined;
    return new StreamSubscription(name, sub, position, save);
  }

  /** A durable reader's saved position (the sequence it reads next), undefined for a new reader. */
  async readerPosition(name: string, reader: string): Promise<number | undefined> {
    return (await this.info(name)).readers?.[reader];
  }

  /** Saves durable reader `reader`'s position: it reads `nextSeq` next. */
  async commit(name: string, reader: string, nextSeq: number): Promise<void> {
    await this.host.command('stream.commit', { stream: name, reader, next_seq: nextSeq });
  }
}
