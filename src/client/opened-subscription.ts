/**
 * Subscriptions the server opens on a CMD rather than a SUB: queue consumers (`queue.consume`) and
 * stream tails (`stream.subscribe`). They share everything with a plain Subscription — sid space,
 * delivery by MSG frame, UNSUB, drain, being re-opened after a reconnect — except the frame that opens
 * them and the class of the messages they deliver, which an `Opener` supplies.
 */
import type { MsgFrame } from '../protocol/index.ts';
import type { Message, Payload, PublishAck, PublishOptions, Responder } from './message.ts';
import { Subscription, type SubscribeOptions, type SubscriptionHost } from './subscription.ts';

/** @internal */
export interface Opener {
  /** Human-readable target for errors, e.g. `queue 'orders'`. */
  readonly label: string;
  /**
   * The frame that opens the subscription on the current link. Called again after every reconnect, so
   * it may carry state (a stream tail resumes after the last sequence it delivered).
   */
  openFrame(sid: number, reqId: number): Uint8Array;
  /** The server's OK to the open frame. */
  opened?(body: Record<string, unknown>): void;
  /** Builds the message object for a delivered MSG frame (`payload` is already a private copy). */
  wrap(frame: MsgFrame, payload: Uint8Array, responder: Responder): Message;
}

/** @internal created by `Connection` for queues and streams */
export class OpenedSubscription extends Subscription {
  constructor(
    sid: number,
    options: SubscribeOptions,
    host: SubscriptionHost,
    readonly opener: Opener,
  ) {
    super(sid, opener.label, undefined, options, host);
  }
}

/**
 * Wraps a Subscription's iterator for a narrower message type `M`. Sound because an OpenedSubscription
 * only ever delivers what its Opener's `wrap` built.
 */
export function narrowIterator<M extends Message>(sub: Subscription): AsyncIterator<M> {
  const it = sub[Symbol.asyncIterator]();
  return {
    next: () => it.next() as Promise<IteratorResult<M>>,
    return: async () => {
      await it.return?.();
      return { value: undefined, done: true };
    },
  };
}

/**
 * @internal What the queue and stream APIs need from their connection; implemented inside
 * `Connection` (keeps these modules free of connection.ts, as `SubscriptionHost` does).
 */
export interface DurableHost {
  command(
    op: string,
    args?: Record<string, unknown>,
    options?: { timeoutMs?: number },
  ): Promise<Record<string, unknown>>;
  publishConfirmed(topic: string, payload: Payload, options: PublishOptions): Promise<PublishAck>;
  /** Registers an OpenedSubscription and sends its open frame (now, or after the reconnect). */
  open(opener: Opener, options: SubscribeOptions): OpenedSubscription;
  readonly responder: Responder;
}
