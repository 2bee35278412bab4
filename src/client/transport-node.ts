/**
 * TCP and TLS transports for Node. The only client module that touches `node:*`; `transport.ts` loads it
 * with a dynamic import so browser bundles never see it.
 */
import type { Socket } from 'node:net';
import type { Transport, TransportOptions } from './transport.ts';

class SocketTransport implements Transport {
  private onData: ((chunk: Uint8Array) => void) | undefined;
  private early: Uint8Array[] = [];
  private error: Error | undefined;
  readonly closed: Promise<Error | undefined>;

  constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      if (this.onData) this.onData(chunk);
      else this.early.push(chunk);
    });
    // Keep the first error: 'close' follows it and is what settles `closed`.
    socket.on('error', (err) => (this.error ??= err));
    this.closed = new Promise((resolve) => socket.once('close', () => resolve(this.error)));
  }

  receive(onData: (chunk: Uint8Array) => void): void {
    this.onData = onData;
    const early = this.early;
    this.early = [];
    for (const chunk of early) onData(chunk);
  }

  send(bytes: Uint8Array): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.socket.write(bytes);
  }

  close(): void {
    if (this.socket.destroyed) return;
    // end() writes what is queued, then sends FIN; destroy() as a backstop for a peer that never closes.
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), 2000);
    timer.unref();
  }

  get bufferedAmount(): number {
    return this.socket.writableLength;
  }
}

function hostAndPort(url: URL): { host: string; port: number } {
  // URL keeps IPv6 literals in brackets; net.connect wants them bare.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const port = url.port ? Number(url.port) : 8080;
  return { host, port };
}

/**
 * Loads a Node built-in by a computed name, so that browser bundlers (esbuild, Vite, webpack) leave the
 * import alone instead of failing to resolve `node:net` — this module only ever runs in Node.
 */
function nodeBuiltin<T>(name: string): Promise<T> {
  return import(/* @vite-ignore */ /* webpackIgnore: true */ `node:${name}`) as Promise<T>;
}

/** Opens `tcp://host:port` or `tls://host:port`; rejects on refusal, TLS failure or timeout. */
export async function openNodeTransport(url: URL, options: TransportOptions): Promise<Transport> {
  const { host, port } = hostAndPort(url);
  let socket: Socket;
  let readyEvent: string;
  if (url.protocol === 'tls:') {
    const tls = await nodeBuiltin<typeof import('node:tls')>('tls');
    const t = options.tls ?? {};
    socket = tls.connect({
      host,
      port,
      ca: t.ca as string | Buffer | Array<string | Buffer> | undefined,
      cert: t.cert as string | Buffer | undefined,
      key: t.key as string | Buffer | undefined,
      rejectUnauthorized: t.rejectUnauthorized ?? true,
      // SNI must not be an IP address.
      servername: t.servername ?? (/^[\d.:]+$/.test(host) ? undefined : host),
      minVersion: 'TLSv1.2',
    });
    readyEvent = 'secureConnect';
  } else {
    const net = await nodeBuiltin<typeof import('node:net')>('net');
    socket = net.connect({ host, port });
    readyEvent = 'connect';
  }
  socket.setNoDelay(true);

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      socket.destroy();
      reject(new Error(`connect timed out after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    const onReady = (): void => {
      cleanup();
      resolve();
    };
    const onError = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off(readyEvent, onReady);
      socket.off('error', onError);
    };
    socket.once(readyEvent, onReady);
    socket.once('error', onError);
  });
  return new SocketTransport(socket);
}
