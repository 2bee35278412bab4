/** Connect options, their defaults and server URL parsing. */
import { MessagingError } from '../protocol/index.ts';
import type { TlsOptions, TransportFactory, WebSocketConstructor } from './transport.ts';

export interface BackoffOptions {
  /** Delay before the first reconnect attempt. */
  initialMs: number;
  /** Cap of the exponentially growing delay. */
  maxMs: number;
  /** Random spread as a fraction of the delay: 0.2 means ±20 %. Spreads reconnect storms. */
  jitter: number;
}

/** Returns the token to authenticate with (e.g. fetched from `POST /v1/auth/token` with a refresh token). */
export type TokenProvider = () => string | Promise<string>;

export interface ConnectOptions {
  /** One URL or a list to fail over between: `tcp://`, `tls://`, `ws://…/v1/ws`, `wss://`. A bare
   * `host:port` means `tcp://host:port`. Default `tcp://127.0.0.1:8080`. */
  servers?: string | string[];
  /** Client name sent in HELLO; shows up in the server's connection list. */
  name?: string;
  /**
   * JWT sent in HELLO when the server requires authentication: a string, or a function asked for a
   * token on every (re)connect. With a function, a connection closed because its token expired
   * (TOKEN_EXPIRED) reconnects with a fresh token instead of closing for good — as NATS clients do
   * with a credentials callback. A function that throws fails that attempt; reconnecting retries it.
   */
  token?: string | TokenProvider;
  /** Reconnect after losing an established connection. Default true. */
  reconnect?: boolean;
  /** Reconnect attempts before giving up; -1 (default) retries forever. */
  maxReconnectAttempts?: number;
  reconnectBackoff?: Partial<BackoffOptions>;
  /** Connect + handshake timeout, and the default timeout of confirms and commands. Default 5000. */
  timeoutMs?: number;
  /** PING the server after this much silence; two unanswered PINGs mean a dead connection. Default
   * 30000; 0 disables client PINGs. */
  pingIntervalMs?: number;
  /** Bytes of publishes and commands held while reconnecting; beyond it they fail with
   * CONNECTION_CLOSED. Default 8 MiB. */
  reconnectBufferBytes?: number;
  /** Upper bound for `drain()` before the connection is closed anyway. Default 10000. */
  drainTimeoutMs?: number;
  /** Largest frame accepted from the server; protects the client from a bogus length. Default 64 MiB. */
  maxFrameBytes?: number;
  /** Certificates for `tls://` servers. */
  tls?: TlsOptions;
  /** WebSocket constructor for `ws://`/`wss://` where `globalThis.WebSocket` is missing (Node 20). */
  webSocket?: WebSocketConstructor;
  /** Replaces the built-in transports (tests, embedding, custom networks). */
  transport?: TransportFactory;
}

/** @internal ConnectOptions with every default applied. */
export interface ResolvedOptions {
  servers: URL[];
  name: string | undefined;
  token: string | TokenProvider | undefined;
  reconnect: boolean;
  maxReconnectAttempts: number;
  backoff: BackoffOptions;
  timeoutMs: number;
  pingIntervalMs: number;
  reconnectBufferBytes: number;
  drainTimeoutMs: number;
  maxFrameBytes: number;
  tls: TlsOptions | undefined;
  webSocket: WebSocketConstructor | undefined;
  transport: TransportFactory | undefined;
}

export const DEFAULT_SERVER = 'tcp://127.0.0.1:8080';

/** Parses one server address; `host:port` and `host` default to tcp and port 8080. */
export function parseServerUrl(server: string): URL {
  const text = server.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `tcp://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new MessagingError('BAD_REQUEST', `invalid server URL '${server}'`);
  }
  if ((url.protocol === 'tcp:' || url.protocol === 'tls:') && !url.port) url.port = '8080';
  return url;
}

function positive(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new MessagingError('BAD_REQUEST', `connect option ${name} must be a positive number, got ${value}`);
  }
  return value;
}

export function resolveOptions(options: ConnectOptions): ResolvedOptions {
  const list = options.servers === undefined ? [DEFAULT_SERVER] : [options.servers].flat();
  if (list.length === 0) throw new MessagingError('BAD_REQUEST', 'connect option servers is empty');
  const b = options.reconnectBackoff ?? {};
  const backoff: BackoffOptions = {
    initialMs: positive('reconnectBackoff.initialMs', b.initialMs, 100, true),
    maxMs: positive('reconnectBackoff.maxMs', b.maxMs, 5000, true),
    jitter: Math.min(1, positive('reconnectBackoff.jitter', b.jitter, 0.2, true)),
  };
  return {
    servers: list.map(parseServerUrl),
    name: options.name,
    token: options.token,
    reconnect: options.reconnect ?? true,
    maxReconnectAttempts: options.maxReconnectAttempts ?? -1,
    backoff,
    timeoutMs: positive('timeoutMs', options.timeoutMs, 5000),
    pingIntervalMs: positive('pingIntervalMs', options.pingIntervalMs, 30_000, true),
    reconnectBufferBytes: positive(
      'reconnectBufferBytes',
      options.reconnectBufferBytes,
      8 * 1024 * 1024,
      true,
    ),
    drainTimeoutMs: positive('drainTimeoutMs', options.drainTimeoutMs, 10_000),
    maxFrameBytes: positive('maxFrameBytes', options.maxFrameBytes, 64 * 1024 * 1024),
    tls: options.tls,
    webSocket: options.webSocket,
    transport: options.transport,
  };
}

/** Delay before reconnect attempt `attempt` (1-based): exponential, capped, with ± jitter. */
export function backoffDelay(
  backoff: BackoffOptions,
  attempt: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt - 1, 30));
  const spread = base * backoff.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base + spread));
}
