/** Subscriptions: a callback or an async iterator over the messages of one SUB. */
import { ConnectionClosedError, MessagingError } from '../protocol/index.ts';
import type { Message } from './message.ts';

export interface SubscribeOptions {
  /** Queue group: subscriptions sharing the name split the messages (one member each). */
  queue?: string;
  /** Stop after this many messages (the server stops delivering too). */
  max?: number;
  /**
   * Called once per message instead of the async iterator. A returned promise is awaited only by
   * `drain()`; messages are not serialised behind it. A throw is reported on the connection's `error`.
   */
  callback?: (message: Message) => void | Promise<void>;
}

/** @internal What a subscription needs from its connection (keeps this module free of connection.ts). */
export interface SubscriptionHost {
  sendUnsub(sid: number, max?: number): void;
  /** Resolves once the server has processed everything sent so far (PING/PONG). */
  roundTrip(): Promise<void>;
  forget(sid: number): void;
  reportError(error: MessagingError): void;
}

/**
 * One subscription. Without a callback it is an `AsyncIterable<Message>`: `for await (const m of sub)`
 * ends when the subscription is unsubscribed, drained, reaches `max`, or its connection closes (the
 * loop throws when the close had an error). Only one iterator may consume it.
 */
export class Subscription implements AsyncIterable<Message> {
  /** How many messages were delivered so far. */
  received = 0;
  private remaining: number | undefined;
  private readonly callback: SubscribeOptions['callback'];
  // A deque (array + head index) because shift() on a long backlog is O(n).
  private buffer: Message[] = [];
  private head = 0;
  private waiter: { resolve: (r: IteratorResult<Message>) => void; reject: (e: Error) => void } | undefined;
  private iterating = false;
  private isClosed = false;
  private closeReason: MessagingError | undefined;
  private inflight = 0;
  private idleWaiters: Array<() => void> = [];
  private resolveClosed!: (reason: MessagingError | undefined) => void;
  private readonly closedPromise = new Promise<MessagingError | undefined>(
    (resolve) => (this.resolveClosed = resolve),
  );
  private resolveReady!: () => void;
  private rejectReady!: (error: MessagingError) => void;
  private readonly readyPromise = new Promise<void>((resolve, reject) => {
    this.resolveReady = resolve;
    this.rejectReady = reject;
  });

  /** @internal created by `Connection.subscribe` */
  constructor(
    readonly sid: number,
    readonly pattern: string,
    readonly queue: string | undefined,
    options: SubscribeOptions,
    private readonly host: SubscriptionHost,
  ) {
    this.callback = options.callback;
    this.remaining = options.max;
    // ready() is optional to await; an unobserved rejection must not crash the process.
    this.readyPromise.catch(() => {});
  }

  /** Resolves once the server has accepted the subscription; rejects with e.g. INVALID_PATTERN. */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  /** Resolves when the subscription ends: with its error, or undefined for a normal end. */
  closed(): Promise<MessagingError | undefined> {
    return this.closedPromise;
  }

  get isActive(): boolean {
    return !this.isClosed;
  }

  /** Messages remaining before the subscription ends by itself, if a max was set. */
  get pendingMax(): number | undefined {
    return this.remaining;
  }

  /** Messages delivered but not yet taken by the iterator. */
  get backlog(): number {
    return this.buffer.length - this.head;
  }

  /**
   * Stops delivery now, or — with `max` — after `max` more messages. Messages already buffered for the
   * iterator are still yielded.
   */
  unsubscribe(max?: number): void {
    if (this.isClosed) return;
    if (max !== undefined && max > 0) {
      this.remaining = max;
      this.host.sendUnsub(this.sid, max);
      return;
    }
    this.host.sendUnsub(this.sid);
    this.close(undefined);
  }

  /**
   * Unsubscribes without losing messages already on the way: sends UNSUB, waits until the server has
   * processed it (everything it sent before is then received), ends the subscription and waits for
   * running async callbacks.
   */
  async drain(): Promise<void> {
    if (!this.isClosed) {
      this.host.sendUnsub(this.sid);
      try {
        await this.host.roundTrip();
      } catch {
        // The connection went away: nothing more can arrive, so the drain is complete anyway.
      }
      this.close(undefined);
    }
    await this.idle();
  }

  [Symbol.asyncIterator](): AsyncIterator<Message> {
    if (this.callback)
      throw new MessagingError('BAD_REQUEST', 'a subscription with a callback is not iterable');
    if (this.iterating)
      throw new MessagingError('BAD_REQUEST', 'this subscription is already being iterated');
    this.iterating = true;
    return {
      next: () => this.next(),
      return: async () => {
        // Leaving a for-await loop early ends the subscription: nobody would read it any more.
        this.unsubscribe();
        return { value: undefined, done: true };
      },
    };
  }

  // ---- called by the connection -------------------------------------------------------------------

  /** @internal */
  _deliver(message: Message): void {
    if (this.isClosed) return;
    this.received++;
    if (this.callback) this.runCallback(message);
    else if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: message, done: false });
    } else this.buffer.push(message);
    if (this.remaining !== undefined && --this.remaining <= 0) this.close(undefined);
  }

  /** @internal the server accepted the SUB */
  _ready(): void {
    this.resolveReady();
  }

  /** @internal the server refused the SUB, or the connection closed for good */
  _close(reason: MessagingError | undefined): void {
    this.rejectReady(reason ?? new ConnectionClosedError('CONNECTION_CLOSED', 'subscription closed'));
    this.close(reason);
  }

  // ---- internals ------------------------------------------------------------------------------------

  private close(reason: MessagingError | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeReason = reason;
    this.host.forget(this.sid);
    this.rejectReady(reason ?? new ConnectionClosedError('CONNECTION_CLOSED', 'unsubscribed before ready'));
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      if (reason) w.reject(reason);
      else w.resolve({ value: undefined, done: true });
    }
    this.resolveClosed(reason);
  }

  private next(): Promise<IteratorResult<Message>> {
    if (this.head < this.buffer.length) {
      const value = this.buffer[this.head]!;
      this.buffer[this.head++] = undefined as unknown as Message;
      if (this.head > 1024 && this.head * 2 > this.buffer.length) {
        this.buffer = this.buffer.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve({ value, done: false });
    }
    if (this.isClosed) {
      return this.closeReason
        ? Promise.reject(this.closeReason)
        : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  private runCallback(message: Message): void {
    try {
      const result = this.callback!(message);
      if (result && typeof (result as Promise<void>).then === 'function') {
        this.inflight++;
        (result as Promise<void>).then(
          () => this.callbackDone(),
          (err: unknown) => {
            this.callbackDone();
            this.reportCallbackError(err);
          },
        );
      }
    } catch (err) {
      this.reportCallbackError(err);
    }
  }

  private callbackDone(): void {
    if (--this.inflight === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private reportCallbackError(err: unknown): void {
    const error =
      err instanceof MessagingError
        ? err
        : new MessagingError('INTERNAL', `subscription '${this.pattern}' callback threw: ${String(err)}`, {
            cause: err,
          });
    this.host.reportError(error);
  }

  private idle(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}
