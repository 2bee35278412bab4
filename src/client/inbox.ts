/**
 * Request/reply over one muxed inbox (the nats.js design): one wildcard subscription `_INBOX.<random>.*`
 * per connection serves every request, each request answering on `_INBOX.<random>.<n>`. One SUB instead
 * of one per request keeps requests as cheap as publishes.
 */
import {
  NoRespondersError,
  TimeoutError,
  errorFromWire,
  type MessagingError,
  type WireError,
} from '../protocol/index.ts';
import type { Message } from './message.ts';

interface PendingRequest {
  topic: string;
  /** Outbound flush count when queued (see `Outbound.flushCount`). */
  after: number;
  timer: ReturnType<typeof setTimeout>;
  resolve: (message: Message) => void;
  reject: (error: MessagingError) => void;
}

function randomToken(length: number): string {
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  const bytes = new Uint8Array(length);
  globalThis.crypto.getRandomValues(bytes);
  let out = '';
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

export class RequestInbox {
  readonly prefix = `_INBOX.${randomToken(22)}`;
  private next = 1;
  private readonly requests = new Map<string, PendingRequest>();

  /** `onSettled` runs whenever a request leaves the table (drain waits for it to empty). */
  constructor(private readonly onSettled: () => void) {}

  /** The pattern to subscribe to. */
  get pattern(): string {
    return `${this.prefix}.*`;
  }

  /** Requests awaiting a reply. */
  get size(): number {
    return this.requests.size;
  }

  /**
   * Registers a request and starts its timeout. Returns the reply topic and a `cancel` for when the
   * request could not even be queued.
   */
  open(
    topic: string,
    timeoutMs: number,
    after: number,
    resolve: (message: Message) => void,
    reject: (error: MessagingError) => void,
  ): { reply: string; cancel: (error: MessagingError) => void } {
    const token = String(this.next++);
    const timer = setTimeout(() => {
      if (this.requests.delete(token)) {
        reject(new TimeoutError('TIMEOUT', `request to '${topic}' timed out after ${timeoutMs} ms`));
        this.onSettled();
      }
    }, timeoutMs);
    this.requests.set(token, { topic, after, timer, resolve, reject });
    return {
      reply: `${this.prefix}.${token}`,
      cancel: (error) => this.settle(token, (r) => r.reject(error)),
    };
  }

  /** Handles a message on the inbox: a reply, a `no_responders` status, or a responder's error. */
  handle(message: Message): void {
    const token = message.topic.slice(this.prefix.length + 1);
    this.settle(token, (request) => {
      const meta = message.meta;
      if (meta.status === 'no_responders') {
        request.reject(
          new NoRespondersError('NO_RESPONDERS', `no responders for '${request.topic}'`, {
            details: { topic: request.topic },
          }),
        );
      } else if (meta.error && typeof meta.error === 'object') {
        request.reject(errorFromWire(meta.error as Partial<WireError>));
      } else request.resolve(message);
    });
    // An unknown token is a late reply after a timeout: dropped.
  }

  /** Fails the requests written before flush `written` (their link is gone). */
  failWritten(written: number, error: MessagingError): void {
    for (const [token, request] of this.requests) {
      if (request.after < written) this.settle(token, (r) => r.reject(error));
    }
  }

  failAll(error: MessagingError): void {
    for (const token of [...this.requests.keys()]) this.settle(token, (r) => r.reject(error));
  }

  private settle(token: string, how: (request: PendingRequest) => void): void {
    const request = this.requests.get(token);
    if (!request) return;
    this.requests.delete(token);
    clearTimeout(request.timer);
    how(request);
    this.onSettled();
  }
}
