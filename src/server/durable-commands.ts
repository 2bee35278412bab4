/**
 * CMD operations for durable queues, dead letters and streams (docs/protocol.md, "Durable queues" and
 * "Streams"). Argument checking lives here; semantics live in core/durable.ts and the storage.
 */
import type { DurableMessaging } from '../core/durable.ts';
import { storedMessageToJson } from '../core/durable.ts';
import { MessagingError } from '../protocol/index.ts';
import { deliveryFields, sendDelivery, sendStored } from './stored-frames.ts';
import type { Delivery, OverflowPolicy, Storage, StreamMessage, StreamStart } from '../storage/types.ts';
import type { CommandHandler, Session } from './session.ts';

type Args = Record<string, unknown>;

export function str(args: Args, key: string): string {
  const v = args[key];
  if (typeof v !== 'string' || v.length === 0)
    throw new MessagingError('BAD_REQUEST', `"${key}" must be a non-empty string`);
  return v;
}

export function optInt(args: Args, key: string, min: number, max: number): number | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new MessagingError('BAD_REQUEST', `"${key}" must be an integer from ${min} to ${max}`);
  }
  return v;
}

function optStrings(args: Args, key: string): string[] | undefined {
  const v = args[key];
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new MessagingError('BAD_REQUEST', `"${key}" must be an array of strings`);
  }
  return v as string[];
}

const MAX_MS = 10 * 365 * 24 * 3600 * 1000;

export function queueSpecFromArgs(args: Args) {
  const overflow = args.overflow;
  if (overflow !== undefined && overflow !== 'reject-publish' && overflow !== 'drop-oldest') {
    throw new MessagingError('BAD_REQUEST', '"overflow" must be "reject-publish" or "drop-oldest"');
  }
  return dropUndefined({
    name: str(args, 'name'),
    bindings: optStrings(args, 'bindings'),
    max_length: optInt(args, 'max_length', 1, Number.MAX_SAFE_INTEGER),
    overflow: overflow as OverflowPolicy | undefined,
    ack_timeout_ms: optInt(args, 'ack_timeout_ms', 1, MAX_MS),
    max_deliveries: optInt(args, 'max_deliveries', 0, 1_000_000),
  });
}

export function streamSpecFromArgs(args: Args) {
  return dropUndefined({
    name: str(args, 'name'),
    bindings: optStrings(args, 'bindings'),
    max_age_ms: optInt(args, 'max_age_ms', 1, Number.MAX_SAFE_INTEGER),
    max_bytes: optInt(args, 'max_bytes', 1, Number.MAX_SAFE_INTEGER),
    max_msgs: optInt(args, 'max_msgs', 1, Number.MAX_SAFE_INTEGER),
  });
}

function dropUndefined<T extends Record<string, unknown>>(
  o: T,
): { [K in keyof T]: Exclude<T[K], undefined> } {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o as { [K in keyof T]: Exclude<T[K], undefined> };
}

/** `"earliest"`, `"latest"`, `"last"`, `{seq}`, `{time}` or `{reader}`. */
export function streamStart(value: unknown): StreamStart {
  if (value === undefined) return 'earliest';
  if (value === 'earliest' || value === 'latest' || value === 'last') return value;
  if (value && typeof value === 'object') {
    const o = value as Args;
    if (typeof o.seq === 'number' && Number.isInteger(o.seq) && o.seq >= 0) return { seq: o.seq };
    if (typeof o.time === 'number' && Number.isFinite(o.time)) return { time: o.time };
    if (typeof o.reader === 'string' && o.reader) return { reader: o.reader };
  }
  throw new MessagingError(
    'BAD_REQUEST',
    '"from" must be "earliest", "latest", "last", {"seq": n}, {"time": ms} or {"reader": name}',
  );
}

export function deliveryToJson(d: Delivery): Record<string, unknown> {
  return {
    delivery_id: d.delivery_id,
    delivery_count: d.delivery_count,
    queue: d.queue,
    ...storedMessageToJson(d.message),
  };
}

export function streamItemToJson(item: StreamMessage): Record<string, unknown> {
  return { seq: item.seq, ...storedMessageToJson(item.message) };
}

/** The consumer id a connection uses for a queue: unique per session, so acks from others are foreign. */
function consumerIdOf(session: Session, queue: string): string {
  return `conn-${session.id}:${queue}`;
}

/** Like `streamStart`, but a durable reader that never saved a position starts at the earliest message. */
export async function resolveStreamStart(
  storage: Storage,
  stream: string,
  from: unknown,
): Promise<StreamStart> {
  const start = streamStart(from);
  if (typeof start === 'object' && 'reader' in start) {
    if ((await storage.getReaderPosition(stream, start.reader)) === undefined) return 'earliest';
  }
  return start;
}

export function registerDurableCommands(
  commands: Map<string, CommandHandler>,
  durable: DurableMessaging,
): void {
  const storage = durable.storage;
  /** When the connection ends, every delivery it holds on that queue (pushed or pulled) goes back. */
  const holdUntilClose = (session: Session, consumerId: string): void => {
    session.onClose(consumerId, () => void durable.release(consumerId).catch(() => {}));
  };
  const resolveStart = (stream: string, from: unknown) => resolveStreamStart(storage, stream, from);
  const readerOf = (a: Args): string | undefined =>
    typeof a.reader === 'string' && a.reader ? a.reader : undefined;
  const ops: Record<string, CommandHandler> = {
    'queue.declare': (_s, a) => durable.declareQueue(queueSpecFromArgs(a)),
    'queue.delete': async (_s, a) => (await durable.deleteQueue(str(a, 'name')), {}),
    'queue.list': async () => ({
      queues: await Promise.all((await storage.listQueues()).map((q) => durable.queueInfo(q.name))),
    }),
    'queue.info': (_s, a) => durable.queueInfo(str(a, 'name')),
    'queue.purge': async (_s, a) => ({ purged: await storage.purgeQueue(str(a, 'name')) }),

    'queue.consume': (session, a) => {
      const queue = str(a, 'queue');
      const sid = session.claimSid(a.sid);
      const prefetch = optInt(a, 'prefetch', 1, 10_000) ?? 10;
      const consumerId = consumerIdOf(session, queue);
      holdUntilClose(session, consumerId);
      const fields = deliveryFields(queue);
      const stop = durable.consume(queue, consumerId, prefetch, (delivery) => {
        sendDelivery(session, sid, delivery, fields);
      });
      session.addResource(sid, { stop, release: stop });
      return { sid, consumer: consumerId };
    },

    'queue.pull': async (session, a) => {
      const queue = str(a, 'queue');
      const max = optInt(a, 'max', 1, 1000) ?? 1;
      const consumerId = consumerIdOf(session, queue);
      holdUntilClose(session, consumerId);
      const deliveries = await durable.pull(queue, consumerId, max);
      return { messages: deliveries.map(deliveryToJson) };
    },

    'queue.ack': async (session, a) => {
      const queue = str(a, 'queue');
      const ids = a.delivery_ids !== undefined ? optStrings(a, 'delivery_ids')! : [str(a, 'delivery_id')];
      return { acked: await durable.ack(queue, consumerIdOf(session, queue), ids) };
    },

    'queue.nack': async (session, a) => {
      const queue = str(a, 'queue');
      const requeue = a.requeue === undefined ? true : a.requeue === true;
      const delay = optInt(a, 'delay_ms', 0, MAX_MS);
      const error = typeof a.error === 'string' ? a.error.slice(0, 4096) : undefined;
      await durable.nack(
        queue,
        consumerIdOf(session, queue),
        str(a, 'delivery_id'),
        dropUndefined({ requeue, delay_ms: delay, error }),
      );
      return {};
    },

    'dlq.list': async (_s, a) => ({
      dead_letters: (
        await storage.listDeadLetters(str(a, 'queue'), {
          limit: optInt(a, 'limit', 1, 10_000) ?? 100,
          offset: optInt(a, 'offset', 0, Number.MAX_SAFE_INTEGER) ?? 0,
        })
      ).map((d) => ({ ...d, message: storedMessageToJson(d.message) })),
    }),
    'dlq.replay': async (_s, a) => {
      const queue = str(a, 'queue');
      const replayed = await storage.replayDeadLetters(queue, optStrings(a, 'ids'));
      durable.wake(queue);
      return { replayed };
    },
    'dlq.purge': async (_s, a) => {
      const olderThanMs = optInt(a, 'older_than_ms', 0, Number.MAX_SAFE_INTEGER);
      return {
        purged: await storage.purgeDeadLetters(
          str(a, 'queue'),
          olderThanMs === undefined ? {} : { olderThanMs },
        ),
      };
    },

    'stream.declare': (_s, a) => durable.declareStream(streamSpecFromArgs(a)),
    'stream.delete': async (_s, a) => (await durable.deleteStream(str(a, 'name')), {}),
    'stream.list': async () => ({ streams: await storage.listStreams() }),
    'stream.info': (_s, a) => storage.getStream(str(a, 'name')),
    'stream.read': async (_s, a) => {
      const stream = str(a, 'stream');
      const reader = readerOf(a);
      const result = await storage.streamRead(stream, {
        from: await resolveStart(stream, a.from === undefined && reader ? { reader } : a.from),
        max: optInt(a, 'max', 0, 10_000) ?? 100,
      });
      if (typeof a.reader === 'string' && a.reader)
        await storage.setReaderPosition(stream, a.reader, result.next_seq);
      return { ...result, messages: result.messages.map(streamItemToJson) };
    },
    'stream.subscribe': async (session, a) => {
      const stream = str(a, 'stream');
      const sid = session.claimSid(a.sid);
      const reader = readerOf(a);
      const from = await resolveStart(stream, a.from === undefined && reader ? { reader } : a.from);
      const follow = await durable.followStream(stream, from, (name, item) => {
        sendStored(session, sid, item.message, `,"stream":${JSON.stringify(name)},"seq":${item.seq}`);
      });
      session.addResource(sid, { stop: follow.stop, release: follow.stop });
      return { sid, next_seq: follow.nextSeq };
    },
    'stream.commit': async (_s, a) => {
      await storage.setReaderPosition(
        str(a, 'stream'),
        str(a, 'reader'),
        optInt(a, 'next_seq', 0, Number.MAX_SAFE_INTEGER) ?? 0,
      );
      return {};
    },
  };
  for (const [op, handler] of Object.entries(ops)) commands.set(op, handler);
}
