/**
 * One connection attempt: a transport, its frame parser and the HELLO/WELCOME handshake. A `Link` is
 * what `Connection` holds while connected; a reconnect makes a new one.
 */
import {
  ConnectionClosedError,
  FRAME_OVERHEAD_ALLOWANCE,
  FrameParser,
  FrameType,
  MessagingError,
  PROTOCOL_VERSION,
  TimeoutError,
  encodeControl,
  encodePong,
  errorFromWire,
  messagingError,
  type Frame,
} from '../protocol/index.ts';
import type { ResolvedOptions } from './options.ts';
import { defaultTransportFactory, type Transport } from './transport.ts';

/** The server's WELCOME body. Unknown fields are kept: newer servers may add some. */
export interface ServerInfo {
  version: number;
  server: string;
  server_version: string;
  instance_id: string;
  connection_id: number;
  max_payload: number;
  heartbeat_ms: number;
  [key: string]: unknown;
}

/** What the owner hears from an established link. */
export interface LinkHandlers {
  frame(link: Link, frame: Frame): void;
  /** Called once, when the transport closed or the link was dropped. */
  closed(link: Link, error: Error | undefined): void;
}

const HELLO_REQ_ID = 1;

function closedError(message: string, cause?: unknown): MessagingError {
  return new ConnectionClosedError('CONNECTION_CLOSED', message, cause ? { cause } : undefined);
}

export class Link {
  /** Anything arrived since the owner last cleared it (heartbeat bookkeeping). */
  heard = true;
  /** A fatal ERR from the server or a local reason (heartbeat, parse error) for the coming close. */
  reason: MessagingError | undefined;
  private serverInfo: ServerInfo | undefined;
  private handshake:
    { resolve: (info: ServerInfo) => void; reject: (error: MessagingError) => void } | undefined;
  private notified = false;
  // Between WELCOME and attach() the owner is not listening yet: hold frames and a close until then.
  private attached = false;
  private early: Frame[] = [];
  private closedEarly: { error: Error | undefined } | undefined;
  private readonly parser: FrameParser;

  private constructor(
    readonly url: URL,
    readonly transport: Transport,
    maxFrameBytes: number,
    private readonly handlers: LinkHandlers,
  ) {
    this.parser = new FrameParser(maxFrameBytes + FRAME_OVERHEAD_ALLOWANCE, (frame) => this.onFrame(frame));
  }

  /** The WELCOME body. */
  get info(): ServerInfo {
    return this.serverInfo!;
  }

  /**
   * Opens the transport and performs the handshake. Rejects with CONNECTION_CLOSED ("cannot reach …")
   * when the transport cannot be opened, with the server's typed error when it refuses the HELLO, or
   * with TIMEOUT when no WELCOME arrives within `timeoutMs`.
   */
  static async open(url: URL, options: ResolvedOptions, handlers: LinkHandlers): Promise<Link> {
    const { timeoutMs } = options;
    // Asked before the connection opens: a slow provider must not eat the server's handshake deadline.
    const token = await tokenFor(options);
    let transport: Transport;
    try {
      const factory = options.transport ?? defaultTransportFactory;
      transport = await factory(url, { timeoutMs, tls: options.tls, webSocket: options.webSocket });
    } catch (err) {
      if (err instanceof MessagingError && err.code !== 'CONNECTION_CLOSED') throw err;
      const why = err instanceof Error ? err.message : String(err);
      throw new ConnectionClosedError('CONNECTION_CLOSED', `cannot reach ${url.href}: ${why}`, {
        cause: err,
        details: { server: url.href },
      });
    }
    const link = new Link(url, transport, options.maxFrameBytes, handlers);
    await link.hello(options, token);
    return link;
  }

  /** Starts delivering to the handlers: first what arrived since the WELCOME, then live frames. */
  attach(): void {
    if (this.attached) return;
    this.attached = true;
    const early = this.early;
    this.early = [];
    for (const frame of early) {
      if (this.notified) break;
      this.handlers.frame(this, frame);
    }
    if (this.closedEarly) this.notifyClosed(this.closedEarly.error);
  }

  /** Writes bytes (never throws; a failure shows up as the link closing). */
  send(bytes: Uint8Array): void {
    this.transport.send(bytes);
  }

  /** Drops a link we no longer trust (parse error, dead heartbeat) without waiting for the socket. */
  drop(reason: MessagingError): void {
    this.reason ??= reason;
    this.transport.close();
    this.notifyClosed(undefined);
  }

  private async hello(options: ResolvedOptions, token: string | undefined): Promise<void> {
    const welcome = new Promise<ServerInfo>((resolve, reject) => (this.handshake = { resolve, reject }));
    void this.transport.closed.then((err) => this.onTransportClosed(err));
    this.transport.receive((chunk) => this.onChunk(chunk));
    const body: Record<string, unknown> = { version: PROTOCOL_VERSION, lang: 'typescript' };
    if (options.name) body['client'] = options.name;
    if (token) body['token'] = token;
    // Straight to the transport: HELLO must precede everything the connection holds for after it.
    this.transport.send(encodeControl(FrameType.HELLO, HELLO_REQ_ID, body));
    const timer = setTimeout(
      () =>
        this.handshake?.reject(
          new TimeoutError('TIMEOUT', `no WELCOME from ${this.url.href} within ${options.timeoutMs} ms`),
        ),
      options.timeoutMs,
    );
    try {
      this.serverInfo = await welcome;
    } catch (err) {
      this.transport.close();
      throw err;
    } finally {
      clearTimeout(timer);
      this.handshake = undefined;
    }
  }

  private onChunk(chunk: Uint8Array): void {
    this.heard = true;
    try {
      this.parser.push(chunk);
    } catch (err) {
      // A stream we cannot parse cannot be resynchronised: drop the link (the owner reconnects).
      const error =
        err instanceof MessagingError ? err : messagingError('PROTOCOL_ERROR', String(err), { cause: err });
      if (this.handshake) {
        this.handshake.reject(error);
        this.transport.close();
      } else this.drop(error);
    }
  }

  private onFrame(frame: Frame): void {
    if (this.handshake) {
      // Cleared before handling, synchronously: the next frame of the same chunk already belongs to
      // the established link (held until attach()).
      const handshake = this.handshake;
      if (frame.type !== FrameType.PING) this.handshake = undefined;
      this.onHandshakeFrame(handshake, frame);
    } else if (!this.attached) this.early.push(frame);
    else if (!this.notified) this.handlers.frame(this, frame);
  }

  private onHandshakeFrame(handshake: NonNullable<Link['handshake']>, frame: Frame): void {
    if (frame.type === FrameType.WELCOME && frame.reqId === HELLO_REQ_ID) {
      const body = frame.body;
      handshake.resolve({
        ...body,
        version: typeof body['version'] === 'number' ? body['version'] : PROTOCOL_VERSION,
        max_payload: typeof body['max_payload'] === 'number' ? body['max_payload'] : 1024 * 1024,
        heartbeat_ms: typeof body['heartbeat_ms'] === 'number' ? body['heartbeat_ms'] : 30_000,
      } as ServerInfo);
    } else if (frame.type === FrameType.ERR) {
      const error = errorFromWire(frame.body);
      this.reason = error;
      handshake.reject(error);
    } else if (frame.type === FrameType.PING) {
      this.transport.send(encodePong());
    } else {
      handshake.reject(
        new MessagingError('PROTOCOL_ERROR', `expected WELCOME, got frame type 0x${frame.type.toString(16)}`),
      );
    }
  }

  private onTransportClosed(err: Error | undefined): void {
    if (this.handshake) {
      this.handshake.reject(
        this.reason ??
          closedError(
            `${this.url.href} closed the connection during the handshake${err ? `: ${err.message}` : ''}`,
            err,
          ),
      );
      return;
    }
    this.notifyClosed(err);
  }

  private notifyClosed(err: Error | undefined): void {
    if (this.notified || this.serverInfo === undefined) return;
    if (!this.attached) {
      this.closedEarly ??= { error: err };
      return;
    }
    this.notified = true;
    this.handlers.closed(this, err);
  }
}

/** The HELLO token: the string, or what the provider gives for this attempt. */
async function tokenFor(options: ResolvedOptions): Promise<string | undefined> {
  if (typeof options.token !== 'function') return options.token;
  try {
    return await options.token();
  } catch (err) {
    // Not an authentication verdict: the provider may succeed on the next attempt.
    throw new ConnectionClosedError(
      'CONNECTION_CLOSED',
      `the token provider failed: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
}
