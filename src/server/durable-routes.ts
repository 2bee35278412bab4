/**
 * REST routes for durable queues, dead letters and streams (docs/http-api.md). They reuse the argument
 * checks of the CMD operations, so both front doors accept and refuse the same things.
 */
import { randomBytes } from 'node:crypto';
import type { Broker } from '../core/broker.ts';
import type { DurableMessaging } from '../core/durable.ts';
import { storedMessageToJson } from '../core/durable.ts';
import { MessagingError } from '../protocol/index.ts';
import {
  deliveryToJson,
  optInt,
  queueSpecFromArgs,
  str,
  streamItemToJson,
  streamSpecFromArgs,
  resolveStreamStart,
} from './durable-commands.ts';
import { metaFromBody, payloadFromBody, type HttpApi } from './http-api.ts';

/** `earliest`, `latest`, `last`, `seq:N` or a bare number, `time:MS` or an ISO time, `reader:NAME`. */
function startFromQuery(value: string | null): unknown {
  if (value === null || value === '') return 'earliest';
  if (value === 'earliest' || value === 'latest' || value === 'last') return value;
  if (/^\d+$/.test(value)) return { seq: Number(value) };
  const [kind, rest = ''] = value.split(/:(.*)/s);
  if (kind === 'seq') return { seq: Number(rest) };
  if (kind === 'reader') return { reader: rest };
  if (kind === 'time') return { time: /^\d+$/.test(rest) ? Number(rest) : Date.parse(rest) };
  const time = Date.parse(value);
  if (!Number.isNaN(time)) return { time };
  throw new MessagingError(
    'BAD_REQUEST',
    `from=${value}: use earliest, latest, last, seq:N, time:MS or an ISO time, reader:NAME`,
  );
}

function queryInt(req: { query: URLSearchParams }, key: string): number | undefined {
  const v = req.query.get(key);
  if (v === null) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new MessagingError('BAD_REQUEST', `${key} must be an integer`);
  return n;
}

export function registerDurableRoutes(api: HttpApi, broker: Broker, durable: DurableMessaging): void {
  const storage = durable.storage;

  // Queues
  api.route('POST', '/v1/queues', async (req) => ({
    status: 201,
    body: await durable.declareQueue(queueSpecFromArgs(req.body)),
  }));
  api.route('GET', '/v1/queues', async () => ({
    body: { queues: await Promise.all((await storage.listQueues()).map((q) => durable.queueInfo(q.name))) },
  }));
  api.route('GET', '/v1/queues/{name}', async (req) => ({ body: await durable.queueInfo(req.params.name!) }));
  api.route('DELETE', '/v1/queues/{name}', async (req) => {
    await durable.deleteQueue(req.params.name!);
    return { status: 204, body: {} };
  });
  api.route('POST', '/v1/queues/{name}/purge', async (req) => ({
    body: { purged: await storage.purgeQueue(req.params.name!) },
  }));

  api.route('POST', '/v1/queues/{name}/messages', async (req) => {
    const result = broker.publishToQueue(req.params.name!, {
      topic: typeof req.body.topic === 'string' ? req.body.topic : req.params.name!,
      payload: payloadFromBody(req.body),
      meta: metaFromBody(req.body),
    });
    const stored = await result.stored!;
    return { status: 201, body: { id: stored.id, queue: req.params.name } };
  });

  api.route('POST', '/v1/queues/{name}/pull', async (req) => {
    const consumer =
      typeof req.body.consumer === 'string' && req.body.consumer
        ? req.body.consumer
        : `http-${randomBytes(12).toString('hex')}`;
    const max = optInt(req.body, 'max', 1, 1000) ?? 1;
    const deliveries = await durable.pull(req.params.name!, consumer, max);
    return { body: { consumer, messages: deliveries.map(deliveryToJson) } };
  });
  api.route('POST', '/v1/queues/{name}/ack', async (req) => {
    const ids = Array.isArray(req.body.delivery_ids)
      ? req.body.delivery_ids.map(String)
      : [str(req.body, 'delivery_id')];
    return { body: { acked: await durable.ack(req.params.name!, str(req.body, 'consumer'), ids) } };
  });
  api.route('POST', '/v1/queues/{name}/nack', async (req) => {
    const delay = optInt(req.body, 'delay_ms', 0, Number.MAX_SAFE_INTEGER);
    await durable.nack(req.params.name!, str(req.body, 'consumer'), str(req.body, 'delivery_id'), {
      requeue: req.body.requeue !== false,
      ...(delay !== undefined ? { delay_ms: delay } : {}),
      ...(typeof req.body.error === 'string' ? { error: req.body.error } : {}),
    });
    return { body: {} };
  });

  // Dead letters
  api.route('GET', '/v1/queues/{name}/dead-letters', async (req) => ({
    body: {
      dead_letters: (
        await storage.listDeadLetters(req.params.name!, {
          limit: queryInt(req, 'limit') ?? 100,
          offset: queryInt(req, 'offset') ?? 0,
        })
      ).map((d) => ({ ...d, message: storedMessageToJson(d.message) })),
    },
  }));
  api.route('POST', '/v1/queues/{name}/dead-letters/replay', async (req) => {
    const ids = Array.isArray(req.body.ids) ? req.body.ids.map(String) : undefined;
    const replayed = await storage.replayDeadLetters(req.params.name!, ids);
    durable.wake(req.params.name!);
    return { body: { replayed } };
  });
  api.route('DELETE', '/v1/queues/{name}/dead-letters', async (req) => {
    const olderThanMs = queryInt(req, 'older_than_ms');
    return {
      body: {
        purged: await storage.purgeDeadLetters(
          req.params.name!,
          olderThanMs === undefined ? {} : { olderThanMs },
        ),
      },
    };
  });

  // Streams
  api.route('POST', '/v1/streams', async (req) => ({
    status: 201,
    body: await durable.declareStream(streamSpecFromArgs(req.body)),
  }));
  api.route('GET', '/v1/streams', async () => ({ body: { streams: await storage.listStreams() } }));
  api.route('GET', '/v1/streams/{name}', async (req) => ({
    body: await storage.getStream(req.params.name!),
  }));
  api.route('DELETE', '/v1/streams/{name}', async (req) => {
    await durable.deleteStream(req.params.name!);
    return { status: 204, body: {} };
  });
  api.route('GET', '/v1/streams/{name}/messages', async (req) => {
    const stream = req.params.name!;
    const reader = req.query.get('reader');
    const fromQuery = req.query.get('from');
    const from = fromQuery === null && reader ? { reader } : startFromQuery(fromQuery);
    const result = await storage.streamRead(stream, {
      from: await resolveStreamStart(storage, stream, from),
      max: Math.min(queryInt(req, 'max') ?? 100, 10_000),
    });
    if (reader) await storage.setReaderPosition(stream, reader, result.next_seq);
    return { body: { ...result, messages: result.messages.map(streamItemToJson) } };
  });
}
