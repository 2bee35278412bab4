/**
 * Request/reply over plain pub/sub for systems without a native request primitive (Redis): the request
 * carries the requester's reply topic and a correlation number in front of the payload, the way an
 * application would do it by hand.
 *
 *   | corr: u32 | replyLen: u8 | reply topic (UTF-8) | payload |
 */
const enc = new TextEncoder();
const dec = new TextDecoder();

export function wrapRequest(corr: number, reply: string, payload: Uint8Array): Buffer {
  const topic = enc.encode(reply);
  if (topic.length > 255) throw new Error('reply topic too long for the envelope');
  const out = Buffer.allocUnsafe(5 + topic.length + payload.length);
  out.writeUInt32BE(corr, 0);
  out[4] = topic.length;
  out.set(topic, 5);
  out.set(payload, 5 + topic.length);
  return out;
}

export function unwrapRequest(buf: Uint8Array): { corr: number; reply: string; payload: Uint8Array } {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const len = view[4] ?? 0;
  return {
    corr: view.readUInt32BE(0),
    reply: dec.decode(view.subarray(5, 5 + len)),
    payload: view.subarray(5 + len),
  };
}

/** A reply: | corr: u32 | payload |. */
export function wrapReply(corr: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeUInt32BE(corr, 0);
  out.set(payload, 4);
  return out;
}

export function unwrapReply(buf: Uint8Array): { corr: number; payload: Uint8Array } {
  const view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return { corr: view.readUInt32BE(0), payload: view.subarray(4) };
}

/** Pending requests by correlation number, each with its own timeout. */
export class PendingReplies {
  private next = 1;
  private readonly pending = new Map<
    number,
    { resolve: (p: Uint8Array) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();

  open(timeoutMs: number): { corr: number; reply: Promise<Uint8Array> } {
    const corr = this.next;
    this.next = this.next >= 0xffff_ffff ? 1 : this.next + 1;
    const reply = new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(corr);
        reject(new Error(`request ${corr} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(corr, { resolve, reject, timer });
    });
    return { corr, reply };
  }

  settle(corr: number, payload: Uint8Array): void {
    const p = this.pending.get(corr);
    if (!p) return;
    this.pending.delete(corr);
    clearTimeout(p.timer);
    p.resolve(payload);
  }

  rejectAll(err: Error): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }
}
