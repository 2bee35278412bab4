/**
 * The admin HTTP server on `[monitoring] metrics_port` (9090): health, readiness and Prometheus metrics,
 * exactly at the paths the deployment guide and its Kubernetes probes use. Plain `node:http`: five routes
 * do not need a framework, and this port must keep answering when the broker is overloaded.
 *
 * Later routes (the JSON admin API under `/v1/...`) plug in through `handle`, which sees every request the
 * built-in routes did not take; `sendJson` and `sendError` give them the same response shapes.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ErrorCode } from '../protocol/errors.ts';
import { detailedHealthBody, EventLoopMonitor, healthBody, readiness, type HealthSource } from './health.ts';

/**
 * A fallback for requests no built-in route matched. Return `true` if it responded (or will); `false`
 * to let the server answer 404. It must do its own method checks. A throw becomes a 500.
 */
export type AdminHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
) => boolean | Promise<boolean>;

export interface AdminServerOptions {
  /** `[network] bind_address`-style host. Default `0.0.0.0` (Prometheus and the kubelet scrape from outside). */
  host?: string;
  /** `[monitoring] metrics_port`; 0 picks a free port (tests). Default 9090. */
  port?: number;
  /** `[monitoring] metrics_path`. Default `/metrics`. */
  metricsPath?: string;
  registry: Registry;
  health: HealthSource;
  logger: Logger;
  /** Reported in `/health` (`"version": "1.0.0"`). */
  version: string;
  handle?: AdminHandler;
  /**
   * Checks every request that is not health, readiness or metrics (those stay open for probes and
   * scrapers) before `handle` sees it: API_KEY (src/security). Returns false when it has answered.
   */
  guard?: (req: IncomingMessage, res: ServerResponse, url: URL) => boolean;
}

export interface AdminServer {
  /** The bound port (the real one when `port` was 0). */
  readonly port: number;
  readonly host: string;
  readonly server: Server;
  /** Stops accepting, lets in-flight requests finish for up to a second, then closes every socket. */
  close(): Promise<void>;
}

/** Routes this server owns; `metricsPath` may not shadow them. */
const RESERVED_PATHS = ['/health', '/health/detailed', '/ready'];
/** How long `close()` waits for in-flight requests before cutting their sockets. */
const CLOSE_GRACE_MS = 1000;

/** Sends a JSON body. Health and metrics are never cacheable: a cached "healthy" would hide an outage. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

/** Sends the error shape every HTTP front door uses: `{ "code", "message" }` with a catalogue code. */
export function sendError(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  sendJson(res, status, { code, message });
}

/** The request target as a URL; `null` when it cannot be parsed. */
function requestUrl(req: IncomingMessage): URL | null {
  const target = req.url ?? '/';
  try {
    // Origin-form targets ("/health?x") are the norm; prefixing keeps "//x" a path instead of a host.
    return new URL(target.startsWith('/') ? `http://admin${target}` : target);
  } catch {
    return null;
  }
}

/** Starts listening; rejects if the port cannot be bound (e.g. EADDRINUSE). */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const host = options.host ?? '0.0.0.0';
  const metricsPath = options.metricsPath ?? '/metrics';
  if (!metricsPath.startsWith('/') || RESERVED_PATHS.includes(metricsPath)) {
    throw new RangeError(
      `metrics_path must start with "/" and differ from ${RESERVED_PATHS.join(', ')}: "${metricsPath}"`,
    );
  }
  const { registry, health, version } = options;
  const log = options.logger.child({ module: 'admin' });
  const loop = new EventLoopMonitor();

  const routes = new Map<string, (res: ServerResponse) => void | Promise<void>>([
    [
      '/health',
      (res) => {
        const body = healthBody(health, version);
        sendJson(res, body.status === 'unhealthy' ? 503 : 200, body);
      },
    ],
    [
      '/health/detailed',
      (res) => {
        const body = detailedHealthBody(health, version, loop);
        sendJson(res, body.status === 'unhealthy' ? 503 : 200, body);
      },
    ],
    [
      '/ready',
      (res) => {
        const body = readiness(health);
        sendJson(res, body.ready ? 200 : 503, body);
      },
    ],
    [
      metricsPath,
      async (res) => {
        const text = await registry.metrics();
        res.writeHead(200, {
          'content-type': registry.contentType,
          'content-length': Buffer.byteLength(text),
          'cache-control': 'no-store',
        });
        res.end(text);
      },
    ],
  ]);

  async function dispatch(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const route = routes.get(url.pathname);
    if (route === undefined) {
      if (options.guard && !options.guard(req, res, url)) return;
      if (options.handle && (await options.handle(req, res, url))) return;
      sendError(res, 404, 'NOT_FOUND', `No route for ${url.pathname}`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      // The catalogue has no method code yet; BAD_REQUEST with HTTP 405 and an Allow header says it all.
      sendError(
        res,
        405,
        'BAD_REQUEST',
        `Method ${req.method ?? '?'} is not allowed on ${url.pathname}; use GET`,
      );
      return;
    }
    // HEAD gets the same status and headers; node:http drops the body by itself.
    await route(res);
  }

  const server = createServer(
    // Short limits: only probes and scrapers talk to this port, and a slow client must not hold sockets.
    { headersTimeout: 10_000, requestTimeout: 30_000 },
    (req, res) => {
      const started = performance.now();
      const url = requestUrl(req);
      const done = (): void =>
        log.debug(
          {
            method: req.method,
            path: url?.pathname ?? req.url,
            status: res.statusCode,
            ms: performance.now() - started,
          },
          'admin request',
        );
      if (url === null) {
        sendError(res, 400, 'BAD_REQUEST', 'Malformed request target');
        done();
        return;
      }
      dispatch(req, res, url).then(done, (err: unknown) => {
        log.error({ err, method: req.method, path: url.pathname }, 'admin request failed');
        if (!res.headersSent) sendError(res, 500, 'INTERNAL', 'Internal error while handling the request');
        else res.destroy();
        done();
      });
    },
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 9090, host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    loop.close();
    throw err;
  });
  server.on('error', (err) => log.error({ err }, 'admin server error'));

  const port = (server.address() as AddressInfo).port;
  log.info({ host, port, metrics_path: metricsPath }, 'admin server listening');

  let closing: Promise<void> | undefined;
  return {
    port,
    host,
    server,
    close() {
      closing ??= new Promise<void>((resolve, reject) => {
        loop.close();
        const force = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
        force.unref();
        server.close((err) => {
          clearTimeout(force);
          if (err) reject(err);
          else {
            log.info({ port }, 'admin server closed');
            resolve();
          }
        });
        // Keep-alive sockets with no request in flight would otherwise hold close() for keepAliveTimeout.
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
