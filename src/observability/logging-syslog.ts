/**
 * `[logging] syslog.*`: each log line sent to a remote syslog server as an RFC 5424 message, over UDP
 * (RFC 5426: one message per datagram) or TCP (RFC 6587 non-transparent framing: one message per line,
 * which rsyslog, syslog-ng, Logstash and Graylog all accept; JSON lines never contain a raw newline).
 *
 *     <134>1 2025-01-02T03:04:05.678Z web-1 messaging_server 4242 network - {"level":"info",…}
 *
 * PRI is facility × 8 + severity with facility `user` (1) and severity from the line's level; MSGID is
 * the line's `module`. The MSG part is the line as the console gets it (JSON, or text with
 * `format = text`).
 *
 * Logging must never stop or slow the broker: nothing here throws to the caller or blocks. Over TCP,
 * lines written while the connection is down wait in a bounded buffer (oldest dropped first) and the
 * connection is retried with capped exponential backoff; dropped lines are counted and reported once
 * the connection is back. The pino-syslog / pino-socket pair was not used: pino-syslog expects numeric
 * levels and epoch-millisecond times (our lines carry level names and ISO times), and pino-socket's
 * entry point waits for the first connection, so a syslog host that is down would hold up start-up.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect as tcpConnect, type Socket as TcpSocket } from 'node:net';

export type SyslogProtocol = 'udp' | 'tcp';

export interface SyslogOptions {
  /** `host:port`, `host` (port 514) or `[v6addr]:port`. */
  readonly address: string;
  readonly protocol: SyslogProtocol;
  /** APP-NAME. Default `messaging_server`. */
  readonly appName?: string;
  /** Bytes of unsent messages kept while a TCP connection is down. Default 1 MiB. */
  readonly maxBufferedBytes?: number;
  /** Where the sender reports its own trouble (never the logger it serves). Default: stderr. */
  readonly onProblem?: (message: string) => void;
}

/** RFC 5424 severities by pino level name. */
const SEVERITY: Readonly<Record<string, number>> = {
  trace: 7,
  debug: 7,
  info: 6,
  warn: 4,
  error: 3,
  fatal: 2,
};
const FACILITY_USER = 1;
/** Largest UDP payload over IPv4; a longer message is cut rather than failing with EMSGSIZE. */
const MAX_DATAGRAM = 65_000;

export function parseSyslogAddress(address: string): { host: string; port: number } {
  const text = address.trim();
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) return { host: bracketed[1] ?? '', port: Number(bracketed[2] ?? 514) };
  const colon = text.lastIndexOf(':');
  // More than one colon without brackets is a bare IPv6 address.
  if (colon < 0 || text.indexOf(':') !== colon) return { host: text, port: 514 };
  const port = Number(text.slice(colon + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`syslog.address "${address}": port must be 1-65535`);
  }
  return { host: text.slice(0, colon), port };
}

/** SD-NAME / APP-NAME / MSGID: printable US-ASCII without spaces, bounded length; `-` when empty. */
function token(value: unknown, max: number): string {
  if (typeof value !== 'string' && typeof value !== 'number') return '-';
  const cleaned = String(value)
    .replace(/[^\x21-\x7e]/g, '_')
    .slice(0, max);
  return cleaned === '' ? '-' : cleaned;
}

/**
 * Builds the RFC 5424 message for one log line. `json` is the line as pino wrote it (used for the header
 * fields); `body` is what goes into MSG (the JSON itself, or its text rendering).
 */
export function formatSyslogMessage(json: string, body: string, appName: string, host: string): string {
  let record: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(json);
    if (parsed !== null && typeof parsed === 'object') record = parsed as Record<string, unknown>;
  } catch {
    // Not JSON: sent as it is, with the header fields defaulted.
  }
  const severity = SEVERITY[String(record['level'])] ?? 6;
  const time = typeof record['time'] === 'string' ? record['time'] : new Date().toISOString();
  const pid = typeof record['pid'] === 'number' ? record['pid'] : process.pid;
  const header =
    `<${FACILITY_USER * 8 + severity}>1 ${token(time, 64)} ${token(record['hostname'] ?? host, 255)} ` +
    `${token(appName, 48)} ${token(pid, 128)} ${token(record['module'], 32)} -`;
  return `${header} ${body.replace(/\n+$/, '')}`;
}

/** Sends formatted messages to one syslog server. */
export class SyslogSender {
  private readonly host: string;
  private readonly port: number;
  private readonly protocol: SyslogProtocol;
  private readonly maxBuffered: number;
  private readonly report: (message: string) => void;
  private udp: UdpSocket | undefined;
  private udpReady = false;
  private tcp: TcpSocket | undefined;
  private tcpConnected = false;
  /** Messages waiting for a connection (TCP) or for the UDP socket to be bound. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private dropped = 0;
  private retryMs = 100;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastProblem = '';

  constructor(options: SyslogOptions) {
    const { host, port } = parseSyslogAddress(options.address);
    this.host = host;
    this.port = port;
    this.protocol = options.protocol;
    this.maxBuffered = options.maxBufferedBytes ?? 1024 * 1024;
    this.report = options.onProblem ?? ((m) => process.stderr.write(`messaging_server: ${m}\n`));
    if (this.protocol === 'udp') this.openUdp();
    else this.openTcp();
  }

  /** Queues or sends one message (no framing: added here per transport). */
  send(message: string): void {
    if (this.closed) return;
    if (this.protocol === 'udp') {
      const bytes = Buffer.from(message).subarray(0, MAX_DATAGRAM);
      if (this.udp && this.udpReady) this.udp.send(bytes, (err) => err && this.problem(err));
      else this.enqueue(bytes);
      return;
    }
    const bytes = Buffer.from(`${message}\n`);
    if (!this.tcp || !this.tcpConnected) {
      this.enqueue(bytes);
    } else if (this.tcp.writableLength < this.maxBuffered) {
      this.tcp.write(bytes);
    } else {
      // The server reads slower than we log: drop rather than let memory grow without bound.
      this.dropped++;
      this.problem(new Error('the server is not keeping up; dropping log lines'));
    }
  }

  /** Sends what is buffered (best effort, at most `timeoutMs`) and closes the socket. */
  async close(timeoutMs = 1000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    const udp = this.udp;
    const tcp = this.tcp;
    if (udp) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        // Sends already handed to the socket complete before close's callback.
        udp.close(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (tcp) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          tcp.destroy();
          resolve();
        }, timeoutMs);
        tcp.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        if (this.tcpConnected) tcp.end();
        else tcp.destroy();
      });
    }
  }

  private enqueue(bytes: Buffer): void {
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    while (this.pendingBytes > this.maxBuffered && this.pending.length > 0) {
      const oldest = this.pending.shift();
      this.pendingBytes -= oldest?.length ?? 0;
      this.dropped++;
    }
  }

  private flushPending(write: (bytes: Buffer) => void): void {
    const queued = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (this.dropped > 0) {
      this.report(`syslog ${this.describe()}: ${this.dropped} log line(s) dropped while it was unreachable`);
      this.dropped = 0;
    }
    for (const bytes of queued) write(bytes);
  }

  private describe(): string {
    return `${this.protocol}://${this.host}:${this.port}`;
  }

  /** Reports a problem once until a different one happens, so a dead server does not flood stderr. */
  private problem(err: Error): void {
    const text = `syslog ${this.describe()}: ${err.message}`;
    if (text === this.lastProblem) return;
    this.lastProblem = text;
    this.report(text);
  }

  private openUdp(): void {
    const socket = createSocket(this.host.includes(':') ? 'udp6' : 'udp4');
    this.udp = socket;
    socket.on('error', (err) => this.problem(err));
    // A connected UDP socket resolves the name once and reports ICMP errors back to us.
    socket.connect(this.port, this.host, () => {
      this.udpReady = true;
      this.flushPending((bytes) => socket.send(bytes, (err) => err && this.problem(err)));
    });
    socket.unref();
  }

  private openTcp(): void {
    const socket = tcpConnect({ host: this.host, port: this.port });
    this.tcp = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.on('connect', () => {
      this.tcpConnected = true;
      this.retryMs = 100;
      this.lastProblem = '';
      this.flushPending((bytes) => socket.write(bytes));
    });
    socket.on('error', (err) => this.problem(err));
    socket.on('close', () => {
      this.tcpConnected = false;
      if (this.closed) return;
      this.retryTimer = setTimeout(() => this.openTcp(), this.retryMs);
      this.retryTimer.unref();
      this.retryMs = Math.min(this.retryMs * 2, 30_000);
    });
    // Logging alone must not keep the process alive.
    socket.unref();
  }
}
