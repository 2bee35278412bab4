/**
 * messaging-system through our own SDK (`src/client/`), against our server started by the harness as a
 * child process (the rivals are separate processes too). Same method as nats.ts: publish, then
 * `flush()` (a PING/PONG round trip) every batch.
 */
import { connect, type Connection } from '../../src/client/index.ts';
import type { Endpoints, OnPayload, PubSubSystem, ReqRepSystem } from '../types.ts';
import { closeAll, UnavailableError } from '../lib/util.ts';

const CLIENT = 'src/client (this repo)';

async function oursConnect(ep: Endpoints, name: string): Promise<Connection> {
  if (!ep.oursUrl) throw new UnavailableError(ep.oursUnavailable ?? 'our server is not running');
  // No reconnect: a benchmark connection that drops must fail the run, not retry silently.
  return connect({ servers: ep.oursUrl, name, reconnect: false, timeoutMs: 2000 });
}

export function oursPubSub(ep: Endpoints): PubSubSystem {
  let pub: Connection | undefined;
  let version: string | undefined;
  const subs: Connection[] = [];
  return {
    id: 'ours',
    label: 'messaging-system',
    client: CLIENT,
    notes: 'nc.publish; await nc.flush() (PING/PONG) every batch',
    async connectPublisher() {
      pub = await oursConnect(ep, 'bench-pub');
      version = pub.info.server_version;
    },
    async connectSubscriber(topic: string, onMessage: OnPayload) {
      const nc = await oursConnect(ep, 'bench-sub');
      subs.push(nc);
      const sub = nc.subscribe(topic, { callback: (msg) => onMessage(msg.payload) });
      await sub.ready();
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

export function oursReqRep(ep: Endpoints): ReqRepSystem {
  let responder: Connection | undefined;
  let requester: Connection | undefined;
  let version: string | undefined;
  return {
    id: 'ours',
    label: 'messaging-system',
    client: CLIENT,
    notes: 'nc.request (per-connection inbox); responder msg.respond',
    async startResponder(topic: string) {
      responder = await oursConnect(ep, 'bench-responder');
      const sub = responder.subscribe(topic, { callback: (msg) => void msg.respond(msg.payload) });
      await sub.ready();
    },
    async connectRequester() {
      requester = await oursConnect(ep, 'bench-requester');
      version = requester.info.server_version;
    },
    async request(topic: string, payload: Uint8Array, timeoutMs: number) {
      const reply = await requester!.request(topic, payload, { timeoutMs });
      return reply.payload;
    },
    serverVersion: () => version,
    async close() {
      await closeAll([responder, requester].filter((c) => c !== undefined).map((nc) => () => nc.close()));
    },
  };
}
