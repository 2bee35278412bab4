/**
 * One native-protocol connection, over any `ServerTransport`. It parses frames, enforces the handshake
 * and limits, routes through the broker, and batches outbound frames: the first frame queued in an event
 * loop turn schedules one flush, so a burst of deliveries becomes one write.
 */
import type { Logger } from 'pino';
import type { Broker, PublishInput, RoutedMessage } from '../core/broker.ts';
import type { PubSubMessage, Subscriber, Subscription } from '../core/pubsub.ts';
import {
  encodeControl,
  encodeError,
  encodeMsg,
  encodePong,
  encodePing,
  FrameParser,
  FrameType,
  MessagingError,
  msgFrameSize,
  writeMsgFrame,
  PROTOCOL_VERSION,
  CONFIRM_FRAME_BYTES,
  writeConfirmFrame,
  PUB_FLAG_REQUEST,
  setMsgSid,
  type ControlFrame,
  type Frame,
  type PubFrame,
} from '../protocol/index.ts';
import type { Identity } from '../security/permissions.ts';
import type { Security } from '../security/security.ts';
import type { SessionGuard } from '../security/session-guard.ts';
import { OutboundBuffer } from './outbound.ts';
import type { ServerTransport } from './transport.ts';

/** Why a connection ended; logged and counted in messaging_connections_closed_total{reason}. */
export type CloseReason =
  | 'client_closed'
  | 'server_shutdown'
  | 'protocol_error'
  | 'handshake_timeout'
  | 'handshake_failed'
  | 'slow_consumer'
  | 'heartbeat_timeout'
  | 'max_connections'
  | 'auth_failed'
  | 'auth_expired'
  | 'rate_limited'
  | 'transport_error';

export interface SessionLimits {
  maxPayloadBytes: number;
  maxFrameBytes: number;
  maxPendingBytes: number;
  handshakeTimeoutMs: number;
  heartbeatMs: number;
}

/** Counters shared by all sessions, read by the metrics collector at scrape time. */
export interface TrafficCounters {
  bytesReceived: number;
  bytesSent: number;
}

export type CommandHandler = (session: Session, args: Record<string, unknown>) => unknown;

export interface SessionContext {
  broker: Broker;
  logger: Logger;
  limits: SessionLimits;
  counters: TrafficCounters;
  instanceId: string;
  serverVersion: string;
  /** CMD operations by name; later features (queues, streams, tasks) register here. */
  commands: ReadonlyMap<string, CommandHandler>;
  /** Authentication, authorization, rate limits and audit (src/security); absent = all off. */
  security?: Pick<Security, 'forSession'>;
  onClose(session: Session, reason: CloseReason): void;
}

/** One SUB on this connection, plugged into the broker. */
class SessionSubscriber implements Subscriber {
  subscription: Subscription | undefined;
  constructor(
    private readonly session: Session,
    readonly id: number,
    readonly sid: number,
  ) {}

  deliver(message: PubSubMessage): void {
    this.session.deliver(this.sid, message as RoutedMessage);
  }
}

let nextSubscriberId = 1;

export class Session {
  readonly startedAt = Date.now();
  private readonly parser: FrameParser;
  private handshakeDone = false;
  /** The protocol version agreed in HELLO/WELCOME (2 and up: publisher confirms as CONFIRM frames). */
  private version = 0;
  /** Direct queue publishes waiting for `confirmsFor`, as request id, message id pairs. */
  private confirms: Array<number | Uint8Array> = [];
  private confirmsFor: Promise<void> | undefined;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private readonly subs = new Map<number, SessionSubscriber>();
  /**
   * Other things a sid can name — durable consumers, stream followers — with how to stop them (UNSUB)
   * and how to let go of them when the connection ends.
   */
  private readonly resources = new Map<number, { stop(): void; release(): void }>();
  private readonly closeHooks = new Map<string, () => void>();
  private readonly out = new OutboundBuffer();
  private flushScheduled = false;
  /** A flush already ran (or is queued as a microtask) in this turn of the event loop. */
  private flushedThisTurn = false;
  private readonly endTurn = (): void => {
    this.flushedThisTurn = false;
  };
  private closed = false;
  /** Heartbeat bookkeeping, advanced by the server's shared sweep timer. */
  private heardSinceSweep = true;
  private missedBeats = 0;
  clientName = '';
  /** Security for this connection; undefined when every security feature is off (nothing to check). */
  private readonly guard: SessionGuard | undefined;
  /** Frames that arrived while HELLO's credentials were being checked, replayed once they pass. */
  private held: Frame[] | undefined;
  private heldBytes = 0;

  constructor(
    readonly id: number,
    readonly transport: ServerTransport,
    private readonly ctx: SessionContext,
  ) {
    this.guard = ctx.security?.forSession(this);
    this.parser = new FrameParser(ctx.limits.maxFrameBytes, (frame) => this.onFrame(frame));
    this.handshakeTimer = setTimeout(() => {
      this.fail(
        new MessagingError(
          'HANDSHAKE_TIMEOUT',
          `no HELLO within ${ctx.limits.handshakeTimeoutMs} ms (connection_timeout_ms)`,
        ),
        'handshake_timeout',
      );
    }, ctx.limits.handshakeTimeoutMs);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get subscriptionCount(): number {
    return this.subs.size;
  }

  /** Who is on this connection, for `authorize(session.identity, 'tasks', name)`; undefined: security off. */
  get identity(): Identity | undefined {
    return this.guard?.identity;
  }

  /** Bytes from the transport. Protocol errors are answered and close this connection only. */
  receive(chunk: Uint8Array): void {
    if (this.closed) return;
    this.heardSinceSweep = true;
    this.ctx.counters.bytesReceived += chunk.length;
    try {
      this.parser.push(chunk);
    } catch (err) {
      const error =
        err instanceof MessagingError
          ? err
          : new MessagingError('INTERNAL', 'unexpected error while handling a frame', { cause: err });
      if (error.fatal) this.fail(error, 'protocol_error');
      else {
        this.ctx.logger.error({ err, conn: this.id }, 'internal error while handling a frame');
        this.sendError(0, error);
      }
    }
  }

  /** Called by the shared heartbeat sweep every heartbeat interval. */
  heartbeat(): void {
    if (this.closed || !this.handshakeDone) return;
    if (this.heardSinceSweep) {
      this.heardSinceSweep = false;
      this.missedBeats = 0;
      return;
    }
    this.missedBeats++;
    if (this.missedBeats > 2) {
      this.fail(
        new MessagingError('HEARTBEAT_TIMEOUT', `no traffic for ${this.missedBeats} heartbeat intervals`),
        'heartbeat_timeout',
      );
      return;
    }
    this.send(encodePing());
  }

  /**
   * Delivers a routed message to subscription `sid`. A message that arrived as a PUB frame is forwarded
   * from its encoded bytes (one copy, no re-encoding); others are encoded once and shared.
   */
  deliver(sid: number, message: RoutedMessage): void {
    if (this.closed) return;
    const rest = message.rest;
    if (rest) {
      const size = msgFrameSize(rest.length);
      const offset = this.out.reserve(size);
      writeMsgFrame(this.out.buffer, offset, sid, message.msgId, rest);
      this.out.commit(size);
    } else {
      let frame = message.encoded;
      if (frame === undefined) {
        frame = encodeMsg(0, message.topic, message.payload, {
          reply: message.reply,
          meta: message.meta,
          msgId: message.msgId,
        });
        (message as PubSubMessage).encoded = frame;
      }
      const offset = this.out.reserve(frame.length);
      const slab = this.out.buffer;
      slab.set(frame, offset);
      setMsgSid(slab.subarray(offset, offset + 9), sid);
      this.out.commit(frame.length);
    }
    this.queued();
  }

  /**
   * Room for a frame of `n` bytes in the outbound buffer, for a caller that encodes in place: returns the
   * offset in `outBuffer`; write exactly `n` bytes there, then `commit(n)`. (A closed session still
   * takes the bytes; they are dropped.)
   */
  reserve(n: number): number {
    return this.out.reserve(n);
  }

  get outBuffer(): Buffer {
    return this.out.buffer;
  }

  commit(n: number): void {
    if (this.closed) return;
    this.out.commit(n);
    this.queued();
  }

  send(bytes: Uint8Array): void {
    if (this.closed) return;
    this.out.push(bytes);
    this.queued();
  }

  private queued(): void {
    if (this.out.size + this.transport.bufferedBytes() > this.ctx.limits.maxPendingBytes) {
      this.slowConsumer();
      return;
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // The first flush of a turn goes at the end of the current microtasks, so a reply or a delivery
    // batch leaves before this turn's other reads are handled (a consumer's next batch waited behind
    // a publisher's whole read); any later one waits for the end of the turn, so many small replies
    // still share one write.
    if (this.flushedThisTurn) setImmediate(this.flush);
    else {
      this.flushedThisTurn = true;
      queueMicrotask(this.flush);
      setImmediate(this.endTurn);
    }
  }

  sendError(reqId: number, error: MessagingError): void {
    this.send(encodeError(reqId, error.toWire()));
  }

  /** Ends the connection for a reason: sends the error frame first when there is one. */
  fail(error: MessagingError, reason: CloseReason): void {
    if (this.closed) return;
    this.ctx.logger.info(
      { conn: this.id, remote: this.transport.remoteAddress, reason, code: error.code },
      `closing connection: ${error.message}`,
    );
    this.sendError(0, error);
    this.flush();
    this.close(reason, false);
  }

  /** Closes the connection; `graceful` flushes pending frames first. */
  close(reason: CloseReason, graceful = true): void {
    if (this.closed) return;
    if (graceful) this.flush();
    this.closed = true;
    this.releaseAll();
    this.out.clear();
    this.transport.end();
    this.ctx.onClose(this, reason);
  }

  /** The transport went away on its own. */
  transportClosed(hadError: boolean): void {
    if (this.closed) return;
    if (!this.parser.idle) {
      this.ctx.logger.debug(
        { conn: this.id, buffered: this.parser.bufferedBytes },
        'connection closed mid-frame',
      );
    }
    this.close(hadError ? 'transport_error' : 'client_closed', false);
  }

  /** Claims `sid` for a consumer or stream follower; INVALID_SUBSCRIPTION when it is taken. */
  claimSid(sid: unknown): number {
    if (typeof sid !== 'number' || !Number.isInteger(sid) || sid <= 0 || sid > 0xffffffff) {
      throw new MessagingError('INVALID_SUBSCRIPTION', '"sid" must be an integer from 1 to 2^32-1');
    }
    if (this.subs.has(sid) || this.resources.has(sid)) {
      throw new MessagingError('INVALID_SUBSCRIPTION', `sid ${sid} is already in use on this connection`);
    }
    return sid;
  }

  addResource(sid: number, resource: { stop(): void; release(): void }): void {
    this.resources.set(sid, resource);
  }

  private releaseAll(): void {
    clearTimeout(this.handshakeTimer);
    this.guard?.close();
    this.held = undefined;
    for (const sub of this.subs.values()) sub.subscription?.unsubscribe();
    this.subs.clear();
    for (const resource of this.resources.values()) resource.release();
    this.resources.clear();
    for (const release of this.closeHooks.values()) release();
    this.closeHooks.clear();
  }

  /** Runs `release` once when the connection ends; a second call with the same key is ignored. */
  onClose(key: string, release: () => void): void {
    if (!this.closeHooks.has(key)) this.closeHooks.set(key, release);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.closed) return;
    const bytes = this.out.take();
    if (!bytes) return;
    this.ctx.counters.bytesSent += bytes.length;
    this.transport.write(bytes);
  };

  private slowConsumer(): void {
    const pending = this.out.size + this.transport.bufferedBytes();
    this.out.clear();
    this.ctx.logger.warn(
      {
        conn: this.id,
        remote: this.transport.remoteAddress,
        pending,
        limit: this.ctx.limits.maxPendingBytes,
      },
      'slow consumer cut off: unsent bytes exceeded max_pending_bytes',
    );
    const error = new MessagingError(
      'SLOW_CONSUMER',
      `${pending} unsent bytes exceed the limit of ${this.ctx.limits.maxPendingBytes} (max_pending_bytes); read faster or subscribe to less`,
    );
    this.transport.write(encodeError(0, error.toWire()));
    this.closed = true;
    this.releaseAll();
    this.transport.destroy();
    this.ctx.onClose(this, 'slow_consumer');
  }

  private onFrame(frame: Frame): void {
    if (this.held) {
      this.hold(frame);
      return;
    }
    if (!this.handshakeDone) {
      if (frame.type !== FrameType.HELLO) {
        throw new MessagingError(
          'HANDSHAKE_REQUIRED',
          'the first frame must be HELLO (see docs/protocol.md)',
        );
      }
      this.hello(frame);
      return;
    }
    if (this.guard && frame.type !== FrameType.PING && frame.type !== FrameType.PONG) {
      const refused = this.guard.admit();
      if (refused) {
        this.sendError('reqId' in frame ? frame.reqId : 0, refused);
        return;
      }
    }
    switch (frame.type) {
      case FrameType.PUB:
        this.publish(frame);
        return;
      case FrameType.PING:
        this.send(encodePong());
        return;
      case FrameType.PONG:
        return;
      case FrameType.SUB:
      case FrameType.UNSUB:
      case FrameType.CMD:
        this.control(frame);
        return;
      case FrameType.HELLO:
        this.sendError(
          frame.reqId,
          new MessagingError('BAD_REQUEST', 'HELLO was already received on this connection'),
        );
        return;
      default:
        throw new MessagingError(
          'PROTOCOL_ERROR',
          `a client may not send frame type 0x${frame.type.toString(16)}`,
        );
    }
  }

  private hello(frame: ControlFrame): void {
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    const version = frame.body.version;
    if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
      throw new MessagingError(
        'UNSUPPORTED_VERSION',
        `HELLO must carry an integer "version" ≥ 1, got ${JSON.stringify(version)}`,
      );
    }
    if (typeof frame.body.client === 'string') this.clientName = frame.body.client.slice(0, 128);
    const checking = this.guard?.authenticate(frame.body);
    if (checking) {
      // Frames pipelined behind HELLO wait until the credentials are checked, then run in order.
      this.held = [];
      checking.then(
        () => {
          const held = this.held ?? [];
          this.held = undefined;
          this.heldBytes = 0;
          if (this.closed) return;
          this.welcome(frame.reqId, version);
          for (const f of held) {
            if (this.closed) return;
            try {
              this.onFrame(f);
            } catch (err) {
              this.answerError(0, err);
            }
          }
        },
        (err: unknown) => {
          const error =
            err instanceof MessagingError ? err : new MessagingError('AUTH_FAILED', 'authentication failed');
          this.fail(error, error.code === 'RATE_LIMITED' ? 'rate_limited' : 'auth_failed');
        },
      );
      return;
    }
    this.welcome(frame.reqId, version);
  }

  /** Keeps a frame received during authentication (copied: its bytes may be views of a reused chunk). */
  private hold(frame: Frame): void {
    let size = 16;
    if (frame.type === FrameType.PUB || frame.type === FrameType.MSG) {
      size += frame.payload.length + (frame.rest?.length ?? 0);
      frame = {
        ...frame,
        payload: frame.payload.slice(),
        msgId: frame.msgId?.slice(),
        ...(frame.rest ? { rest: frame.rest.slice() } : {}),
      } as Frame;
    }
    this.heldBytes += size;
    if (this.heldBytes > this.ctx.limits.maxPendingBytes) {
      this.fail(
        new MessagingError('PROTOCOL_ERROR', 'too many bytes sent before the handshake completed'),
        'protocol_error',
      );
      return;
    }
    this.held!.push(frame);
  }

  private welcome(reqId: number, version: number): void {
    this.handshakeDone = true;
    this.version = Math.min(version, PROTOCOL_VERSION);
    this.send(
      encodeControl(FrameType.WELCOME, reqId, {
        version: this.version,
        server: 'messaging-system',
        server_version: this.ctx.serverVersion,
        instance_id: this.ctx.instanceId,
        connection_id: this.id,
        max_payload: this.ctx.limits.maxPayloadBytes,
        heartbeat_ms: this.ctx.limits.heartbeatMs,
      }),
    );
  }

  private publish(frame: PubFrame): void {
    const reqId = frame.reqId;
    try {
      // The decoded frame has every field the broker reads: passed as is, no object per message.
      const input: PublishInput & { reply: string } = frame;
      const broker = this.ctx.broker;
      const direct = frame.meta?.queue;
      this.guard?.checkPublish(frame.topic, typeof direct === 'string' ? direct : undefined);
      if (typeof direct === 'string' && reqId !== 0 && this.version >= 2) {
        const now = broker.publishToQueueNow(direct, input);
        if (now) {
          this.confirmWhen(now.durable, reqId, now.msgId);
          return;
        }
      }
      const result =
        typeof direct === 'string'
          ? broker.publishToQueue(direct, input)
          : frame.flags & PUB_FLAG_REQUEST
            ? broker.request(input)
            : broker.publish(input);
      if (result.stored && reqId !== 0 && typeof direct === 'string' && this.version >= 2) {
        const msgId = result.msgId;
        result.stored.then(
          () => this.confirm(reqId, msgId),
          (err: unknown) => this.answerError(reqId, err),
        );
      } else if (result.stored) {
        // The confirm waits for durability; without one, a storage error still reaches the client.
        result.stored.then(
          (stored) =>
            this.answerOk(reqId, {
              id: stored.id,
              delivered: result.delivered,
              queues: stored.queues,
              streams: stored.streams,
            }),
          (err: unknown) => this.answerError(reqId, err),
        );
      } else if (reqId !== 0) this.send(encodeControl(FrameType.OK, reqId, { delivered: result.delivered }));
    } catch (err) {
      this.answerError(reqId, err);
    }
  }

  private control(frame: ControlFrame): void {
    try {
      const result = this.runControl(frame);
      if (result instanceof Promise) {
        result.then(
          (value: unknown) => this.answerOk(frame.reqId, value),
          (err: unknown) => this.answerError(frame.reqId, err),
        );
      } else this.answerOk(frame.reqId, result);
    } catch (err) {
      this.answerError(frame.reqId, err);
    }
  }

  private runControl(frame: ControlFrame): unknown {
    const body = frame.body;
    if (frame.type === FrameType.SUB) return this.subscribe(body);
    if (frame.type === FrameType.UNSUB) return this.unsubscribe(body);
    const op = body.op;
    if (typeof op !== 'string') throw new MessagingError('BAD_REQUEST', 'CMD needs a string "op"');
    const handler = this.ctx.commands.get(op);
    if (!handler) throw new MessagingError('UNKNOWN_COMMAND', `unknown command "${op.slice(0, 64)}"`);
    return this.guard ? this.guard.command(op, body, () => handler(this, body)) : handler(this, body);
  }

  private subscribe(body: Record<string, unknown>): object {
    const { sid, pattern, queue } = body;
    if (typeof sid !== 'number' || !Number.isInteger(sid) || sid <= 0 || sid > 0xffffffff) {
      throw new MessagingError('INVALID_SUBSCRIPTION', 'SUB needs an integer "sid" from 1 to 2^32-1');
    }
    if (typeof pattern !== 'string')
      throw new MessagingError('INVALID_PATTERN', 'SUB needs a string "pattern"');
    if (queue !== undefined && typeof queue !== 'string') {
      throw new MessagingError('BAD_REQUEST', '"queue" must be a string when present');
    }
    if (this.subs.has(sid))
      throw new MessagingError('INVALID_SUBSCRIPTION', `sid ${sid} is already in use on this connection`);
    this.guard?.checkSubscribe(pattern);
    const subscriber = new SessionSubscriber(this, nextSubscriberId++, sid);
    subscriber.subscription = this.ctx.broker.subscribe(pattern, subscriber, queue);
    this.subs.set(sid, subscriber);
    return { sid };
  }

  private unsubscribe(body: Record<string, unknown>): object {
    const { sid, max } = body;
    const resource = typeof sid === 'number' ? this.resources.get(sid) : undefined;
    if (resource) {
      resource.stop();
      this.resources.delete(sid as number); // the sid may be used again
      return { sid };
    }
    const sub = typeof sid === 'number' ? this.subs.get(sid) : undefined;
    if (!sub?.subscription)
      throw new MessagingError('INVALID_SUBSCRIPTION', `no subscription with sid ${String(sid)}`);
    if (typeof max === 'number' && max > 0) {
      sub.subscription.autoUnsubscribe(max);
      if (!sub.subscription.active) this.subs.delete(sub.sid);
    } else {
      sub.subscription.unsubscribe();
      this.subs.delete(sub.sid);
    }
    return { sid };
  }

  /**
   * Confirms a direct queue publish once `durable` resolves. Publishes of one group commit share that
   * promise, so they are confirmed by one callback instead of one each.
   */
  private confirmWhen(durable: Promise<void>, reqId: number, msgId: Uint8Array): void {
    if (durable !== this.confirmsFor) {
      const confirms: Array<number | Uint8Array> = [];
      this.confirmsFor = durable;
      this.confirms = confirms;
      durable.then(
        () => {
          for (let i = 0; i < confirms.length; i += 2)
            this.confirm(confirms[i] as number, confirms[i + 1] as Uint8Array);
        },
        (err: unknown) => {
          for (let i = 0; i < confirms.length; i += 2) this.answerError(confirms[i] as number, err);
        },
      );
    }
    this.confirms.push(reqId, msgId);
  }

  /** The confirm of a direct queue publish, written straight into the outbound buffer. */
  private confirm(reqId: number, msgId: Uint8Array): void {
    if (this.closed) return;
    const offset = this.out.reserve(CONFIRM_FRAME_BYTES);
    writeConfirmFrame(this.out.buffer, offset, reqId, msgId);
    this.out.commit(CONFIRM_FRAME_BYTES);
    this.queued();
  }

  answerOk(reqId: number, value: unknown): void {
    if (reqId === 0 || this.closed) return;
    this.send(encodeControl(FrameType.OK, reqId, value && typeof value === 'object' ? value : {}));
  }

  answerError(reqId: number, err: unknown): void {
    if (this.closed) return;
    if (err instanceof MessagingError) {
      if (err.fatal) {
        this.fail(err, 'protocol_error');
        return;
      }
      if (err.code === 'PERMISSION_DENIED') this.guard?.denied(err);
      this.sendError(reqId, err);
      return;
    }
    this.ctx.logger.error({ err, conn: this.id }, 'internal error while handling a request');
    this.sendError(
      reqId,
      new MessagingError('INTERNAL', 'internal server error; the server log has details'),
    );
  }
}
