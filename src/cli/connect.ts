/** Global options and the one place the CLI opens connections. */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import {
  DEFAULT_SERVER,
  connect,
  type Connection,
  type ConnectOptions,
  type WebSocketConstructor,
} from '../client/index.ts';
import { CliError, describeError, type ErrorContext } from './errors.ts';
import { note } from './io.ts';

/** Options every command accepts (declared on the root program). */
export interface GlobalOptions {
  server?: string;
  token?: string;
  timeout?: number;
  ca?: string;
  cert?: string;
  key?: string;
}

export const DEFAULT_TIMEOUT_MS = 5000;

/** commander argument parser for positive integers (counts, sizes, milliseconds). */
export function positiveInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer.`);
    return n;
  };
}

/** commander collector for repeatable `--header k=v`. */
export function collectHeader(value: string, previous: string[] = []): string[] {
  if (!/^[^=]+=/.test(value)) throw new InvalidArgumentError('headers are written key=value.');
  return [...previous, value];
}

export function headersFrom(list: string[] | undefined): Record<string, string> | undefined {
  if (!list || list.length === 0) return undefined;
  const headers: Record<string, string> = {};
  for (const item of list) {
    const at = item.indexOf('=');
    headers[item.slice(0, at).trim()] = item.slice(at + 1);
  }
  return headers;
}

/** Adds the global options to the root program. */
export function addGlobalOptions(program: Command): Command {
  return program
    .option(
      '--server <url>',
      `server URL: tcp://, tls://, ws:// (env MESSAGING_URL; default ${DEFAULT_SERVER})`,
    )
    .option('--token <jwt>', 'authentication token (env MESSAGING_TOKEN)')
    .option(
      '--timeout <ms>',
      `connect, request and confirm timeout in ms (default ${DEFAULT_TIMEOUT_MS})`,
      positiveInt('--timeout'),
    )
    .option('--ca <file>', 'CA certificate (PEM) to verify a tls:// server')
    .option('--cert <file>', 'client certificate (PEM) for tls://')
    .option('--key <file>', 'client private key (PEM) for tls://');
}

export function serverFrom(opts: GlobalOptions): string {
  return opts.server ?? process.env['MESSAGING_URL'] ?? DEFAULT_SERVER;
}

export function timeoutFrom(opts: GlobalOptions): number {
  return opts.timeout ?? DEFAULT_TIMEOUT_MS;
}

function readPem(option: string, file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${option} ${file}: ${(err as Error).message}`);
  }
}

/**
 * Connects with the global options. `extra` lets a command choose e.g. `reconnect` (short-lived
 * commands fail fast, long-running ones ride out a server restart and say so on stderr).
 */
export async function connectFromOptions(
  opts: GlobalOptions,
  extra: Partial<ConnectOptions> = {},
): Promise<Connection> {
  const server = serverFrom(opts);
  const options: ConnectOptions = {
    servers: server,
    name: 'messaging-cli',
    token: opts.token ?? process.env['MESSAGING_TOKEN'],
    timeoutMs: timeoutFrom(opts),
    reconnect: false,
    ...extra,
  };
  if (opts.ca || opts.cert || opts.key) {
    options.tls = {
      ca: readPem('--ca', opts.ca),
      cert: readPem('--cert', opts.cert),
      key: readPem('--key', opts.key),
    };
  }
  if (/^wss?:/i.test(server)) {
    // The SDK stays dependency-free; the CLI runs in Node 20, which has no global WebSocket.
    const { WebSocket } = await import('ws');
    const tls = options.tls;
    if (tls) {
      // wss:// with --ca/--cert/--key: the `ws` package takes them as constructor options.
      const pem = {
        ca: tls.ca as string | undefined,
        cert: tls.cert as string | undefined,
        key: tls.key as string | undefined,
      };
      options.webSocket = class extends WebSocket {
        constructor(url: string) {
          super(url, pem);
        }
      } as unknown as WebSocketConstructor;
    } else options.webSocket = WebSocket;
  }
  let connection: Connection;
  try {
    connection = await connect(options);
  } catch (err) {
    throw describeError(err, { server });
  }
  if (options.reconnect) {
    connection.on('disconnect', ({ error }) => note(`connection lost (${error.message}); reconnecting…`));
    connection.on('reconnect', ({ server: url }) => note(`reconnected to ${url}`));
  }
  return connection;
}

/**
 * Runs a short command on a fresh connection and closes it; an error becomes the CLI's advice for
 * `ctx` (e.g. which queue to create).
 */
export async function withConnection<T>(
  opts: GlobalOptions,
  ctx: Omit<ErrorContext, 'server'>,
  fn: (connection: Connection) => Promise<T>,
): Promise<T> {
  const conn = await connectFromOptions(opts);
  try {
    return await fn(conn);
  } catch (err) {
    throw describeError(err, { server: serverFrom(opts), ...ctx });
  } finally {
    await conn.close();
  }
}

/** Writes `text` to stdout and resolves once it is accepted (before the process may exit). */
export function print(text: string): Promise<void> {
  return new Promise((resolve) =>
    process.stdout.write(text.endsWith('\n') ? text : `${text}\n`, () => resolve()),
  );
}
