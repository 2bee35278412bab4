/**
 * The REST front door on the messaging port: JSON in, JSON out, errors as `{code, message}` with the
 * catalogue's HTTP status. Routes are a plain table; features add theirs with `route()`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Broker, RoutedMessage } from '../core/broker.ts';
import type { PubSubMessage, Subscriber } from '../core/pubsub.ts';
import { MessagingError, ulidToString, type MessageMeta } from '../protocol/index.ts';
import type { HttpGuard } from '../security/http-guard.ts';
import type { Identity } from '../security/permissions.ts';

export interface HttpRequest {
  method: string;
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  body: Record<string, unknown>;
  headers: IncomingMessage['headers'];
  remoteAddress: string;
  /** Who sent it, set by the security guard; handlers call `authorize(req.identity, 'tasks', name)`. */
  identity?: Identity;
}

export interface HttpReply {
  status?: number;
  body: unknown;
  headers?: Record<string, string>;
}

export type HttpHandler = (req: HttpRequest) => HttpReply | Promise<HttpReply>;

interface Route {
  method: string;
  parts: string[];
  handler: HttpHandler;
}

export class HttpApi {
  private readonly routes: Route[] = [];
  /** Authentication, rate limits, authorization and audit for every route (src/security); unset = off. */
  guard: Pick<HttpGuard, 'run'> | undefined;

  constructor(private readonly maxBodyBytes: number) {}

  /** Registers `METHOD /v1/path/{param}`. */
  route(method: string, path: string, handler: HttpHandler): void {
    this.routes.push({ method, parts: path.split('/').filter(Boolean), handler });
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    this.dispatch(req).then(
      (reply) => send(res, reply.status ?? 200, reply.body, reply.headers),
      (err: unknown) => sendError(res, err),
    );
  };

  private async dispatch(req: IncomingMessage): Promise<HttpReply> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const parts = url.pathname.split('/').filter(Boolean);
    let pathMatched = false;
    for (const route of this.routes) {
      const params = matchPath(route.parts, parts);
      if (!params) continue;
      pathMatched = true;
      if (route.method !== req.method) continue;
      const body =
        req.method === 'GET' || req.method === 'DELETE' ? {} : await readJson(req, this.maxBodyBytes);
      const request: HttpRequest = {
        method: req.method,
        path: url.pathname,
        params,
        query: url.searchParams,
        body,
        headers: req.headers,
        remoteAddress: req.socket.remoteAddress ?? '?',
      };
      if (this.guard) {
        return this.guard.run(request, `${route.method} /${route.parts.join('/')}`, () =>
          route.handler(request),
        );
      }
      return route.handler(request);
    }
    if (pathMatched)
      return {
        status: 405,
        body: { code: 'BAD_REQUEST', message: `${req.method} is not allowed on ${url.pathname}` },
      };
    throw new MessagingError('NOT_FOUND', `no route ${req.method} ${url.pathname}; see docs/http-api.md`);
  }
}

function matchPath(pattern: string[], parts: string[]): Record<string, string> | undefined {
  if (pattern.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const actual = parts[i]!;
    if (p.startsWith('{') && p.endsWith('}')) params[p.slice(1, -1)] = decodeURIComponent(actual);
    else if (p !== actual) return undefined;
  }
  return params;
}

async function readJson(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) {
    req.resume();
    throw new MessagingError('PAYLOAD_TOO_LARGE', `request body of ${declared} bytes exceeds ${limit} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new MessagingError('PAYLOAD_TOO_LARGE', `request body exceeds ${limit} bytes`);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new MessagingError('BAD_REQUEST', 'the request body is not valid JSON');
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new MessagingError('BAD_REQUEST', 'the request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

function send(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  const error =
    err instanceof MessagingError
      ? err
      : new MessagingError('INTERNAL', 'internal server error; the server log has details');
  const headers: Record<string, string> = {};
  const retryAfter = error.details?.retry_after_ms;
  if (typeof retryAfter === 'number') headers['retry-after'] = String(Math.ceil(retryAfter / 1000));
  if (error.httpStatus === 401) headers['www-authenticate'] = 'Bearer realm="messaging"';
  if (!res.headersSent) send(res, error.httpStatus, error.toWire(), headers);
  else res.destroy();
}

// ---------------------------------------------------------------------------------------------------------
// Payload and message helpers shared by REST routes.

/** `payload` (UTF-8 text), `payload_base64`, or `json` (any JSON value, serialised). */
export function payloadFromBody(body: Record<string, unknown>): Uint8Array {
  if (typeof body.payload_base64 === 'string') return Buffer.from(body.payload_base64, 'base64');
  if (typeof body.payload === 'string') return Buffer.from(body.payload, 'utf8');
  if (body.json !== undefined) return Buffer.from(JSON.stringify(body.json), 'utf8');
  if (body.payload === undefined) return new Uint8Array(0);
  throw new MessagingError('BAD_REQUEST', '"payload" must be a string (or use "payload_base64" or "json")');
}

const META_KEYS = [
  'headers',
  'priority',
  'ttl_ms',
  'correlation_id',
  'type',
  'traceparent',
  'deliver_at',
] as const;

export function metaFromBody(body: Record<string, unknown>): MessageMeta | undefined {
  let meta: Record<string, unknown> | undefined;
  for (const key of META_KEYS) {
    if (body[key] !== undefined) (meta ??= {})[key] = body[key];
  }
  if (meta?.headers !== undefined) {
    const h = meta.headers as unknown;
    if (
      !h ||
      typeof h !== 'object' ||
      Array.isArray(h) ||
      Object.values(h).some((v) => typeof v !== 'string')
    ) {
      throw new MessagingError('BAD_REQUEST', '"headers" must be an object of string values');
    }
  }
  return meta as MessageMeta | undefined;
}

export function requireString(body: Record<string, unknown>, key: string): string {
  const value = body[key];
  if (typeof value !== 'string' || value.length === 0)
    throw new MessagingError('BAD_REQUEST', `"${key}" must be a non-empty string`);
  return value;
}

/** A routed message as REST shows it: payload as text when it is UTF-8, otherwise base64. */
export function messageToJson(message: RoutedMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { id: ulidToString(message.msgId), topic: message.topic };
  if (message.reply) out.reply = message.reply;
  if (message.meta) Object.assign(out, message.meta);
  const text = Buffer.from(message.payload).toString('utf8');
  if (Buffer.from(text, 'utf8').equals(Buffer.from(message.payload))) out.payload = text;
  else out.payload_base64 = Buffer.from(message.payload).toString('base64');
  return out;
}

/** Registers the pub/sub and request/reply routes. */
export function registerPubSubRoutes(api: HttpApi, broker: Broker): void {
  api.route('POST', '/v1/publish', async (req) => {
    const result = broker.publish({
      topic: requireString(req.body, 'topic'),
      payload: payloadFromBody(req.body),
      meta: metaFromBody(req.body),
    });
    const id = ulidToString(result.msgId);
    if (result.stored && req.body.confirm === true) {
      const stored = await result.stored;
      return {
        status: 200,
        body: { id, delivered: result.delivered, queues: stored.queues, streams: stored.streams },
      };
    }
    // Unconfirmed: the caller did not ask to hear about storage failures (they are logged by storage).
    result.stored?.catch(() => {});
    return { status: 202, body: { id, delivered: result.delivered } };
  });

  let inboxSeq = 0;
  api.route('POST', '/v1/request', async (req) => {
    const topic = requireString(req.body, 'topic');
    const timeoutMs =
      typeof req.body.timeout_ms === 'number' ? Math.min(Math.max(req.body.timeout_ms, 1), 300_000) : 5000;
    const inbox = `_INBOX.http.${process.pid}.${++inboxSeq}`;
    let resolve!: (m: RoutedMessage) => void;
    const replied = new Promise<RoutedMessage>((r) => (resolve = r));
    const subscriber: Subscriber = {
      id: -inboxSeq,
      deliver: (m: PubSubMessage) => resolve(m as RoutedMessage),
    };
    const subscription = broker.subscribe(inbox, subscriber);
    let timer: NodeJS.Timeout | undefined;
    try {
      broker.request({
        topic,
        payload: payloadFromBody(req.body),
        meta: metaFromBody(req.body),
        reply: inbox,
      });
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new MessagingError('TIMEOUT', `no reply on "${topic}" within ${timeoutMs} ms`)),
          timeoutMs,
        );
      });
      const reply = await Promise.race([replied, timeout]);
      const meta = reply.meta as MessageMeta | undefined;
      if (meta?.status === 'no_responders')
        throw new MessagingError('NO_RESPONDERS', `no responders for "${topic}"`);
      if (meta?.error) {
        throw new MessagingError(
          'RESPONDER_ERROR',
          `responder failed: ${meta.error.code}: ${meta.error.message}`,
          {
            details: { responder_code: meta.error.code },
          },
        );
      }
      return { body: messageToJson(reply) };
    } finally {
      clearTimeout(timer);
      subscription.unsubscribe();
    }
  });
}
