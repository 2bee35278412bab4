/**
 * WebSocket transport (`ws://host:port/v1/ws`, `wss://…`). Browser-safe: it uses `globalThis.WebSocket`
 * or the constructor given in the options (Node 20 has no global WebSocket; pass the `ws` package's).
 *
 * The protocol requires that one WebSocket message never splits a frame. The connection flushes whole
 * frames per `send`, and each `send` becomes exactly one binary message, so that holds by construction.
 */
import { MessagingError } from '../protocol/index.ts';
import type { Transport, TransportOptions, WebSocketConstructor, WebSocketLike } from './transport.ts';

const OPEN = 1;

class WebSocketTransport implements Transport {
  private onData: ((chunk: Uint8Array) => void) | undefined;
  private early: Uint8Array[] = [];
  private error: Error | undefined;
  private resolveClosed!: (error: Error | undefined) => void;
  readonly closed = new Promise<Error | undefined>((resolve) => (this.resolveClosed = resolve));

  constructor(private readonly ws: WebSocketLike) {
    ws.onmessage = (event: { data: unknown }) => {
      const chunk = toBytes(event.data);
      if (!chunk) {
        // The server only sends binary messages; a text message means we are not talking to it.
        this.error ??= new MessagingError('PROTOCOL_ERROR', 'unexpected text WebSocket message');
        this.ws.close(1002, 'binary frames only');
        return;
      }
      if (this.onData) this.onData(chunk);
      else this.early.push(chunk);
    };
    ws.onerror = (event: { message?: string; error?: unknown }) => {
      this.error ??= wsError(event);
    };
    ws.onclose = (event: { code: number; reason: string }) => {
      // 1000 (normal) and 1005 (no status) are orderly; anything else broke the pipe.
      if (event.code !== 1000 && event.code !== 1005) {
        this.error ??= new Error(
          `WebSocket closed with code ${event.code}${event.reason ? `: ${event.reason}` : ''}`,
        );
      }
      this.resolveClosed(this.error);
    };
  }

  receive(onData: (chunk: Uint8Array) => void): void {
    this.onData = onData;
    const early = this.early;
    this.early = [];
    for (const chunk of early) onData(chunk);
  }

  send(bytes: Uint8Array): void {
    if (this.ws.readyState !== OPEN) return;
    this.ws.send(bytes);
  }

  close(): void {
    // close() lets already-queued messages go out first (RFC 6455 closing handshake).
    this.ws.close(1000);
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }
}

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}

function wsError(event: { message?: string; error?: unknown }): Error {
  if (event.error instanceof Error) return event.error;
  return new Error(event.message || 'WebSocket error');
}

/** Opens a WebSocket to `url` (path defaults to `/v1/ws`); rejects on failure or timeout. */
export async function openWebSocketTransport(url: URL, options: TransportOptions): Promise<Transport> {
  const Ctor: WebSocketConstructor | undefined =
    options.webSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!Ctor) {
    throw new MessagingError(
      'BAD_REQUEST',
      'no WebSocket implementation: pass `webSocket` in the connect options (e.g. the `ws` package)',
    );
  }
  const target = new URL(url.href);
  if (target.pathname === '/' || target.pathname === '') target.pathname = '/v1/ws';
  const ws = new Ctor(target.href);
  ws.binaryType = 'arraybuffer';

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.onopen = ws.onerror = ws.onclose = null;
      ws.close();
      reject(new Error(`connect timed out after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    let failure: Error | undefined;
    ws.onopen = () => {
      clearTimeout(timer);
      resolve();
    };
    ws.onerror = (event: { message?: string; error?: unknown }) => {
      failure ??= wsError(event);
    };
    ws.onclose = (event: { code: number; reason: string }) => {
      clearTimeout(timer);
      reject(failure ?? new Error(`WebSocket closed during connect (code ${event.code})`));
    };
  });
  return new WebSocketTransport(ws);
}
