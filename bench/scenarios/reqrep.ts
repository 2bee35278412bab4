/**
 * Request/reply latency: one responder echoing the payload, one requester sending sequential requests
 * (the next one only after the previous reply), each on its own connection in this process.
 */
import type { ReqRepSystem } from '../types.ts';
import type { Measurement } from './measurement.ts';
import { now, runTag } from '../lib/util.ts';
import { summarize } from '../lib/stats.ts';

export interface ReqRepParams {
  requests: number;
  warmup: number;
  size: number;
  timeoutMs: number;
  /** The measured loop stops early after this long; the run then reports what it has. */
  limitMs: number;
}

export async function runReqRep(sys: ReqRepSystem, p: ReqRepParams): Promise<Measurement> {
  const topic = `bench.rr.${runTag()}`;
  const payload = Buffer.alloc(Math.max(1, p.size), 0x62);
  try {
    await sys.startResponder(topic);
    await sys.connectRequester();

    // The first request may race the responder's subscription on servers that confirm it late: retry a few
    // times with a short timeout before declaring the system broken.
    let firstError: unknown;
    for (let attempt = 0; attempt < 10; attempt++) {
      try {
        const reply = await sys.request(topic, payload, 500);
        if (reply.length !== payload.length)
          throw new Error(`echo has ${reply.length} bytes, sent ${payload.length}`);
        firstError = undefined;
        break;
      } catch (err) {
        firstError = err;
      }
    }
    if (firstError !== undefined) throw firstError;

    for (let i = 0; i < p.warmup; i++) await sys.request(topic, payload, p.timeoutMs);

    const samples: number[] = [];
    const start = now();
    for (let i = 0; i < p.requests; i++) {
      const t = now();
      await sys.request(topic, payload, p.timeoutMs);
      samples.push((now() - t) * 1000);
      if (now() - start > p.limitMs) break;
    }
    const s = summarize(samples);
    return { value: s.p50, p99: s.p99, mean: s.mean, detail: { requests: s.count, maxUs: s.max } };
  } finally {
    await sys.close();
  }
}
