/**
 * The transport seam: the protocol layer (`connection.ts`) talks only to this interface, so TCP, TLS,
 * WebSocket and an in-memory pair are interchangeable and protocol tests need no sockets.
 *
 * This module must stay browser-safe: no `node:*` imports. The TCP/TLS implementation lives in
 * `transport-node.ts` and is loaded with a dynamic `import()` only when a `tcp://` or `tls://` URL is used.
 */
import { MessagingError } from '../protocol/index.ts';

/** A byte pipe to one server. Implementations never split or merge what `send` is given in a way that
 * matters: the stream is a byte stream, except WebSocket which keeps each `send` as one message. */
export interface Transport {
  /**
   * Starts delivery of incoming chunks. Chunks that arrived before the call are delivered first. The
   * receiver owns each chunk: a transport never reuses a buffer it has handed out.
   */
  receive(onData: (chunk: Uint8Array) => void): void;
  /** Queues bytes for sending. Never throws: a failed write surfaces through `closed`. */
  send(bytes: Uint8Array): void;
  /** Closes gracefully: bytes already passed to `send` are still written. Idempotent. */
  close(): void;
  /** Resolves once the pipe is gone: with the error that broke it, or `undefined` for an orderly close. */
  readonly closed: Promise<Error | undefined>;
  /** Bytes accepted by `send` but not yet handed to the network (for flow control). */
  readonly bufferedAmount: number;
}

/** TLS material for `tls://` URLs (PEM strings or buffers, as Node's `tls.connect` takes them). */
export interface TlsOptions {
  ca?: string | Uint8Array | Array<string | Uint8Array>;
  cert?: string | Uint8Array;
  key?: string | Uint8Array;
  /** Defaults to true; set false only for tests against self-signed certificates without a CA. */
  rejectUnauthorized?: boolean;
  /** SNI / certificate name to verify; defaults to the URL's host name. */
  servername?: string;
}

/**
 * The part of the WebSocket API the client uses; both the browser's and the `ws` package's fit.
 * Handler parameters are `never` so that either implementation's event types are accepted; the
 * transport reads only `data` (message), `code`/`reason` (close) and `message`/`error` (error).
 */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: never) => void) | null;
  onerror: ((event: never) => void) | null;
  onclose: ((event: never) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `(await import('ws')).WebSocket` in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** What a transport factory gets besides the URL. */
export interface TransportOptions {
  /** Give up opening the pipe after this long. */
  timeoutMs: number;
  tls?: TlsOptions;
  webSocket?: WebSocketConstructor;
}

/** Opens a transport to `url`; rejects when the server cannot be reached. */
export type TransportFactory = (url: URL, options: TransportOptions) => Promise<Transport>;

/**
 * The built-in factory: `tcp://` and `tls://` (Node only), `ws://` and `wss://` (anywhere a WebSocket
 * constructor exists).
 */
export const defaultTransportFactory: TransportFactory = async (url, options) => {
  switch (url.protocol) {
    case 'tcp:':
    case 'tls:': {
      // Dynamic so that bundlers for the browser never pull in node:net / node:tls.
      const { openNodeTransport } = await import('./transport-node.ts');
      return openNodeTransport(url, options);
    }
    case 'ws:':
    case 'wss:': {
      const { openWebSocketTransport } = await import('./transport-ws.ts');
      return openWebSocketTransport(url, options);
    }
    default:
      throw new MessagingError(
        'BAD_REQUEST',
        `unsupported server URL scheme '${url.protocol}' in ${url.href} (use tcp://, tls://, ws:// or wss://)`,
      );
  }
};

// ---------------------------------------------------------------------------------------------------------
// In-memory pair

class MemoryEnd implements Transport {
  peer: MemoryEnd | undefined;
  private onData: ((chunk: Uint8Array) => void) | undefined;
  private early: Uint8Array[] = [];
  private isClosed = false;
  private resolveClosed!: (error: Error | undefined) => void;
  readonly closed = new Promise<Error | undefined>((resolve) => (this.resolveClosed = resolve));
  readonly bufferedAmount = 0;

  receive(onData: (chunk: Uint8Array) => void): void {
    this.onData = onData;
    const early = this.early;
    this.early = [];
    for (const chunk of early) onData(chunk);
  }

  send(bytes: Uint8Array): void {
    if (this.isClosed) return;
    // Copy: the sender may reuse its buffer, and delivery is asynchronous like a real network.
    const copy = bytes.slice();
    const peer = this.peer;
    queueMicrotask(() => peer?.deliver(copy));
  }

  close(): void {
    if (this.isClosed) return;
    // Deliver what was already sent before the peer sees the close, as TCP's FIN would.
    queueMicrotask(() => {
      this.shutdown(undefined);
      this.peer?.shutdown(undefined);
    });
  }

  /** Simulates a broken pipe (e.g. a reset): both ends close with `error`. */
  destroy(error: Error = new Error('memory transport destroyed')): void {
    this.shutdown(error);
    this.peer?.shutdown(error);
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  private deliver(chunk: Uint8Array): void {
    if (this.isClosed) return;
    if (this.onData) this.onData(chunk);
    else this.early.push(chunk);
  }

  private shutdown(error: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.resolveClosed(error);
  }
}

/** One end of an in-memory pair; `destroy` simulates a network failure. */
export interface MemoryTransport extends Transport {
  destroy(error?: Error): void;
  readonly isOpen: boolean;
}

/**
 * Two connected in-memory transports: what one sends, the other receives (asynchronously, in order).
 * Used for protocol tests and for embedding a client and a server in one process.
 */
export function createMemoryPair(): [MemoryTransport, MemoryTransport] {
  const a = new MemoryEnd();
  const b = new MemoryEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
