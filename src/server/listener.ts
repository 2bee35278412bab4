/**
 * The messaging port. One TCP listener serves the native protocol, HTTP and WebSocket: the first byte of
 * each connection decides (0x00 = a native frame's length prefix; an ASCII letter = an HTTP method).
 * It also owns connection accounting: max_connections, typed close reasons, and one shared heartbeat sweep
 * instead of a timer per connection.
 *
 * With TLS on, the first raw byte must be a TLS handshake record (0x16): the socket is handed to a
 * non-listening `tls.Server`, and the first *decrypted* byte is sniffed exactly as above, so native,
 * HTTPS and WSS share the port as before. A plaintext client on the TLS port is told so in its own
 * protocol (an ERR frame or an HTTP 400) and closed.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import {
  createServer as createTlsServer,
  type Server as TlsServer,
  type TLSSocket,
  type TlsOptions,
} from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { encodeError, MessagingError } from '../protocol/index.ts';
import type { HttpApi } from './http-api.ts';
import { Session, type CloseReason, type SessionContext } from './session.ts';
import { TcpTransport, WebSocketTransport, type TransportKind } from './transport.ts';

export interface ListenerOptions {
  host: string;
  port: number;
  maxConnections: number;
  tcpNoDelay: boolean;
  httpEnabled: boolean;
  webSocketEnabled: boolean;
  /** Idle time after which an HTTP keep-alive connection is closed. */
  httpIdleTimeoutMs: number;
  /** `tls.createServer` options (src/security/tls.ts); absent: plaintext. */
  tls?: TlsOptions;
}

/** Hooks the server uses to feed metrics. */
export interface ConnectionEvents {
  opened(kind: TransportKind | 'http'): void;
  closed(kind: TransportKind | 'http', reason: CloseReason): void;
}

const isAsciiLetter = (b: number): boolean => (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);

export class MessagingListener {
  private readonly net: NetServer;
  private readonly http: HttpServer;
  private readonly wss: WebSocketServer;
  private readonly tls: TlsServer | undefined;
  private readonly sessions = new Set<Session>();
  private readonly httpSockets = new Set<Socket>();
  /** Every accepted socket, so shutdown can destroy whatever outlives the drain deadline. */
  private readonly sockets = new Set<Socket>();
  private nextSessionId = 1;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private accepting = true;

  constructor(
    private readonly options: ListenerOptions,
    private readonly sessionContext: Omit<SessionContext, 'onClose'>,
    api: HttpApi,
    private readonly events: ConnectionEvents,
    private readonly logger: Logger,
  ) {
    this.net = createNetServer({ noDelay: options.tcpNoDelay }, (socket) => this.accept(socket));
    this.http = createHttpServer(
      {
        keepAliveTimeout: options.httpIdleTimeoutMs,
        headersTimeout: sessionContext.limits.handshakeTimeoutMs + 1000,
        requestTimeout: 60_000,
        // The header/request timeouts are enforced by this sweep; the default (30 s) would let a
        // slow-loris client hold a socket for far longer than connection_timeout_ms.
        connectionsCheckingInterval: Math.min(1000, sessionContext.limits.handshakeTimeoutMs),
      },
      api.handle,
    );
    this.wss = new WebSocketServer({ noServer: true, maxPayload: sessionContext.limits.maxFrameBytes * 4 });
    this.http.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
    // node:http starts the sweep that enforces headersTimeout/requestTimeout on 'listening'; this server
    // never listens (connections are handed to it), so without this a slow-loris client that drips
    // header bytes would hold its socket forever.
    this.http.emit('listening');
    if (options.tls) {
      this.tls = createTlsServer(
        // The TLS handshake gets the same deadline as the protocol handshake (slow-loris).
        { ...options.tls, handshakeTimeout: sessionContext.limits.handshakeTimeoutMs },
        (socket) => this.secured(socket),
      );
      this.tls.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
        this.logger.info(
          { remote: socket.remoteAddress, code: err.code, reason: err.message.split('\n')[0] },
          'refused TLS connection: handshake failed',
        );
        this.events.closed(
          'tcp',
          err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT' ? 'handshake_timeout' : 'handshake_failed',
        );
        socket.destroy();
      });
    }
  }

  get connectionCount(): number {
    return this.sessions.size + this.httpSockets.size;
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.net.once('error', reject);
      this.net.listen(this.options.port, this.options.host, () => {
        this.net.off('error', reject);
        resolve();
      });
    });
    if (this.sessionContext.limits.heartbeatMs > 0) {
      this.heartbeatTimer = setInterval(() => {
        for (const session of this.sessions) session.heartbeat();
      }, this.sessionContext.limits.heartbeatMs);
      this.heartbeatTimer.unref();
    }
    const address = this.net.address();
    return typeof address === 'object' && address ? address.port : this.options.port;
  }

  /** Stops accepting; existing connections carry on until `closeAll`. */
  stopAccepting(): Promise<void> {
    this.accepting = false;
    return new Promise((resolve) => this.net.close(() => resolve()));
  }

  /**
   * Graceful close: every session flushes and ends; after `deadlineMs` the stragglers are destroyed.
   */
  async closeAll(deadlineMs: number): Promise<void> {
    clearInterval(this.heartbeatTimer);
    for (const session of [...this.sessions]) {
      session.fail(
        new MessagingError('SERVER_SHUTTING_DOWN', 'the server is shutting down; reconnect to another'),
        'server_shutdown',
      );
    }
    for (const socket of this.httpSockets) socket.end();
    this.http.closeIdleConnections();
    // Stops the header-timeout sweep started in the constructor (the server itself never listened).
    this.http.close();
    const deadline = Date.now() + deadlineMs;
    while (this.sockets.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const socket of this.sockets) socket.destroy();
    for (const client of this.wss.clients) client.terminate();
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    if (this.tls) {
      this.acceptTls(socket, this.tls);
      return;
    }
    this.sniff(socket);
  }

  /** Hands a TLS client to the TLS server; refuses plaintext in the client's own protocol. */
  private acceptTls(socket: Socket, tls: TlsServer): void {
    socket.once('data', (first: Buffer) => {
      socket.setTimeout(0);
      if (!this.accepting) {
        socket.destroy();
        return;
      }
      const b = first[0]!;
      if (b === 0x16) {
        // A TLS record: put the bytes back; the TLS socket reads what the raw socket has buffered.
        // Paused first, or the flowing stream would re-emit them to no listener and lose them.
        socket.pause();
        socket.unshift(first);
        tls.emit('connection', socket);
        return;
      }
      this.logger.info(
        { remote: socket.remoteAddress, first: b },
        'refused plaintext connection on the TLS port: the client must use TLS (tls://, https://, wss://)',
      );
      const message = 'this port requires TLS: connect with tls://, https:// or wss://';
      if (b === 0x00) socket.end(encodeError(0, new MessagingError('PROTOCOL_ERROR', message).toWire()));
      else if (isAsciiLetter(b)) {
        const body = JSON.stringify({ code: 'PROTOCOL_ERROR', message });
        socket.end(
          `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
        );
      } else socket.destroy();
      this.events.closed('tcp', 'protocol_error');
    });
    socket.on('error', (err) => this.logger.debug({ err: err.message }, 'socket error'));
    socket.setTimeout(this.sessionContext.limits.handshakeTimeoutMs, () => {
      this.events.closed('tcp', 'handshake_timeout');
      socket.destroy();
    });
  }

  /**
   * A TLS handshake completed. With verify_client, a client whose certificate did not verify is told
   * why (AUTH_FAILED in its protocol) and closed; the reason is logged.
   */
  private secured(socket: TLSSocket): void {
    const requested = this.options.tls?.requestCert === true;
    if (requested && !socket.authorized) {
      const reason = String(socket.authorizationError ?? 'no client certificate');
      this.logger.info(
        { remote: socket.remoteAddress, reason },
        'refused TLS connection: the client certificate did not verify against ca_file',
      );
      const error = new MessagingError('AUTH_FAILED', `TLS client certificate refused: ${reason}`);
      socket.once('data', (first: Buffer) => {
        if (first[0] === 0x00) socket.end(encodeError(0, error.toWire()));
        else if (isAsciiLetter(first[0]!)) {
          const body = JSON.stringify(error.toWire());
          socket.end(
            `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
          );
        } else socket.destroy();
      });
      socket.on('error', () => {});
      socket.setTimeout(this.sessionContext.limits.handshakeTimeoutMs, () => socket.destroy());
      this.events.closed('tcp', 'auth_failed');
      return;
    }
    this.sniff(socket);
  }

  /** Reads the first (decrypted) byte and picks the protocol. */
  private sniff(socket: Socket): void {
    let sniffed = false;
    socket.once('data', (first: Buffer) => {
      sniffed = true;
      const b = first[0]!;
      if (!this.accepting) {
        socket.destroy();
        return;
      }
      if (b === 0x00) this.acceptNative(socket, first);
      else if (isAsciiLetter(b) && this.options.httpEnabled) this.acceptHttp(socket, first);
      else {
        this.logger.info(
          { remote: socket.remoteAddress, first: b },
          'refused connection: neither the native protocol nor HTTP',
        );
        socket.end(
          encodeError(
            0,
            new MessagingError(
              'PROTOCOL_ERROR',
              `unrecognised first byte 0x${b.toString(16).padStart(2, '0')}: expected a native frame (0x00) or HTTP`,
            ).toWire(),
          ),
        );
        this.events.closed('tcp', 'protocol_error');
      }
    });
    socket.on('error', (err) => this.logger.debug({ err: err.message }, 'socket error'));
    // A connection that never sends a byte is cut at the handshake deadline.
    socket.setTimeout(this.sessionContext.limits.handshakeTimeoutMs, () => {
      if (!sniffed) {
        this.events.closed('tcp', 'handshake_timeout');
        socket.destroy();
      }
    });
  }

  private atCapacity(): boolean {
    return this.connectionCount >= this.options.maxConnections;
  }

  private acceptNative(socket: Socket, first: Buffer): void {
    socket.setTimeout(0);
    if (this.atCapacity()) {
      const error = new MessagingError(
        'TOO_MANY_CONNECTIONS',
        `the server is at max_connections (${this.options.maxConnections}); try again later or another server`,
      );
      socket.end(encodeError(0, error.toWire()));
      this.logger.warn(
        { remote: socket.remoteAddress, limit: this.options.maxConnections },
        'refused connection: max_connections reached',
      );
      this.events.closed('tcp', 'max_connections');
      return;
    }
    const session = this.createSession(new TcpTransport(socket));
    socket.on('data', (chunk: Buffer) => session.receive(chunk));
    socket.on('close', (hadError) => session.transportClosed(hadError));
    session.receive(first);
  }

  private acceptHttp(socket: Socket, first: Buffer): void {
    socket.setTimeout(0);
    if (this.atCapacity()) {
      const body = JSON.stringify({
        code: 'TOO_MANY_CONNECTIONS',
        message: `the server is at max_connections (${this.options.maxConnections})`,
      });
      socket.end(
        `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
      this.events.closed('http', 'max_connections');
      return;
    }
    this.httpSockets.add(socket);
    this.events.opened('http');
    socket.on('close', () => {
      // An upgraded socket is accounted as a WebSocket session from then on.
      if (this.httpSockets.delete(socket)) this.events.closed('http', 'client_closed');
    });
    socket.unshift(first);
    this.http.emit('connection', socket);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (!this.options.webSocketEnabled || path !== '/v1/ws') {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    this.httpSockets.delete(socket as Socket);
    this.events.closed('http', 'client_closed');
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const session = this.createSession(
        new WebSocketTransport(ws, `${req.socket.remoteAddress ?? '?'}:${req.socket.remotePort ?? 0}`),
      );
      ws.on('message', (data, isBinary) => {
        if (!isBinary) {
          session.fail(
            new MessagingError(
              'PROTOCOL_ERROR',
              'WebSocket text messages are not accepted; send native frames as binary messages',
            ),
            'protocol_error',
          );
          return;
        }
        session.receive(
          Array.isArray(data) ? Buffer.concat(data) : new Uint8Array(data as ArrayBuffer | Buffer),
        );
      });
      ws.on('close', () => session.transportClosed(false));
      ws.on('error', () => session.transportClosed(true));
    });
  }

  private createSession(transport: TcpTransport | WebSocketTransport): Session {
    const session = new Session(this.nextSessionId++, transport, {
      ...this.sessionContext,
      onClose: (s, reason) => {
        this.sessions.delete(s);
        this.events.closed(transport.kind, reason);
        this.logger.debug({ conn: s.id, reason }, 'connection closed');
      },
    });
    this.sessions.add(session);
    this.events.opened(transport.kind);
    return session;
  }
}
