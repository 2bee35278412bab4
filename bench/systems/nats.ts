/** NATS core (at-most-once pub/sub and request/reply) through the `nats` npm client. */
import { connect, type NatsConnection } from 'nats';
import type { Endpoints, OnPayload, PubSubSystem, ReqRepSystem } from '../types.ts';
import { clientVersion } from '../lib/versions.ts';
import { closeAll } from '../lib/util.ts';

const CLIENT = clientVersion('nats');

export function natsConnect(url: string, name: string): Promise<NatsConnection> {
  // No reconnect: a benchmark connection that drops must fail the run, not retry silently.
  return connect({ servers: url, name, timeout: 2000, reconnect: false, maxReconnectAttempts: 0 });
}

export function natsPubSub(ep: Endpoints): PubSubSystem {
  let pub: NatsConnection | undefined;
  let version: string | undefined;
  const subs: NatsConnection[] = [];
  return {
    id: 'nats',
    label: 'NATS core',
    client: CLIENT,
    notes: 'nc.publish; await nc.flush() (PING/PONG) every batch',
    async connectPublisher() {
      pub = await natsConnect(ep.natsUrl, 'bench-pub');
      version = pub.info?.version;
    },
    async connectSubscriber(topic: string, onMessage: OnPayload) {
      const nc = await natsConnect(ep.natsUrl, 'bench-sub');
      subs.push(nc);
      nc.subscribe(topic, { callback: (_err, msg) => onMessage(msg.data) });
      // The SUB is on the wire once flush's PONG arrives.
      await nc.flush();
    },
    publish(topic: string, payload: Uint8Array) {
      pub!.publish(topic, payload);
    },
    flush() {
      return pub!.flush();
    },
    serverVersion: () => version,
    async close() {
      await closeAll([...subs, ...(pub ? [pub] : [])].map((nc) => () => nc.close()));
    },
  };
}

export function natsReqRep(ep: Endpoints): ReqRepSystem {
  let responder: NatsConnection | undefined;
  let requester: NatsConnection | undefined;
  let version: string | undefined;
  return {
    id: 'nats',
    label: 'NATS core',
    client: CLIENT,
    notes: 'nc.request (muxed inbox); responder msg.respond',
    async startResponder(topic: string) {
      responder = await natsConnect(ep.natsUrl, 'bench-responder');
      responder.subscribe(topic, { callback: (_err, msg) => void msg.respond(msg.data) });
      await responder.flush();
    },
    async connectRequester() {
      requester = await natsConnect(ep.natsUrl, 'bench-requester');
      version = requester.info?.version;
    },
    async request(topic: string, payload: Uint8Array, timeoutMs: number) {
      const reply = await requester!.request(topic, payload, { timeout: timeoutMs });
      return reply.data;
    },
    serverVersion: () => version,
    async close() {
      await closeAll([responder, requester].filter((c) => c !== undefined).map((nc) => () => nc.close()));
    },
  };
}
