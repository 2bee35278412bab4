/** Redis pub/sub (PUBLISH / SUBSCRIBE) through `ioredis`, one connection per publisher and subscriber. */
import { Redis } from 'ioredis';
import type { Endpoints, OnPayload, PubSubSystem, ReqRepSystem } from '../types.ts';
import { clientVersion } from '../lib/versions.ts';
import { asBuffer, closeAll } from '../lib/util.ts';
import { PendingReplies, unwrapReply, unwrapRequest, wrapReply, wrapRequest } from '../lib/envelope.ts';

const CLIENT = clientVersion('ioredis');

/** A connection that fails fast instead of retrying forever: a benchmark must report "skipped", not hang. */
export async function redisConnect(url: string, name: string): Promise<Redis> {
  const r = new Redis(url, {
    lazyConnect: true,
    connectionName: name,
    connectTimeout: 2000,
    maxRetriesPerRequest: 1,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  // ioredis emits 'error' on a lost connection; the awaited command reports it, so only keep the event quiet.
  r.on('error', () => undefined);
  await r.connect();
  return r;
}

export async function redisVersion(r: Redis): Promise<string | undefined> {
  const info = await r.info('server');
  return /redis_version:(\S+)/.exec(info)?.[1];
}

export function redisPubSub(ep: Endpoints): PubSubSystem {
  let pub: Redis | undefined;
  let version: string | undefined;
  const subs: Redis[] = [];
  // ioredis pipelines on its own: each PUBLISH is written at once without waiting for the previous reply.
  // The batch's backpressure point is the reply to its last PUBLISH (Redis answers in order).
  let last: Promise<unknown> = Promise.resolve();
  let failure: unknown;
  return {
    id: 'redis',
    label: 'Redis pub/sub',
    client: CLIENT,
    notes: 'PUBLISH pipelined by ioredis; await the reply to the batch’s last PUBLISH',
    async connectPublisher() {
      pub = await redisConnect(ep.redisUrl, 'bench-pub');
      version = await redisVersion(pub);
    },
    async connectSubscriber(topic: string, onMessage: OnPayload) {
      const r = await redisConnect(ep.redisUrl, 'bench-sub');
      subs.push(r);
      r.on('messageBuffer', (_channel: Buffer, message: Buffer) => onMessage(message));
      await r.subscribe(topic);
    },
    publish(topic: string, payload: Uint8Array) {
      const p = pub!.publish(topic, asBuffer(payload));
      // Only the batch's last reply is awaited; an earlier failure is kept and reported by flush.
      p.catch((err: unknown) => (failure ??= err));
      last = p;
    },
    async flush() {
      await last;
      if (failure !== undefined) throw failure;
    },
    serverVersion: () => version,
    async close() {
      await closeAll([...subs, ...(pub ? [pub] : [])].map((r) => () => r.quit()));
    },
  };
}

export function redisReqRep(ep: Endpoints): ReqRepSystem {
  const conns: Redis[] = [];
  let requesterPub: Redis | undefined;
  let version: string | undefined;
  const pending = new PendingReplies();
  const replyTopic = `bench.reply.${process.pid}.${Math.random().toString(36).slice(2, 8)}`;
  return {
    id: 'redis',
    label: 'Redis pub/sub',
    client: CLIENT,
    notes: 'hand-made over PUBLISH/SUBSCRIBE: reply channel + correlation id in the payload',
    async startResponder(topic: string) {
      const sub = await redisConnect(ep.redisUrl, 'bench-responder-sub');
      const pub = await redisConnect(ep.redisUrl, 'bench-responder-pub');
      conns.push(sub, pub);
      sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
        const req = unwrapRequest(message);
        pub.publish(req.reply, wrapReply(req.corr, req.payload)).catch(() => undefined);
      });
      await sub.subscribe(topic);
    },
    async connectRequester() {
      const sub = await redisConnect(ep.redisUrl, 'bench-requester-sub');
      requesterPub = await redisConnect(ep.redisUrl, 'bench-requester-pub');
      conns.push(sub, requesterPub);
      version = await redisVersion(requesterPub);
      sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
        const rep = unwrapReply(message);
        pending.settle(rep.corr, rep.payload);
      });
      await sub.subscribe(replyTopic);
    },
    async request(topic: string, payload: Uint8Array, timeoutMs: number) {
      const { corr, reply } = pending.open(timeoutMs);
      // A failed PUBLISH surfaces as this request's timeout; the connection error is reported by close.
      requesterPub!.publish(topic, wrapRequest(corr, replyTopic, payload)).catch(() => undefined);
      return reply;
    },
    serverVersion: () => version,
    async close() {
      pending.rejectAll(new Error('closed'));
      await closeAll(conns.map((r) => () => r.quit()));
    },
  };
}
