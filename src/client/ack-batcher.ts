/**
 * Batches queue acknowledgements: every `ack` issued in one turn of the event loop leaves as one
 * `queue.ack {queue, delivery_ids}` per queue, yet each ack keeps its own promise.
 *
 * Why a macrotask and not a microtask: a `for await` loop over a consumer takes each buffered message in
 * its own microtask, so a microtask flush would send one CMD per message — exactly the per-message
 * round trip batching is meant to remove. `setImmediate` (a zero timeout in browsers) runs after the
 * whole socket read has been handled.
 */
import { MessagingError } from '../protocol/index.ts';

/** Ids per `queue.ack`: keeps one CMD frame small however far a consumer has fallen behind. */
export const MAX_ACK_BATCH = 1000;

type Send = (args: Record<string, unknown>) => Promise<Record<string, unknown>>;

interface PendingAck {
  id: string;
  resolve: () => void;
  reject: (error: MessagingError) => void;
}

const schedule: (fn: () => void) => void =
  typeof globalThis.setImmediate === 'function'
    ? (fn) => void globalThis.setImmediate(fn)
    : (fn) => void setTimeout(fn, 0);

function toMessagingError(err: unknown): MessagingError {
  return err instanceof MessagingError
    ? err
    : new MessagingError('INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
}

export class AckBatcher {
  private byQueue = new Map<string, PendingAck[]>();
  private scheduled = false;

  /** `send` issues one `queue.ack` command with the given arguments. */
  constructor(private readonly send: Send) {}

  /** Acks waiting for the next flush. */
  get size(): number {
    let n = 0;
    for (const list of this.byQueue.values()) n += list.length;
    return n;
  }

  ack(queue: string, deliveryId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      let list = this.byQueue.get(queue);
      if (!list) this.byQueue.set(queue, (list = []));
      list.push({ id: deliveryId, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        schedule(() => this.flush());
      }
    });
  }

  /** Sends everything queued now (also called before a drain or close, so no ack is left behind). */
  flush(): void {
    this.scheduled = false;
    if (this.byQueue.size === 0) return;
    const batches = this.byQueue;
    this.byQueue = new Map();
    for (const [queue, list] of batches) {
      for (let i = 0; i < list.length; i += MAX_ACK_BATCH) {
        void this.sendBatch(queue, list.slice(i, i + MAX_ACK_BATCH));
      }
    }
  }

  private async sendBatch(queue: string, list: PendingAck[]): Promise<void> {
    // The same delivery twice in one batch: the second is a double ack, answered here as the server
    // would, so the batch itself stays valid.
    const seen = new Set<string>();
    const unique: PendingAck[] = [];
    for (const a of list) {
      if (seen.has(a.id)) {
        a.reject(
          new MessagingError('UNKNOWN_DELIVERY', `delivery '${a.id}' of queue '${queue}' was acked twice`),
        );
      } else {
        seen.add(a.id);
        unique.push(a);
      }
    }
    if (unique.length === 1) return this.sendOne(queue, unique[0]!);
    try {
      await this.send({ queue, delivery_ids: unique.map((a) => a.id) });
      for (const a of unique) a.resolve();
    } catch (err) {
      const error = toMessagingError(err);
      if (error.code !== 'UNKNOWN_DELIVERY') {
        for (const a of unique) a.reject(error);
        return;
      }
      const unknown = error.details?.['unknown'];
      if (Array.isArray(unknown)) {
        // The server settles each id on its own: it acked the rest and named the ones it could not.
        const bad = new Set(unknown.map(String));
        for (const a of unique) {
          if (!bad.has(a.id)) a.resolve();
          else
            a.reject(
              new MessagingError(
                'UNKNOWN_DELIVERY',
                `delivery '${a.id}' of queue '${queue}' is unknown, settled, or not held by this consumer`,
              ),
            );
        }
        return;
      }
      // A server that does not name them (older ones) applied the batch all or nothing: ack one by one
      // to learn which failed.
      await Promise.all(unique.map((a) => this.sendOne(queue, a)));
    }
  }

  private async sendOne(queue: string, a: PendingAck): Promise<void> {
    try {
      await this.send({ queue, delivery_id: a.id });
      a.resolve();
    } catch (err) {
      a.reject(toMessagingError(err));
    }
  }
}
