/**
 * Durable queue, 1 producer → 1 consumer running at the same time: persistent messages, every publish
 * confirmed by the server (a window of outstanding confirms), every delivery acked by the consumer.
 * Throughput = acked messages / time from the first measured publish to the last ack.
 */
import type { DurableSystem } from '../types.ts';
import type { Measurement } from './measurement.ts';
import { now, waitForCount, Window } from '../lib/util.ts';

export interface DurableParams {
  messages: number;
  size: number;
  warmup: number;
  /** Outstanding unconfirmed publishes allowed. */
  window: number;
  publishLimitMs: number;
  idleMs: number;
}

function payloadOf(size: number, phase: 0 | 1): Buffer {
  const b = Buffer.alloc(Math.max(1, size), 0x63);
  b[0] = phase;
  return b;
}

async function publishAll(
  sys: DurableSystem,
  payload: Buffer,
  count: number,
  window: number,
  limitMs: number,
): Promise<number> {
  const w = new Window(window);
  const start = now();
  let sent = 0;
  for (; sent < count; sent++) {
    await w.acquire();
    w.run(() => sys.publish(payload));
    if ((sent & 255) === 0 && now() - start > limitMs) {
      sent++;
      break;
    }
  }
  await w.drain(60_000);
  return sent;
}

export async function runDurable(sys: DurableSystem, p: DurableParams): Promise<Measurement> {
  let warm = 0;
  let acked = 0;
  let lastAck = 0;
  try {
    await sys.setup();
    await sys.startConsumer((payload) => {
      if (payload[0] === 1) {
        acked++;
        lastAck = now();
      } else warm++;
    });

    await publishAll(sys, payloadOf(p.size, 0), p.warmup, p.window, p.publishLimitMs);
    await waitForCount(() => warm, p.warmup, p.idleMs, 30_000);

    const t0 = now();
    const sent = await publishAll(sys, payloadOf(p.size, 1), p.messages, p.window, p.publishLimitMs);
    const tConfirmed = now();
    await waitForCount(() => acked, sent, p.idleMs, 60_000);
    if (acked === 0) throw new Error('no measured message was consumed');
    const seconds = (lastAck - t0) / 1000;
    return {
      value: acked / seconds,
      delivered: Math.min(1, acked / sent),
      detail: { sent, acked, seconds, confirmedRate: sent / ((tConfirmed - t0) / 1000) },
    };
  } finally {
    await sys.close();
  }
}
