/**
 * The seam between a protocol session and the bytes: TCP sockets and WebSocket connections both
 * implement it, so the session never knows which one it is talking over.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

export type TransportKind = 'tcp' | 'websocket';

export interface ServerTransport {
  readonly kind: TransportKind;
  readonly remoteAddress: string;
  /** Sends bytes; the transport may buffer them (see `bufferedBytes`). */
  write(bytes: Uint8Array): void;
  /** Bytes accepted by `write` but not yet handed to the kernel. */
  bufferedBytes(): number;
  /** Flushes what was written, then closes. */
  end(): void;
  /** Closes at once, dropping anything unsent. */
  destroy(): void;
}

export class TcpTransport implements ServerTransport {
  readonly kind = 'tcp';
  readonly remoteAddress: string;

  constructor(private readonly socket: Socket) {
    this.remoteAddress = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
  }

  write(bytes: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }

  bufferedBytes(): number {
    return this.socket.writableLength;
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export class WebSocketTransport implements ServerTransport {
  readonly kind = 'websocket';

  constructor(
    private readonly ws: WebSocket,
    readonly remoteAddress: string,
  ) {}

  write(bytes: Uint8Array): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(bytes, { binary: true });
  }

  bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  end(): void {
    this.ws.close(1000);
  }

  destroy(): void {
    this.ws.terminate();
  }
}
