/**
 * NATS JetStream through the `nats` npm client: a work-queue stream with file storage, `js.publish`
 * awaited for its PubAck (the scenario keeps a window of outstanding publishes), a durable pull consumer
 * with explicit acks, producer and consumer on separate connections.
 */
import { AckPolicy, RetentionPolicy, StorageType, type ConsumerMessages, type NatsConnection } from 'nats';
import type { DurableSystem, Endpoints, OnPayload } from '../types.ts';
import { clientVersion } from '../lib/versions.ts';
import { closeAll, runTag } from '../lib/util.ts';
import { natsConnect } from './nats.ts';

const PULL_BATCH = 100;

export function jetstreamDurable(ep: Endpoints): DurableSystem {
  const tag = runTag();
  const stream = `BENCH_${tag}`;
  const subject = `bench.js.${tag}`;
  const durable = 'bench';
  let producerConn: NatsConnection | undefined;
  let consumerConn: NatsConnection | undefined;
  let messages: ConsumerMessages | undefined;
  let version: string | undefined;
  return {
    id: 'jetstream',
    label: 'NATS JetStream',
    client: clientVersion('nats'),
    notes: `work-queue stream, file storage, js.publish awaited (PubAck), durable pull consumer (batch ${PULL_BATCH}), explicit ack`,
    fsync:
      'acks after the write reaches the OS page cache; the filestore fsyncs every 2 min (its default; nats-server 2.9 has no sync_always option)',
    async setup() {
      producerConn = await natsConnect(ep.natsUrl, 'bench-js-producer');
      consumerConn = await natsConnect(ep.natsUrl, 'bench-js-consumer');
      version = producerConn.info?.version;
      const jsm = await producerConn.jetstreamManager({ timeout: 5000 });
      await jsm.streams.add({
        name: stream,
        subjects: [subject],
        storage: StorageType.File,
        retention: RetentionPolicy.Workqueue,
        num_replicas: 1,
      });
      await jsm.consumers.add(stream, { durable_name: durable, ack_policy: AckPolicy.Explicit });
    },
    async startConsumer(onAcked: OnPayload) {
      const consumer = await consumerConn!.jetstream().consumers.get(stream, durable);
      messages = await consumer.consume({
        max_messages: PULL_BATCH,
        callback: (m) => {
          m.ack();
          onAcked(m.data);
        },
      });
    },
    async publish(payload: Uint8Array) {
      await producerConn!.jetstream().publish(subject, payload);
    },
    serverVersion: () => version,
    async close() {
      messages?.stop();
      if (producerConn && !producerConn.isClosed()) {
        const jsm = await producerConn.jetstreamManager().catch(() => undefined);
        await jsm?.streams.delete(stream).catch(() => undefined);
      }
      await closeAll([producerConn, consumerConn].filter((c) => c !== undefined).map((c) => () => c.close()));
    },
  };
}
