/**
 * The client connection: handshake, batched writes, subscriptions, muxed request inbox, heartbeats,
 * reconnect and drain. It speaks `docs/protocol.md` through `src/protocol/` and a `Transport`.
 *
 * Delivery guarantees across a reconnect (pub/sub is at most once):
 * - Frames already written to the lost connection are gone. Publisher confirms, commands and requests
 *   whose frame was written fail at once with CONNECTION_CLOSED: we cannot know whether the server saw
 *   them, and a reply could not reach us while our inbox was unsubscribed, so waiting for their timeout
 *   would only delay a near-certain failure.
 * - Publishes, commands, requests and flushes issued while disconnected (or queued but not yet written)
 *   are held, up to `reconnectBufferBytes`, and sent after the new handshake; they keep their promises.
 * - Every live subscription is re-sent with the same sid (and its remaining `max`), so iterators and
 *   callbacks continue without noticing anything but the gap. Queue consumers are re-opened the same
 *   way (the server returned their unacknowledged deliveries to the queue when the link closed), and
 *   stream tails resume after the last sequence they delivered.
 */
import {
  ConnectionClosedError,
  FrameType,
  MessagingError,
  PUB_FLAG_REQUEST,
  TimeoutError,
  encodeControl,
  encodePing,
  copyBytes,
  encodePong,
  encodePub,
  errorFromWire,
  messageFrameSize,
  utf8Encode,
  ulidToString,
  writeMessageFrame,
  messagingError,
  type ControlFrame,
  type ErrorCode,
  type Frame,
  type MessageMeta,
  type MsgFrame,
} from '../protocol/index.ts';
import { TypedEmitter } from './events.ts';
import { RequestInbox } from './inbox.ts';
import { Link, type LinkHandlers, type ServerInfo } from './link.ts';
import {
  Message,
  buildEnvelope,
  encodePayload,
  type MessageOptions,
  type Payload,
  type PublishAck,
  type PublishOptions,
  type Responder,
} from './message.ts';
import { backoffDelay, resolveOptions, type ConnectOptions, type ResolvedOptions } from './options.ts';
import { OpenedSubscription, type DurableHost } from './opened-subscription.ts';
import { Outbound } from './outbound.ts';
import { Queues } from './queues.ts';
import { Streams } from './streams.ts';
import { Tasks } from './tasks.ts';
import { Subscription, type SubscribeOptions, type SubscriptionHost } from './subscription.ts';

/** The connection's status events (see `Connection.on`). */
export interface ConnectionEvents {
  /** The first handshake completed. */
  connect: { server: string; info: ServerInfo };
  /** An established connection was lost; `reconnecting` or `close` follows. */
  disconnect: { server: string; error: MessagingError };
  /** A reconnect attempt is scheduled after `delayMs`; `lastError` is why the previous one failed. */
  reconnecting: { server: string; attempt: number; delayMs: number; lastError: MessagingError | undefined };
  /** A reconnect completed; subscriptions are re-sent. */
  reconnect: { server: string; info: ServerInfo };
  /** An error not tied to an operation's promise: ERR with reqId 0, a refused SUB, a throwing callback. */
  error: MessagingError;
  /** The connection is closed for good; the payload is the reason, undefined after close()/drain(). */
  close: MessagingError | undefined;
}

/** Result of a generic command (the OK body). */
export type CommandResult = Record<string, unknown>;

export interface RequestOptions extends MessageOptions {
  /** Reject with TimeoutError after this long. Default 5000. */
  timeoutMs?: number;
}

export interface CommandOptions {
  /** Defaults to the connection's `timeoutMs`; 0 waits forever (e.g. long-polling commands). */
  timeoutMs?: number;
}

/** HELLO uses request id 1 (docs/protocol.md); later requests start after it. */
const FIRST_REQ_ID = 2;
const EMPTY = new Uint8Array(0);
/** Codes after which reconnecting cannot help. */
const PERMANENT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'AUTH_REQUIRED',
  'AUTH_FAILED',
  'TOKEN_EXPIRED',
  'UNSUPPORTED_VERSION',
]);

type State = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** `after`: the outbound flush count when its frame was queued (see `Outbound.flushCount`). */
interface PendingOp {
  kind: 'op' | 'sub';
  after: number;
  resolve: (body: Record<string, unknown>) => void;
  reject: (error: MessagingError) => void;
  /**
   * When the op times out (epoch ms; Infinity: it waits for its answer) and what to say then: `what`,
   * followed by ` to '<topic>'` for a publish — built only if it does time out, not per publish.
   */
  deadline: number;
  timeoutMs: number;
  what: string;
  topic: string | undefined;
  /** A publish to this durable queue: the server may confirm it with a CONFIRM frame instead of OK. */
  queue: string | undefined;
}

interface PongWaiter {
  after: number;
  resolve?: () => void;
  reject?: (error: MessagingError) => void;
}

function asMessagingError(err: unknown, fallback: ErrorCode = 'INTERNAL'): MessagingError {
  if (err instanceof MessagingError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return messagingError(fallback, message, { cause: err });
}

/** The queue of publish options that name a queue and set nothing else (`confirm`, `timeoutMs` aside). */
function onlyQueue(options: PublishOptions | undefined): string | undefined {
  if (!options || options.queue === undefined) return undefined;
  for (const key in options) {
    if (
      key !== 'queue' &&
      key !== 'timeoutMs' &&
      key !== 'confirm' &&
      (options as Record<string, unknown>)[key] !== undefined
    )
      return undefined;
  }
  return options.queue;
}

function closedError(message: string, cause?: unknown): MessagingError {
  return new ConnectionClosedError('CONNECTION_CLOSED', message, cause ? { cause } : undefined);
}

/**
 * Opens a connection: tries each server once, performs HELLO/WELCOME, and resolves with the connected
 * `Connection`. Rejects with CONNECTION_CLOSED when no server is reachable, or with the server's error
 * (e.g. AUTH_FAILED).
 */
export async function connect(options: ConnectOptions = {}): Promise<Connection> {
  const connection = new Connection(resolveOptions(options));
  await connection._start();
  return connection;
}

export class Connection extends TypedEmitter<ConnectionEvents> {
  private state: State = 'connecting';
  private draining: Promise<void> | undefined;
  private link: Link | undefined;
  private serverInfo: ServerInfo | undefined;
  private serverIndex = 0;

  private readonly out = new Outbound(() => this.flushNow());
  private lastTopic = '';
  private lastTopicBytes: Uint8Array = EMPTY;
  private lastMetaQueue: string | undefined;
  private lastMetaQueueBytes: Uint8Array = EMPTY;

  private nextReqId = FIRST_REQ_ID;
  private readonly pending = new Map<number, PendingOp>();
  /**
   * One timer for every pending op's timeout, set for the earliest deadline: a producer with thousands
   * of confirms in flight would otherwise create and cancel a timer per publish.
   */
  private timeoutTimer: ReturnType<typeof setTimeout> | undefined;
  private timeoutAt = Infinity;
  private pongWaiters: PongWaiter[] = [];
  private readonly subs = new Map<number, Subscription>();
  private nextSid = 1;
  private inbox: { box: RequestInbox; sub: Subscription } | undefined;
  private quietWaiters: Array<() => void> = [];
  private queuesApi: Queues | undefined;
  private streamsApi: Streams | undefined;
  private tasksApi: Tasks | undefined;

  private heartbeat: ReturnType<typeof setInterval> | undefined;
  private pingsOut = 0;
  private reconnectSleep: { timer: ReturnType<typeof setTimeout>; wake: () => void } | undefined;

  private resolveClosed!: (reason: MessagingError | undefined) => void;
  private readonly closedPromise = new Promise<MessagingError | undefined>(
    (resolve) => (this.resolveClosed = resolve),
  );

  private readonly subHost: SubscriptionHost = {
    sendUnsub: (sid, max) => {
      // While disconnected there is nothing to unsubscribe on the server; the resubscribe after the
      // reconnect skips closed subscriptions and carries the remaining max.
      if (this.state === 'connected') {
        this.enqueue(encodeControl(FrameType.UNSUB, 0, max === undefined ? { sid } : { sid, max }));
      }
    },
    roundTrip: () => this.flush(),
    forget: (sid) => void this.subs.delete(sid),
    reportError: (error) => this.emit('error', error),
  };

  private readonly linkHandlers: LinkHandlers = {
    frame: (link, frame) => this.onFrame(link, frame),
    closed: (link, err) => this.onLinkClosed(link, err),
  };

  private readonly responder: Responder = {
    publish: (topic, payload, options) => this.publish(topic, payload, { ...options, confirm: false }),
    publishError: (topic, error) => this.enqueueWork(encodePub(0, topic, EMPTY, { meta: { error } })),
  };

  private readonly durableHost: DurableHost = {
    command: (op, args, options) => this.command(op, args, options),
    publishConfirmed: (topic, payload, options) => this.publishConfirmed(topic, payload, options),
    open: (opener, options) => {
      if (this.state === 'closed') throw closedError('connection is closed');
      if (this.draining) throw closedError('connection is draining');
      return this.addSubscription(
        (sid) => new OpenedSubscription(sid, options, this.subHost, opener),
        options,
      ) as OpenedSubscription;
    },
    responder: this.responder,
  };

  /** @internal use `connect()` */
  constructor(private readonly options: ResolvedOptions) {
    super();
  }

  /** The server's WELCOME body of the current (or last) connection. */
  get info(): ServerInfo {
    if (!this.serverInfo) throw closedError('not connected yet');
    return this.serverInfo;
  }

  /** URL of the server currently (or last) connected to. */
  get server(): string {
    return this.link?.url.href ?? this.options.servers[this.serverIndex]!.href;
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  get isReconnecting(): boolean {
    return this.state === 'reconnecting';
  }

  get isDraining(): boolean {
    return this.draining !== undefined;
  }

  /** Resolves when the connection is closed for good: with the reason, or undefined after close(). */
  closed(): Promise<MessagingError | undefined> {
    return this.closedPromise;
  }

  // ---- publishing -----------------------------------------------------------------------------------

  /**
   * Publishes a message. Fire-and-forget by default (returns nothing; throws CONNECTION_CLOSED when the
   * connection is closed or the reconnect buffer is full). With `{ confirm: true }` it returns a Promise
   * of the server's OK body instead.
   */
  publish(topic: string, payload?: Payload, options?: PublishOptions & { confirm?: false }): void;
  publish(topic: string, payload: Payload, options: PublishOptions & { confirm: true }): Promise<PublishAck>;
  publish(topic: string, payload?: Payload, options?: PublishOptions): void | Promise<PublishAck>;
  publish(topic: string, payload: Payload = EMPTY, options?: PublishOptions): void | Promise<PublishAck> {
    if (options === undefined) {
      this.writePub(0, topic, encodePayload(payload), EMPTY, undefined, undefined);
      return;
    }
    if (options.confirm) return this.publishConfirmed(topic, payload, options);
    const bytes = encodePayload(payload);
    const { meta, msgId } = buildEnvelope(options);
    this.writePub(0, topic, bytes, options.reply ? utf8Encode(options.reply) : EMPTY, meta, msgId);
  }

  /** Publishes and resolves with the server's OK body once the server accepted (and, for durable
   * queues, stored) the message. */
  publishConfirmed(topic: string, payload: Payload = EMPTY, options?: PublishOptions): Promise<PublishAck> {
    const timeoutMs = options?.timeoutMs ?? this.options.timeoutMs;
    return this.sendOp(timeoutMs, 'publish', topic, options?.queue, (reqId) => {
      const bytes = encodePayload(payload);
      const reply = options?.reply ? utf8Encode(options.reply) : EMPTY;
      const queue = onlyQueue(options);
      if (queue !== undefined)
        this.writePub(reqId, topic, bytes, reply, undefined, undefined, this.queueMeta(queue));
      else {
        const { meta, msgId } = buildEnvelope(options);
        this.writePub(reqId, topic, bytes, reply, meta, msgId);
      }
    });
  }

  /**
   * Sends a generic command (CMD frame `{op, ...args}`) and resolves with the OK body; rejects with the
   * typed error of the server's ERR. The base for queues, streams and tasks.
   */
  command(op: string, args: Record<string, unknown> = {}, options?: CommandOptions): Promise<CommandResult> {
    return this.withReqId(options?.timeoutMs ?? this.options.timeoutMs, `command '${op}'`, (reqId) =>
      encodeControl(FrameType.CMD, reqId, { ...args, op }),
    );
  }

  /**
   * Resolves once the server has processed everything sent before (a PING/PONG round trip). Useful
   * after fire-and-forget publishes, before closing or measuring.
   */
  flush(): Promise<void> {
    if (this.state === 'closed') return Promise.reject(closedError('connection is closed'));
    return new Promise((resolve, reject) => {
      this.pongWaiters.push({ after: this.out.flushCount, resolve, reject });
      this.enqueue(encodePing());
    });
  }

  // ---- subscribing ----------------------------------------------------------------------------------

  /**
   * Subscribes to a topic pattern (`*` = one token, `#` = zero or more). Without `callback` the
   * returned Subscription is an async iterable of messages. `await sub.ready()` to know the server
   * registered it.
   */
  subscribe(pattern: string, options: SubscribeOptions = {}): Subscription {
    if (this.state === 'closed') throw closedError('connection is closed');
    if (this.draining) throw closedError('connection is draining');
    return this.addSubscription(pattern, options);
  }

  // ---- durable queues and streams -------------------------------------------------------------------

  /** Durable queues: declare, publish with confirm, consume or pull, ack/nack, dead letters. */
  get queues(): Queues {
    return (this.queuesApi ??= new Queues(this.durableHost));
  }

  /** Streams: declare, read from any position, follow live, durable readers. */
  get streams(): Streams {
    return (this.streamsApi ??= new Streams(this.durableHost));
  }

  /** Tasks: submit (now, later, chain, group, chord), get, wait, cancel, list, stats, schedules. */
  get tasks(): Tasks {
    return (this.tasksApi ??= new Tasks(this.durableHost));
  }

  // ---- request/reply --------------------------------------------------------------------------------

  /**
   * Sends a request to one responder and resolves with its reply. Rejects with NoRespondersError at
   * once when nobody subscribes to `topic`, TimeoutError after `timeoutMs` (default 5000), or the typed
   * error a responder sent with `respondError`.
   */
  request(topic: string, payload: Payload = EMPTY, options: RequestOptions = {}): Promise<Message> {
    if (this.state === 'closed') return Promise.reject(closedError('connection is closed'));
    const timeoutMs = options.timeoutMs ?? 5000;
    return new Promise<Message>((resolve, reject) => {
      let frame: Uint8Array;
      let request: ReturnType<RequestInbox['open']> | undefined;
      try {
        const bytes = encodePayload(payload);
        this.checkPayload(bytes);
        const envelope = buildEnvelope(options);
        request = this.ensureInbox().open(topic, timeoutMs, this.out.flushCount, resolve, reject);
        frame = encodePub(0, topic, bytes, { reply: request.reply, ...envelope, flags: PUB_FLAG_REQUEST });
        this.enqueueWork(frame);
      } catch (err) {
        const error = asMessagingError(err);
        if (request) request.cancel(error);
        else reject(error);
      }
    });
  }

  // ---- shutdown -------------------------------------------------------------------------------------

  /**
   * Graceful shutdown: unsubscribes every subscription without losing messages in flight, waits for
   * outstanding confirms, commands and requests, flushes, then closes. Bounded by `drainTimeoutMs`.
   */
  drain(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    this.draining ??= this.runDrain();
    return this.draining;
  }

  /** Closes now: queued frames are still written, everything pending rejects with CONNECTION_CLOSED. */
  async close(): Promise<void> {
    await this.finish(undefined);
  }

  // ---- internals: connecting ------------------------------------------------------------------------

  /** @internal */
  async _start(): Promise<void> {
    let lastError: MessagingError | undefined;
    const servers = this.options.servers;
    for (let i = 0; i < servers.length; i++) {
      try {
        const link = await Link.open(servers[i]!, this.options, this.linkHandlers);
        this.serverIndex = i;
        this.adopt(link, false);
        return;
      } catch (err) {
        lastError = asMessagingError(err);
        if (PERMANENT.has(lastError.code)) break;
      }
    }
    this.state = 'closed';
    this.resolveClosed(lastError);
    throw lastError ?? closedError('no server to connect to');
  }

  /** Makes a handshaken link the current one: resubscribe, release held frames, start heartbeats. */
  private adopt(link: Link, isReconnect: boolean): void {
    this.link = link;
    this.serverInfo = link.info;
    this.state = 'connected';
    this.pingsOut = 0;
    if (isReconnect) {
      // Subscriptions first, so that held publishes and requests find them in place.
      const held = this.out.takeForNewLink();
      for (const sub of this.subs.values()) this.writeSub(sub);
      for (const f of held) this.out.push(f, false);
    }
    this.flushNow();
    this.startHeartbeat();
    const info = this.serverInfo!;
    if (isReconnect) this.emit('reconnect', { server: link.url.href, info });
    else this.emit('connect', { server: link.url.href, info });
    // Last: frames (or a close) that came right behind the WELCOME are handled now that we are ready.
    link.attach();
  }

  private onLinkClosed(link: Link, err: Error | undefined): void {
    if (link !== this.link) return;
    this.link = undefined;
    this.stopHeartbeat();
    const reason =
      link.reason ?? closedError(`connection to ${link.url.href} lost${err ? `: ${err.message}` : ''}`, err);
    this.failWritten(closedError(`connection to ${link.url.href} lost before the answer arrived`, reason));
    this.emit('disconnect', { server: link.url.href, error: reason });
    if (this.state === 'closed') return;
    if (!this.options.reconnect || this.isPermanent(reason) || this.draining) {
      void this.finish(reason);
      return;
    }
    this.state = 'reconnecting';
    void this.reconnectLoop();
  }

  private async reconnectLoop(): Promise<void> {
    const { maxReconnectAttempts, backoff, servers } = this.options;
    let lastError: MessagingError | undefined;
    for (let attempt = 1; this.state === 'reconnecting'; attempt++) {
      if (maxReconnectAttempts >= 0 && attempt > maxReconnectAttempts) {
        await this.finish(
          closedError(
            `gave up after ${maxReconnectAttempts} reconnect attempts${lastError ? `: ${lastError.message}` : ''}`,
            lastError,
          ),
        );
        return;
      }
      // With one server this is always it; with several, fail over to the next one first.
      this.serverIndex = (this.serverIndex + 1) % servers.length;
      const url = servers[this.serverIndex]!;
      const delayMs = backoffDelay(backoff, attempt);
      this.emit('reconnecting', { server: url.href, attempt, delayMs, lastError });
      await this.sleep(delayMs);
      if (this.state !== 'reconnecting') return;
      try {
        const link = await Link.open(url, this.options, this.linkHandlers);
        if (this.state !== 'reconnecting') {
          link.transport.close();
          return;
        }
        this.adopt(link, true);
        return;
      } catch (err) {
        lastError = asMessagingError(err);
        if (this.isPermanent(lastError)) {
          await this.finish(lastError);
          return;
        }
      }
    }
  }

  /** Whether reconnecting cannot help; an expired token can, when a provider gives fresh ones. */
  private isPermanent(error: MessagingError): boolean {
    if (error.code === 'TOKEN_EXPIRED' && typeof this.options.token === 'function') return false;
    return PERMANENT.has(error.code);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.reconnectSleep = undefined;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.reconnectSleep = { timer, wake };
    });
  }

  // ---- internals: receiving -------------------------------------------------------------------------

  private onFrame(link: Link, frame: Frame): void {
    if (link !== this.link) return;
    switch (frame.type) {
      case FrameType.MSG:
        this.onMsg(frame);
        return;
      case FrameType.PING:
        this.enqueue(encodePong());
        return;
      case FrameType.PONG:
        this.onPong();
        return;
      case FrameType.OK: {
        const op = this.takePending(frame.reqId);
        op?.resolve(frame.body);
        return;
      }
      case FrameType.CONFIRM: {
        const op = this.takePending(frame.reqId);
        // The same body the server's JSON OK to a direct queue publish has.
        op?.resolve({
          id: ulidToString(frame.msgId),
          delivered: 0,
          queues: op.queue ? [op.queue] : [],
          streams: {},
        });
        return;
      }
      case FrameType.ERR:
        this.onErr(link, frame);
        return;
      default:
        link.drop(
          new MessagingError(
            'PROTOCOL_ERROR',
            `server sent a frame a client never receives (type 0x${frame.type.toString(16)})`,
          ),
        );
    }
  }

  private onErr(link: Link, frame: ControlFrame): void {
    const error = errorFromWire(frame.body);
    // The server closes after a fatal ERR; remember why, so the disconnect carries the real reason.
    if (error.fatal) link.reason ??= error;
    const op = frame.reqId !== 0 ? this.takePending(frame.reqId) : undefined;
    if (op) op.reject(error);
    else this.emit('error', error);
  }

  private onMsg(frame: MsgFrame): void {
    const sub = this.subs.get(frame.sid);
    if (!sub) return; // unsubscribed while the message was in flight
    if (sub instanceof OpenedSubscription) {
      // Durable deliveries are copied: they may wait unacknowledged for long, and a view would keep the
      // whole read chunk alive with them.
      sub._deliver(sub.opener.wrap(frame, copyBytes(frame.payload), this.responder));
      return;
    }
    // No copy: the parser hands out views into the read chunk, which the transport never reuses (see
    // `Transport.receive`); each message's bytes are its own range of it.
    sub._deliver(new Message(frame, frame.payload, this.responder));
  }

  private onPong(): void {
    this.pingsOut = 0;
    const waiter = this.pongWaiters.shift();
    waiter?.resolve?.();
  }

  private takePending(reqId: number): PendingOp | undefined {
    const op = this.pending.get(reqId);
    if (op) {
      this.pending.delete(reqId);
      if (this.pending.size === 0) this.stopTimeouts();
      this.checkQuiet();
    }
    return op;
  }

  private armTimeout(deadline: number): void {
    if (deadline >= this.timeoutAt) return;
    clearTimeout(this.timeoutTimer);
    this.timeoutAt = deadline;
    this.timeoutTimer = setTimeout(this.sweepTimeouts, Math.max(0, deadline - Date.now()));
  }

  private stopTimeouts(): void {
    clearTimeout(this.timeoutTimer);
    this.timeoutTimer = undefined;
    this.timeoutAt = Infinity;
  }

  /** Rejects every op past its deadline with TIMEOUT and sets the timer for the next deadline. */
  private readonly sweepTimeouts = (): void => {
    this.timeoutTimer = undefined;
    this.timeoutAt = Infinity;
    const now = Date.now();
    let next = Infinity;
    for (const [reqId, op] of this.pending) {
      if (op.deadline <= now) {
        this.takePending(reqId);
        const what = op.topic === undefined ? op.what : `${op.what} to '${op.topic}'`;
        op.reject(new TimeoutError('TIMEOUT', `${what} got no answer within ${op.timeoutMs} ms`));
      } else if (op.deadline < next) next = op.deadline;
    }
    if (next < Infinity) this.armTimeout(next);
  };

  // ---- internals: sending ---------------------------------------------------------------------------

  private allocReqId(): number {
    for (;;) {
      const id = this.nextReqId;
      this.nextReqId = id >= 0xffffffff ? FIRST_REQ_ID : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  /** Sends a frame that wants an OK/ERR and returns its promise. */
  private withReqId(
    timeoutMs: number,
    what: string,
    build: (reqId: number) => Uint8Array,
  ): Promise<Record<string, unknown>> {
    return this.sendOp(timeoutMs, what, undefined, undefined, (reqId) => this.enqueueWork(build(reqId)));
  }

  /**
   * Registers an op under a fresh request id, has `write` queue its frame, and returns its promise. A
   * throwing `write` rejects the promise and leaves nothing pending. `queue`: see `PendingOp.queue`.
   */
  private sendOp(
    timeoutMs: number,
    what: string,
    topic: string | undefined,
    queue: string | undefined,
    write: (reqId: number) => void,
  ): Promise<Record<string, unknown>> {
    if (this.state === 'closed') return Promise.reject(closedError('connection is closed'));
    return new Promise((resolve, reject) => {
      const reqId = this.allocReqId();
      // Every field set here, in one order: ops of one shape keep the pending map's reads monomorphic.
      const op: PendingOp = {
        kind: 'op',
        after: this.out.flushCount,
        resolve,
        reject,
        deadline: timeoutMs > 0 ? Date.now() + timeoutMs : Infinity,
        timeoutMs,
        what,
        topic,
        queue,
      };
      try {
        this.pending.set(reqId, op);
        write(reqId);
      } catch (err) {
        this.pending.delete(reqId);
        reject(asMessagingError(err));
        return;
      }
      if (op.deadline < Infinity) this.armTimeout(op.deadline);
    });
  }

  private checkPayload(bytes: Uint8Array): void {
    // The server would answer PAYLOAD_TOO_LARGE, or cut the connection if the frame passes its maximum
    // frame size: refusing here keeps the connection alive.
    const max = this.serverInfo?.max_payload;
    if (max !== undefined && bytes.length > max) {
      throw new MessagingError(
        'PAYLOAD_TOO_LARGE',
        `payload of ${bytes.length} bytes exceeds the server's max_payload of ${max}`,
      );
    }
  }

  /** Queues a publish or command; while reconnecting, within the reconnect buffer bound. */
  private enqueueWork(frame: Uint8Array): void {
    if (this.state === 'closed') throw closedError('connection is closed');
    if (this.state !== 'connected' && this.out.size + frame.length > this.options.reconnectBufferBytes) {
      throw closedError(
        `not connected and the reconnect buffer is full (${this.options.reconnectBufferBytes} bytes)`,
      );
    }
    this.enqueue(frame);
  }

  private enqueue(frame: Uint8Array): void {
    if (this.out.push(frame, this.state === 'connected')) this.flushNow();
  }

  /**
   * The fire-and-forget publish path: encodes the PUB straight into the outbound buffer, with no frame
   * allocated per message. Same checks and bounds as `enqueueWork`.
   */
  private writePub(
    reqId: number,
    topic: string,
    payload: Uint8Array,
    reply: Uint8Array,
    meta: MessageMeta | undefined,
    msgId: Uint8Array | undefined,
    encodedMeta?: Uint8Array,
  ): void {
    if (this.state === 'closed') throw closedError('connection is closed');
    this.checkPayload(payload);
    const topicBytes = this.topicBytes(topic);
    const metaBytes = encodedMeta ?? (meta ? utf8Encode(JSON.stringify(meta)) : EMPTY);
    const size = messageFrameSize(topicBytes.length, reply.length, metaBytes.length, payload.length, msgId);
    const live = this.state === 'connected';
    if (!live && this.out.size + size > this.options.reconnectBufferBytes) {
      throw closedError(
        `not connected and the reconnect buffer is full (${this.options.reconnectBufferBytes} bytes)`,
      );
    }
    const at = this.out.reserve(size);
    writeMessageFrame(
      this.out.buffer,
      at,
      FrameType.PUB,
      reqId,
      0,
      msgId,
      topicBytes,
      reply,
      metaBytes,
      payload,
    );
    if (this.out.commit(size, live)) this.flushNow();
  }

  /** The metadata JSON `{"queue":…}` of a plain direct queue publish; the last queue's is kept. */
  private queueMeta(queue: string): Uint8Array {
    if (queue !== this.lastMetaQueue) {
      this.lastMetaQueueBytes = utf8Encode(JSON.stringify({ queue }));
      this.lastMetaQueue = queue;
    }
    return this.lastMetaQueueBytes;
  }

  /** The UTF-8 bytes of `topic`; a publisher mostly repeats one topic, so the last one is kept. */
  private topicBytes(topic: string): Uint8Array {
    if (topic !== this.lastTopic) {
      this.lastTopicBytes = utf8Encode(topic);
      this.lastTopic = topic;
    }
    return this.lastTopicBytes;
  }

  private flushNow(): void {
    if (this.link) this.out.flushTo(this.link.transport);
  }

  // ---- internals: subscriptions and inbox -----------------------------------------------------------

  private addSubscription(
    pattern: string | ((sid: number) => Subscription),
    options: SubscribeOptions,
  ): Subscription {
    const sid = this.allocSid();
    const sub =
      typeof pattern === 'string'
        ? new Subscription(sid, pattern, options.queue, options, this.subHost)
        : pattern(sid);
    this.subs.set(sid, sub);
    // While reconnecting the SUB goes out with the resubscriptions after the handshake.
    if (this.state === 'connected') this.writeSub(sub);
    return sub;
  }

  private allocSid(): number {
    // Skipping sids still in use matters only after 2^32 subscriptions, but then it matters.
    for (;;) {
      const sid = this.nextSid;
      this.nextSid = sid >= 0xffffffff ? 1 : sid + 1;
      if (!this.subs.has(sid)) return sid;
    }
  }

  private writeSub(sub: Subscription): void {
    const reqId = this.allocReqId();
    const opener = sub instanceof OpenedSubscription ? sub.opener : undefined;
    this.pending.set(reqId, {
      kind: 'sub',
      after: this.out.flushCount,
      resolve: (body) => {
        opener?.opened?.(body);
        sub._ready();
      },
      reject: (error) => {
        this.emit('error', error);
        sub._close(error);
      },
      deadline: Infinity, // a subscription is answered when the server answers; no timeout of its own
      timeoutMs: 0,
      what: 'subscribe',
      topic: undefined,
      queue: undefined,
    });
    if (opener) {
      // Regenerated from the live subscriptions on a reconnect, like SUBs: a copy still queued for the
      // lost link must not go out as well.
      if (this.out.push(opener.openFrame(sub.sid, reqId), this.state === 'connected', true)) this.flushNow();
      return;
    }
    const body: Record<string, unknown> = { sid: sub.sid, pattern: sub.pattern };
    if (sub.queue !== undefined) body['queue'] = sub.queue;
    this.enqueue(encodeControl(FrameType.SUB, reqId, body));
    const max = sub.pendingMax;
    if (max !== undefined) this.enqueue(encodeControl(FrameType.UNSUB, 0, { sid: sub.sid, max }));
  }

  /** The muxed request inbox, subscribed on first use. */
  private ensureInbox(): RequestInbox {
    if (this.inbox) return this.inbox.box;
    const box = new RequestInbox(() => this.checkQuiet());
    this.inbox = { box, sub: this.addSubscription(box.pattern, { callback: (m) => box.handle(m) }) };
    return box;
  }

  // ---- internals: heartbeats ------------------------------------------------------------------------

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const interval = this.options.pingIntervalMs;
    if (interval <= 0) return;
    // Not unref'd: it lives exactly as long as the link (cleared on every disconnect and close).
    this.heartbeat = setInterval(() => this.heartbeatTick(), interval);
  }

  private stopHeartbeat(): void {
    if (this.heartbeat !== undefined) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private heartbeatTick(): void {
    const link = this.link;
    if (!link) return;
    if (link.heard) {
      link.heard = false;
      this.pingsOut = 0;
      return;
    }
    if (this.pingsOut >= 2) {
      link.drop(
        new MessagingError('HEARTBEAT_TIMEOUT', `${link.url.href} did not answer ${this.pingsOut} PINGs`),
      );
      return;
    }
    this.pingsOut++;
    this.pongWaiters.push({ after: this.out.flushCount });
    this.enqueue(encodePing());
  }

  // ---- internals: failing and finishing -------------------------------------------------------------

  /** After a disconnect: fail what was written to the lost link, keep what is still queued. */
  private failWritten(error: MessagingError): void {
    const written = this.out.flushCount;
    for (const [reqId, op] of this.pending) {
      // SUBs are re-sent with the live subscriptions; their ready() waits for the new OK.
      if (op.kind === 'sub') this.pending.delete(reqId);
      else if (op.after < written) {
        this.pending.delete(reqId);
        op.reject(error);
      }
    }
    this.pongWaiters = this.pongWaiters.filter((w) => {
      if (w.after >= written) return true;
      w.reject?.(error);
      return false;
    });
    this.inbox?.box.failWritten(written, error);
    this.checkQuiet();
  }

  private async runDrain(): Promise<void> {
    const work = (async () => {
      const userSubs = [...this.subs.values()].filter((s) => s !== this.inbox?.sub);
      await Promise.all(userSubs.map((s) => s.drain()));
      // Acks issued just before the drain are still waiting for their batch: send them now.
      this.queuesApi?._flushAcks();
      this.tasksApi?._flushSubmits();
      await this.quiet();
      if (this.state === 'connected') await this.flush().catch(() => {});
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<MessagingError>((resolve) => {
      timer = setTimeout(
        () =>
          resolve(
            new TimeoutError('TIMEOUT', `drain did not finish within ${this.options.drainTimeoutMs} ms`),
          ),
        this.options.drainTimeoutMs,
      );
    });
    // Either outcome settles the race; a failure of `work` becomes the close reason, never unhandled.
    const outcome = await Promise.race([
      work.then(
        () => undefined,
        (err: unknown) => asMessagingError(err),
      ),
      timeout,
    ]);
    clearTimeout(timer);
    await this.finish(outcome);
  }

  /** Resolves when no confirm, command or request awaits an answer. */
  private quiet(): Promise<void> {
    return new Promise((resolve) => {
      this.quietWaiters.push(resolve);
      this.checkQuiet();
    });
  }

  private checkQuiet(): void {
    if (this.quietWaiters.length === 0) return;
    for (const op of this.pending.values()) if (op.kind === 'op') return;
    if (this.inbox && this.inbox.box.size > 0) return;
    const waiters = this.quietWaiters;
    this.quietWaiters = [];
    for (const w of waiters) w();
  }

  private async finish(reason: MessagingError | undefined): Promise<void> {
    if (this.state === 'closed') return this.closedPromise.then(() => undefined);
    // Acks of this tick go out with the rest of what is queued (their promises then reject below).
    this.queuesApi?._flushAcks();
    this.tasksApi?._flushSubmits();
    this.state = 'closed';
    this.stopHeartbeat();
    this.reconnectSleep?.wake();
    const link = this.link;
    this.link = undefined;
    if (link) {
      // Write what is queued (e.g. fire-and-forget publishes of this tick) before the orderly close.
      this.out.flushTo(link.transport);
      link.transport.close();
    }
    this.out.clear();

    const error = reason ?? closedError('connection closed');
    for (const op of this.pending.values()) op.reject(error);
    this.pending.clear();
    this.stopTimeouts();
    for (const w of this.pongWaiters) w.reject?.(error);
    this.pongWaiters = [];
    this.inbox?.box.failAll(error);
    for (const sub of [...this.subs.values()]) sub._close(reason);
    this.subs.clear();
    this.checkQuiet();

    this.emit('close', reason);
    this.resolveClosed(reason);
    if (link) await link.transport.closed;
  }
}
