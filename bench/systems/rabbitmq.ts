/**
 * RabbitMQ through `amqplib`, configured as its pub/sub equivalent: a transient fanout exchange per topic,
 * one non-durable auto-delete exclusive queue per subscriber, no publisher confirms, consumers with
 * noAck. Request/reply uses direct reply-to (`amq.rabbitmq.reply-to`).
 */
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import type { Endpoints, OnPayload, PubSubSystem, ReqRepSystem } from '../types.ts';
import { clientVersion } from '../lib/versions.ts';
import { asBuffer, closeAll, withTimeout } from '../lib/util.ts';

const CLIENT = clientVersion('amqplib');
const REPLY_TO = 'amq.rabbitmq.reply-to';

export async function amqpConnect(url: string, name: string): Promise<ChannelModel> {
  const conn = await amqp.connect(url, { timeout: 2000, clientProperties: { connection_name: name } });
  // Without a listener an 'error' event would kill the process; the failing call reports the error.
  conn.on('error', () => undefined);
  return conn;
}

export const rabbitVersion = (conn: ChannelModel | undefined): string | undefined =>
  conn?.connection.serverProperties.version;

/** Waits for the channel's 'drain' after `publish` returned false (amqplib's write-buffer backpressure). */
export function drained(ch: Channel, limitMs = 30_000): Promise<void> {
  return withTimeout(
    new Promise<void>((resolve) => ch.once('drain', () => resolve())),
    limitMs,
    'amqp drain',
  );
}

export function rabbitPubSub(ep: Endpoints): PubSubSystem {
  const conns: ChannelModel[] = [];
  let pubConn: ChannelModel | undefined;
  let pub: Channel | undefined;
  let blocked = false;
  const exchangeOf = (topic: string): string => `bench.fanout.${topic}`;
  const declare = (ch: Channel, topic: string) =>
    ch.assertExchange(exchangeOf(topic), 'fanout', { durable: false, autoDelete: true });
  return {
    id: 'rabbitmq',
    label: 'RabbitMQ (transient)',
    client: CLIENT,
    notes:
      'fanout exchange, transient auto-delete queues, no confirms, noAck consumers; wait for drain when publish returns false',
    async connectPublisher() {
      pubConn = await amqpConnect(ep.amqpUrl, 'bench-pub');
      conns.push(pubConn);
      pub = await pubConn.createChannel();
    },
    async connectSubscriber(topic: string, onMessage: OnPayload) {
      const conn = await amqpConnect(ep.amqpUrl, 'bench-sub');
      conns.push(conn);
      const ch = await conn.createChannel();
      await declare(ch, topic);
      const q = await ch.assertQueue('', { exclusive: true, autoDelete: true, durable: false });
      await ch.bindQueue(q.queue, exchangeOf(topic), '');
      await ch.consume(q.queue, (msg: ConsumeMessage | null) => msg && onMessage(msg.content), {
        noAck: true,
      });
      // The publisher's channel declares too, so the exchange exists whoever comes first.
      await declare(pub!, topic);
    },
    publish(topic: string, payload: Uint8Array) {
      if (!pub!.publish(exchangeOf(topic), '', asBuffer(payload))) blocked = true;
    },
    async flush() {
      if (!blocked) return;
      blocked = false;
      await drained(pub!);
    },
    serverVersion: () => rabbitVersion(pubConn),
    async close() {
      await closeAll(conns.map((c) => () => c.close()));
    },
  };
}

export function rabbitReqRep(ep: Endpoints): ReqRepSystem {
  const conns: ChannelModel[] = [];
  let requesterConn: ChannelModel | undefined;
  let requester: Channel | undefined;
  const pending = new Map<
    string,
    { resolve: (p: Uint8Array) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  let next = 1;
  return {
    id: 'rabbitmq',
    label: 'RabbitMQ (transient)',
    client: CLIENT,
    notes: 'direct reply-to (amq.rabbitmq.reply-to) + correlationId; transient request queue, noAck',
    async startResponder(topic: string) {
      const conn = await amqpConnect(ep.amqpUrl, 'bench-responder');
      conns.push(conn);
      const ch = await conn.createChannel();
      await ch.assertQueue(topic, { durable: false, autoDelete: true });
      await ch.consume(
        topic,
        (msg: ConsumeMessage | null) => {
          if (!msg?.properties.replyTo) return;
          ch.sendToQueue(msg.properties.replyTo, msg.content, {
            correlationId: msg.properties.correlationId as string,
          });
        },
        { noAck: true },
      );
    },
    async connectRequester() {
      requesterConn = await amqpConnect(ep.amqpUrl, 'bench-requester');
      conns.push(requesterConn);
      requester = await requesterConn.createChannel();
      // Direct reply-to needs the pseudo-queue consumed (noAck) before the first request is sent.
      await requester.consume(
        REPLY_TO,
        (msg: ConsumeMessage | null) => {
          const corr = msg?.properties.correlationId as string | undefined;
          const p = corr === undefined ? undefined : pending.get(corr);
          if (!p || !msg) return;
          pending.delete(corr!);
          clearTimeout(p.timer);
          p.resolve(msg.content);
        },
        { noAck: true },
      );
    },
    request(topic: string, payload: Uint8Array, timeoutMs: number) {
      const corr = String(next++);
      const reply = new Promise<Uint8Array>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(corr);
          reject(new Error(`request timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(corr, { resolve, reject, timer });
      });
      requester!.sendToQueue(topic, asBuffer(payload), { replyTo: REPLY_TO, correlationId: corr });
      return reply;
    },
    serverVersion: () => rabbitVersion(requesterConn),
    async close() {
      for (const p of pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error('closed'));
      }
      pending.clear();
      await closeAll(conns.map((c) => () => c.close()));
    },
  };
}
