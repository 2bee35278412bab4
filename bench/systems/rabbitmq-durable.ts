/**
 * RabbitMQ durable queue through `amqplib`: a durable classic queue, persistent messages (deliveryMode 2),
 * publisher confirms on a ConfirmChannel (the scenario keeps a window of outstanding confirms), a
 * consumer with prefetch 100 and manual acks, producer and consumer on separate connections.
 */
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { DurableSystem, Endpoints, OnPayload } from '../types.ts';
import { clientVersion } from '../lib/versions.ts';
import { asBuffer, closeAll, runTag } from '../lib/util.ts';
import { amqpConnect, rabbitVersion } from './rabbitmq.ts';

const PREFETCH = 100;

export function rabbitDurable(ep: Endpoints): DurableSystem {
  const queue = `bench.durable.${runTag()}`;
  let producerConn: ChannelModel | undefined;
  let consumerConn: ChannelModel | undefined;
  let producer: ConfirmChannel | undefined;
  let consumer: Channel | undefined;
  return {
    id: 'rabbitmq',
    label: 'RabbitMQ durable queue',
    client: clientVersion('amqplib'),
    notes: `durable classic queue, deliveryMode 2, ConfirmChannel, prefetch ${PREFETCH}, manual ack`,
    fsync: 'confirm only after the message is fsynced (RabbitMQ groups fsyncs of concurrent messages)',
    async setup() {
      producerConn = await amqpConnect(ep.amqpUrl, 'bench-durable-producer');
      consumerConn = await amqpConnect(ep.amqpUrl, 'bench-durable-consumer');
      producer = await producerConn.createConfirmChannel();
      consumer = await consumerConn.createChannel();
      await producer.assertQueue(queue, { durable: true, autoDelete: false });
      await consumer.prefetch(PREFETCH);
    },
    async startConsumer(onAcked: OnPayload) {
      const ch = consumer!;
      await ch.consume(
        queue,
        (msg: ConsumeMessage | null) => {
          if (!msg) return;
          ch.ack(msg);
          onAcked(msg.content);
        },
        { noAck: false },
      );
    },
    publish(payload: Uint8Array) {
      return new Promise<void>((resolve, reject) => {
        // The window in the scenario bounds amqplib's buffer, so publish's `false` needs no extra wait.
        producer!.sendToQueue(queue, asBuffer(payload), { persistent: true }, (err: unknown) =>
          err ? reject(err instanceof Error ? err : new Error(`nack: ${String(err)}`)) : resolve(),
        );
      });
    },
    serverVersion: () => rabbitVersion(producerConn),
    async close() {
      if (producer) await producer.deleteQueue(queue).catch(() => undefined);
      await closeAll([producerConn, consumerConn].filter((c) => c !== undefined).map((c) => () => c.close()));
    },
  };
}
