/**
 * Security of the HTTP front doors: REST on the messaging port (Bearer tokens, rate limits,
 * authorization through the same operation table as CMD, audit), the token endpoint
 * `POST /v1/auth/token`, and the API key of the admin port.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { MessagingError } from '../protocol/errors.ts';
import type { AuditRecord } from './audit.ts';
import { PUBLIC_ROUTES, ROUTE_OPERATIONS } from './operations.ts';
import { Identity, parsePermissions } from './permissions.ts';
import type { Security } from './security.ts';

/** The parts of an HTTP request the guard reads (http-api.ts's HttpRequest fits). */
export interface GuardedRequest {
  method: string;
  path: string;
  params: Record<string, string>;
  body: Record<string, unknown>;
  headers: IncomingMessage['headers'];
  remoteAddress: string;
  identity?: Identity;
}

/** `Authorization: Bearer <value>` (or `X-API-Key: <value>` when `apiKeyHeader`). */
export function bearerOf(headers: IncomingMessage['headers'], apiKeyHeader = false): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  if (apiKeyHeader) {
    const key = headers['x-api-key'];
    if (typeof key === 'string' && key !== '') return key;
  }
  return undefined;
}

export class HttpGuard {
  constructor(private readonly security: Security) {}

  /**
   * Runs one REST request: authenticate (unless the route is public), rate-limit, authorize, run the
   * handler, audit. `routeKey` is `METHOD /template`, e.g. `GET /v1/queues/{name}`.
   */
  async run<R extends { body: unknown }>(
    req: GuardedRequest,
    routeKey: string,
    handler: () => R | Promise<R>,
  ): Promise<R> {
    const sec = this.security;
    // Nothing to enforce or record: the handler runs as without security (req.identity stays unset).
    if (!sec.authRequired && !sec.limiter && !sec.audit) return handler();
    const address = req.remoteAddress.replace(/^::ffff:/, '');
    let identity = Identity.anonymous(address);
    const audit = (record: Omit<AuditRecord, 'actor' | 'source'>): void => {
      if (!sec.audit?.enabled(record.event)) return;
      sec.audit.record({
        ...record,
        actor: { subject: identity.subject, method: identity.method },
        source: { address, transport: 'http' },
      });
    };
    if (sec.authRequired && !PUBLIC_ROUTES.has(routeKey)) {
      try {
        identity = await sec.authenticateToken(bearerOf(req.headers), address);
      } catch (err) {
        const error =
          err instanceof MessagingError ? err : new MessagingError('AUTH_FAILED', 'the token was refused');
        audit({
          event: 'authentication',
          action: routeKey,
          outcome: 'failure',
          reason: `${error.code}: ${error.message}`,
        });
        if (sec.limiter) await sec.limiter.charge(`addr:${address}`, 0, 1);
        throw error;
      }
    }
    if (sec.limiter) {
      const verdict = await sec.limiter.consume(identity.rateKey);
      if (!verdict.allowed) {
        const error = sec.limiter.error(verdict);
        audit({ event: 'authorization', action: 'rate_limit', outcome: 'denied', reason: error.message });
        throw error;
      }
    }
    req.identity = identity;
    const mapped = ROUTE_OPERATIONS[routeKey];
    try {
      if (!mapped) return await handler();
      return (await sec.runOperation(
        identity,
        mapped.op,
        mapped.args(req.params, req.body),
        handler,
        audit,
        true,
      )) as R;
    } catch (err) {
      if (err instanceof MessagingError && err.code === 'PERMISSION_DENIED') {
        const details = err.details ?? {};
        audit({
          event: 'authorization',
          action: routeKey,
          outcome: 'denied',
          resource: { kind: String(details.permission ?? '?'), name: String(details.resource ?? '') },
          reason: err.message,
        });
      }
      throw err;
    }
  }

  /**
   * `POST /v1/auth/token`. Grants:
   * - `api_key` (default): the caller proves it holds API_KEY (`Authorization: Bearer <API_KEY>` or
   *   `X-API-Key`) and names `subject`, optional `permissions` and `expires_in` (≤ token_expiry).
   * - `refresh_token`: `refresh_token` is exchanged for a new pair with the same subject and permissions.
   */
  async issueToken(
    req: GuardedRequest,
  ): Promise<{ status: number; body: unknown; headers?: Record<string, string> }> {
    const sec = this.security;
    const address = req.remoteAddress.replace(/^::ffff:/, '');
    const jwt = sec.jwt;
    const grant = req.body.grant_type ?? (req.body.refresh_token !== undefined ? 'refresh_token' : 'api_key');
    const record = (outcome: AuditRecord['outcome'], subject: string, reason?: string): void =>
      sec.audit?.record({
        event: 'authentication',
        action: `token.${grant === 'refresh_token' ? 'refresh' : 'issue'}`,
        outcome,
        actor: { subject, method: grant === 'refresh_token' ? 'jwt' : 'api_key' },
        source: { address, transport: 'http' },
        ...(reason ? { reason } : {}),
      });
    if (!jwt) {
      throw new MessagingError(
        'BAD_REQUEST',
        'this server issues no tokens: configure jwt_secret (HS256) or [security.auth] key files (RS256)',
      );
    }
    try {
      // The request was already charged to the caller's address by `run` (a public route).
      if (grant === 'refresh_token') {
        const token = req.body.refresh_token;
        if (typeof token !== 'string' || token === '')
          throw new MessagingError('BAD_REQUEST', '"refresh_token" must be a non-empty string');
        const { subject, permissions } = await jwt.verifyRefresh(token);
        const tokens = await jwt.issue(subject, permissions);
        record('success', subject);
        return { status: 200, body: tokens, headers: { 'cache-control': 'no-store' } };
      }
      if (grant !== 'api_key')
        throw new MessagingError('BAD_REQUEST', '"grant_type" must be "api_key" or "refresh_token"');
      if (!sec.checkApiKey(bearerOf(req.headers, true))) {
        throw new MessagingError(
          'AUTH_FAILED',
          'issuing tokens needs the API key (Authorization: Bearer <API_KEY>)',
        );
      }
      const subject = req.body.subject;
      if (typeof subject !== 'string' || subject === '' || subject.length > 256) {
        throw new MessagingError('BAD_REQUEST', '"subject" must be a string of 1 to 256 characters');
      }
      let permissions;
      try {
        permissions = parsePermissions(req.body.permissions);
      } catch (err) {
        throw new MessagingError('BAD_REQUEST', (err as Error).message.replace("the token's ", ''));
      }
      const ttl = req.body.expires_in;
      if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1)) {
        throw new MessagingError('BAD_REQUEST', '"expires_in" must be a positive whole number of seconds');
      }
      const tokens = await jwt.issue(subject, permissions, ttl);
      record('success', subject);
      return { status: 200, body: tokens, headers: { 'cache-control': 'no-store' } };
    } catch (err) {
      const e = err instanceof MessagingError ? err : new MessagingError('INTERNAL', 'token issuing failed');
      record(
        'failure',
        typeof req.body.subject === 'string' ? req.body.subject.slice(0, 256) : 'unknown',
        `${e.code}: ${e.message}`,
      );
      if (e.code === 'AUTH_FAILED' && sec.limiter) await sec.limiter.charge(`addr:${address}`, 0, 1);
      throw err;
    }
  }

  /**
   * The admin port's guard for everything but health, readiness and metrics: API_KEY as
   * `Authorization: Bearer <key>` or `X-API-Key`. Without a configured API_KEY the admin API is open
   * when authentication is off (development) and closed when it is on (fail closed). Answers 401/403
   * itself and returns false when the request may not proceed.
   */
  readonly admin = (req: IncomingMessage, res: ServerResponse, url: URL): boolean => {
    const sec = this.security;
    const address = (req.socket.remoteAddress ?? '?').replace(/^::ffff:/, '');
    if (!sec.apiKeyConfigured && !sec.authRequired) return true;
    const given = bearerOf(req.headers, true);
    const ok = sec.apiKeyConfigured && sec.checkApiKey(given);
    sec.audit?.record({
      event: 'authentication',
      action: `admin ${req.method ?? '?'} ${url.pathname.slice(0, 200)}`,
      outcome: ok ? 'success' : 'failure',
      actor: { subject: ok ? 'api-key' : 'unknown', method: 'api_key' },
      source: { address, transport: 'admin' },
      ...(ok ? {} : { reason: given === undefined ? 'no API key given' : 'wrong API key' }),
    });
    if (ok) return true;
    const [status, code, message] = !sec.apiKeyConfigured
      ? [403, 'PERMISSION_DENIED', 'the admin API is disabled: authentication is on but API_KEY is not set']
      : given === undefined
        ? [
            401,
            'AUTH_REQUIRED',
            'the admin API needs the API key: Authorization: Bearer <API_KEY> or X-API-Key',
          ]
        : [401, 'AUTH_FAILED', 'wrong API key'];
    const text = JSON.stringify({ code, message });
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
      ...(status === 401 ? { 'www-authenticate': 'Bearer realm="messaging-admin"' } : {}),
    });
    res.end(text);
    return false;
  };
}
