/**
 * MQTT through Mosquitto with the `mqtt` npm client, protocol version 5, QoS 0 (at most once: the
 * pub/sub-equivalent). Topics use `/` as MQTT does; the scenario's dots are mapped.
 */
import mqtt, { type IClientPublishOptions, type MqttClient } from 'mqtt';
import type { Endpoints, OnPayload, PubSubSystem, ReqRepSystem } from '../types.ts';
import { clientVersion } from '../lib/versions.ts';
import { asBuffer, closeAll, withTimeout } from '../lib/util.ts';
import { PendingReplies } from '../lib/envelope.ts';

const CLIENT = clientVersion('mqtt');
const toMqtt = (topic: string): string => topic.replaceAll('.', '/');

async function mqttConnect(url: string, name: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, {
    clientId: `${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
    protocolVersion: 5,
    clean: true,
    connectTimeout: 2000,
    reconnectPeriod: 0,
  });
}

/** Mosquitto publishes its version as a retained `$SYS` message. */
async function mosquittoVersion(client: MqttClient): Promise<string | undefined> {
  const topic = '$SYS/broker/version';
  const seen = new Promise<string>((resolve) => {
    const on = (t: string, payload: Buffer): void => {
      if (t !== topic) return;
      client.off('message', on);
      resolve(payload.toString('utf8'));
    };
    client.on('message', on);
  });
  await client.subscribeAsync(topic, { qos: 0 });
  const version = await withTimeout(seen, 500, 'mosquitto version').catch(() => undefined);
  await client.unsubscribeAsync(topic).catch(() => undefined);
  return version;
}

export function mqttPubSub(ep: Endpoints): PubSubSystem {
  let pub: MqttClient | undefined;
  let version: string | undefined;
  const subs: MqttClient[] = [];
  // QoS 0 has no acknowledgement; the client's callback fires once the packet was written to the socket.
  // flush waits until every publish of the batch got its callback.
  let published = 0;
  let written = 0;
  let failure: unknown;
  let waiter: (() => void) | undefined;
  const onWritten = (err?: Error): void => {
    if (err) failure ??= err;
    written++;
    if (written === published && waiter) {
      const w = waiter;
      waiter = undefined;
      w();
    }
  };
  const opts: IClientPublishOptions = { qos: 0 };
  return {
    id: 'mqtt',
    label: 'Mosquitto (MQTT QoS 0)',
    client: CLIENT,
    notes: 'QoS 0, MQTT 5; await the write callback of the batch',
    async connectPublisher() {
      pub = await mqttConnect(ep.mqttUrl, 'bench-pub');
      version = await mosquittoVersion(pub);
    },
    async connectSubscriber(topic: string, onMessage: OnPayload) {
      const c = await mqttConnect(ep.mqttUrl, 'bench-sub');
      subs.push(c);
      c.on('message', (_t: string, payload: Buffer) => onMessage(payload));
      await c.subscribeAsync(toMqtt(topic), { qos: 0 });
    },
    publish(topic: string, payload: Uint8Array) {
      published++;
      pub!.publish(toMqtt(topic), asBuffer(payload), opts, onWritten);
    },
    async flush() {
      if (written < published) {
        await withTimeout(new Promise<void>((resolve) => (waiter = resolve)), 30_000, 'mqtt flush');
      }
      if (failure !== undefined) throw failure;
    },
    serverVersion: () => version,
    async close() {
      await closeAll([...subs, ...(pub ? [pub] : [])].map((c) => () => c.endAsync()));
    },
  };
}

export function mqttReqRep(ep: Endpoints): ReqRepSystem {
  const clients: MqttClient[] = [];
  let requester: MqttClient | undefined;
  let version: string | undefined;
  const pending = new PendingReplies();
  const replyTopic = `bench/reply/${process.pid}/${Math.random().toString(36).slice(2, 8)}`;
  return {
    id: 'mqtt',
    label: 'Mosquitto (MQTT QoS 0)',
    client: CLIENT,
    notes: 'MQTT 5 request/response: response topic + correlation data properties, QoS 0',
    async startResponder(topic: string) {
      const c = await mqttConnect(ep.mqttUrl, 'bench-responder');
      clients.push(c);
      c.on('message', (_t, payload, packet) => {
        const responseTopic = packet.properties?.responseTopic;
        if (!responseTopic) return;
        c.publish(responseTopic, payload, {
          qos: 0,
          properties: { correlationData: packet.properties?.correlationData },
        });
      });
      await c.subscribeAsync(toMqtt(topic), { qos: 0 });
    },
    async connectRequester() {
      requester = await mqttConnect(ep.mqttUrl, 'bench-requester');
      clients.push(requester);
      version = await mosquittoVersion(requester);
      requester.on('message', (_t, payload, packet) => {
        const corr = packet.properties?.correlationData;
        if (corr && corr.length === 4) pending.settle(corr.readUInt32BE(0), payload);
      });
      await requester.subscribeAsync(replyTopic, { qos: 0 });
    },
    async request(topic: string, payload: Uint8Array, timeoutMs: number) {
      const { corr, reply } = pending.open(timeoutMs);
      const correlationData = Buffer.allocUnsafe(4);
      correlationData.writeUInt32BE(corr, 0);
      requester!.publish(toMqtt(topic), asBuffer(payload), {
        qos: 0,
        properties: { responseTopic: replyTopic, correlationData },
      });
      return reply;
    },
    serverVersion: () => version,
    async close() {
      pending.rejectAll(new Error('closed'));
      await closeAll(clients.map((c) => () => c.endAsync()));
    },
  };
}
