/**
 * Pub/sub throughput: one publisher, `subscribers` subscribers on the same topic, each on its own
 * connection, all in this process. Throughput = messages received by all subscribers together / time from
 * the first measured publish to the last measured receipt.
 */
import type { PubSubSystem } from '../types.ts';
import type { Measurement } from './measurement.ts';
import { now, runTag, sleep, waitForCount, yieldToLoop } from '../lib/util.ts';

export interface PubSubParams {
  subscribers: number;
  messages: number;
  size: number;
  /** Publishes between two `flush()` calls (the client's backpressure point). */
  batch: number;
  /** Warm-up messages per round, published and received before timing starts. */
  warmup: number;
  /** The publish loop stops early after this long; the run then counts what was sent. */
  publishLimitMs: number;
  /** Hard end of the measured phase (publishing + receiving), counted from the first publish. A system
   * whose publisher runs far ahead of its subscribers is then measured by what arrived until this point. */
  measureLimitMs: number;
  /** Give up waiting for the remaining messages after this long without a receipt. */
  idleMs: number;
}

// The first payload byte tells warm-up/probe messages (0) from measured ones (1), so late warm-up
// messages never count. Two distinct buffers: some clients keep a reference until the bytes are written.
function payloadOf(size: number, phase: 0 | 1): Buffer {
  const b = Buffer.alloc(Math.max(1, size), 0x61);
  b[0] = phase;
  return b;
}

async function publishBatch(
  sys: PubSubSystem,
  topic: string,
  payload: Buffer,
  count: number,
  batch: number,
  limitMs: number,
): Promise<number> {
  const start = now();
  let sent = 0;
  while (sent < count) {
    const n = Math.min(batch, count - sent);
    for (let i = 0; i < n; i++) sys.publish(topic, payload);
    sent += n;
    await sys.flush();
    await yieldToLoop();
    if (now() - start > limitMs) break;
  }
  return sent;
}

export async function runPubSub(sys: PubSubSystem, p: PubSubParams): Promise<Measurement> {
  const topic = `bench.ps.${runTag()}`;
  const warm = new Array<number>(p.subscribers).fill(0);
  let received = 0;
  let lastReceipt = 0;
  try {
    await sys.connectPublisher();
    for (let s = 0; s < p.subscribers; s++) {
      await sys.connectSubscriber(topic, (payload) => {
        if (payload[0] === 1) {
          received++;
          lastReceipt = now();
        } else warm[s]!++;
      });
    }

    // Readiness: a subscription may take effect after its confirm on some servers, so probe until every
    // subscriber has seen a message (bounded).
    const probe = payloadOf(p.size, 0);
    const probeDeadline = now() + 5000;
    while (warm.some((c) => c === 0)) {
      if (now() > probeDeadline) throw new Error('subscribers received no probe message within 5 s');
      sys.publish(topic, probe);
      await sys.flush();
      await sleep(20);
    }

    const base = warm.reduce((a, b) => a + b, 0);
    await publishBatch(sys, topic, probe, p.warmup, p.batch, p.publishLimitMs);
    await waitForCount(() => warm.reduce((a, b) => a + b, 0) - base, p.warmup * p.subscribers, 1000, 15_000);

    const payload = payloadOf(p.size, 1);
    const t0 = now();
    const sent = await publishBatch(sys, topic, payload, p.messages, p.batch, p.publishLimitMs);
    const tPublished = now();
    const expected = sent * p.subscribers;
    const remaining = Math.max(p.idleMs, p.measureLimitMs - (now() - t0));
    await waitForCount(() => received, expected, p.idleMs, remaining);
    // Snapshot now: messages still arriving after the cut must not change the numbers.
    const got = received;
    const last = lastReceipt;
    if (got === 0) throw new Error('no measured message was delivered');
    // Cut while messages were still arriving (not lost: queued): the delivered fraction is unknown.
    const cut = got < expected && now() - last < p.idleMs;
    const seconds = (last - t0) / 1000;
    const m: Measurement = {
      value: got / seconds,
      detail: {
        sent,
        expected,
        received: got,
        seconds,
        publishRate: sent / ((tPublished - t0) / 1000),
        cut: cut ? 1 : 0,
      },
    };
    if (!cut) m.delivered = got / expected;
    return m;
  } finally {
    await sys.close();
  }
}
