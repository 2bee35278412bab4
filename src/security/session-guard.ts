/**
 * Security for one native or WebSocket connection: authentication in HELLO, the token's expiry on a
 * live connection, rate limiting of every frame, authorization of every operation, and the audit trail.
 * The session calls it at five points (HELLO, each frame, PUB, SUB, CMD) and when it answers an error.
 */
import { isValidPattern } from '../core/topic.ts';
import { MessagingError } from '../protocol/errors.ts';
import type { AuditRecord } from './audit.ts';
import { COMMAND_RULES, type OperationRule } from './operations.ts';
import { authorize, authorizePublish, authorizeSubscribe, Identity } from './permissions.ts';
import type { Meter } from './rate-limit.ts';
import type { Security } from './security.ts';

/** What the guard needs of a session (kept narrow so security does not depend on the server layer). */
export interface GuardedSession {
  readonly id: number;
  readonly transport: { readonly kind: string; readonly remoteAddress: string };
  readonly clientName: string;
  fail(error: MessagingError, reason: 'auth_failed' | 'auth_expired' | 'rate_limited'): void;
}

/** setTimeout's limit; longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** "1.2.3.4:5678" → "1.2.3.4"; "[::1]:5678" or "::1:5678" → "::1". */
export function addressOf(remote: string): string {
  const bracket = /^\[(.*)\]:\d+$/.exec(remote);
  if (bracket) return bracket[1]!;
  const i = remote.lastIndexOf(':');
  // IPv4-mapped IPv6 ("::ffff:10.0.0.1") is the same client as "10.0.0.1" (as REST sees it).
  return (i > 0 ? remote.slice(0, i) : remote).replace(/^::ffff:/, '');
}

export class SessionGuard {
  identity: Identity;
  private meter: Meter | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly security: Security,
    private readonly session: GuardedSession,
  ) {
    this.identity = Identity.anonymous(addressOf(session.transport.remoteAddress));
  }

  /**
   * Checks HELLO's credentials. Returns undefined when there is nothing to wait for (no auth, no rate
   * limit), else a promise that settles once the connection may proceed; it rejects with the fatal
   * error to close the connection with.
   */
  authenticate(hello: Record<string, unknown>): Promise<void> | undefined {
    const sec = this.security;
    if (!sec.authRequired && !sec.limiter) {
      this.startMeter();
      return undefined;
    }
    return this.authenticateAsync(hello);
  }

  private async authenticateAsync(hello: Record<string, unknown>): Promise<void> {
    const sec = this.security;
    const address = this.identity.address;
    // Before authentication the address is charged: connection storms and password guessing alike.
    if (sec.limiter) {
      const verdict = await sec.limiter.consume(`addr:${address}`);
      if (!verdict.allowed) throw sec.limiter.error(verdict);
    }
    if (sec.authRequired) {
      try {
        this.identity = await sec.authenticateToken(hello.token, address);
      } catch (err) {
        const error =
          err instanceof MessagingError ? err : new MessagingError('AUTH_FAILED', 'the token was refused');
        this.audit({
          event: 'authentication',
          action: 'connect',
          outcome: 'failure',
          reason: `${error.code}: ${error.message}`,
        });
        if (sec.limiter) void sec.limiter.charge(`addr:${address}`, 0, 1);
        throw error;
      }
      this.audit({ event: 'authentication', action: 'connect', outcome: 'success' });
      this.armExpiry();
      if (sec.limiter) {
        // A blacklisted identity may not connect at all (points 0: only the blacklist is consulted).
        const verdict = await sec.limiter.charge(this.identity.rateKey, 0, 0);
        if (!verdict.allowed) throw sec.limiter.error(verdict);
      }
    }
    if (this.closed) return;
    this.startMeter();
  }

  /** Counts one frame against the rate limit; the error to answer it with when refused. */
  admit(): MessagingError | undefined {
    return this.meter?.hit();
  }

  checkPublish(topic: string, directQueue: string | undefined): void {
    if (!this.identity.restricted) return;
    if (directQueue !== undefined) authorize(this.identity, 'queues', directQueue);
    else authorizePublish(this.identity, topic);
  }

  checkSubscribe(pattern: string): void {
    // An invalid pattern is the broker's INVALID_PATTERN to report, not a permission question.
    if (this.identity.restricted && isValidPattern(pattern)) authorizeSubscribe(this.identity, pattern);
  }

  /** Runs CMD `op`: authorization first, then the handler, then the audit record and list filtering. */
  command(op: string, args: Record<string, unknown>, run: () => unknown): unknown {
    return this.security.runOperation(this.identity, op, args, run, (record) => this.audit(record));
  }

  /** A PERMISSION_DENIED answered on this connection (from any handler): audit it. */
  denied(error: MessagingError): void {
    const details = error.details ?? {};
    this.audit({
      event: 'authorization',
      action: String(details.permission ?? 'operation'),
      outcome: 'denied',
      resource: { kind: String(details.permission ?? '?'), name: String(details.resource ?? '') },
      reason: error.message,
    });
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.expiryTimer);
    this.meter?.close();
  }

  private startMeter(): void {
    const limiter = this.security.limiter;
    if (!limiter || this.meter) return;
    this.meter = limiter.meter(this.identity.rateKey, (error) => {
      this.audit({ event: 'authorization', action: 'rate_limit', outcome: 'denied', reason: error.message });
      this.session.fail(error, 'rate_limited');
    });
  }

  /** Closes the connection with TOKEN_EXPIRED when the token's `exp` passes. */
  private armExpiry(): void {
    const expiresAt = this.identity.expiresAt;
    if (expiresAt === undefined || this.closed) return;
    const wait = expiresAt - Date.now();
    if (wait > MAX_TIMER_MS) {
      this.expiryTimer = setTimeout(() => this.armExpiry(), MAX_TIMER_MS);
    } else {
      this.expiryTimer = setTimeout(
        () => {
          if (this.closed) return;
          this.audit({
            event: 'authentication',
            action: 'token_expired',
            outcome: 'failure',
            reason: 'the token expired on a live connection',
          });
          this.session.fail(
            new MessagingError('TOKEN_EXPIRED', 'the token has expired; reconnect with a new token'),
            'auth_expired',
          );
        },
        Math.max(0, wait),
      );
    }
    this.expiryTimer.unref();
  }

  private audit(record: Omit<AuditRecord, 'actor' | 'source'>): void {
    const audit = this.security.audit;
    if (!audit?.enabled(record.event)) return;
    audit.record({
      ...record,
      actor: { subject: this.identity.subject, method: this.identity.method },
      source: {
        address: this.identity.address,
        transport: this.session.transport.kind,
        connection: this.session.id,
      },
      ...(this.session.clientName ? { details: { client: this.session.clientName } } : {}),
    });
  }
}

/** Applies an operation rule's permission checks (throws PERMISSION_DENIED). */
export function checkRule(identity: Identity, rule: OperationRule, args: Record<string, unknown>): void {
  if (!identity.restricted) return;
  if (rule.kind && rule.arg) {
    const name = args[rule.arg];
    // A non-string name is the handler's BAD_REQUEST to give; nothing is touched before that check.
    if (typeof name === 'string') authorize(identity, rule.kind, name);
  }
  if (rule.bindings && Array.isArray(args.bindings)) {
    for (const pattern of args.bindings) {
      // Invalid bindings are the handler's INVALID_PATTERN / BAD_REQUEST; nothing is declared then.
      if (typeof pattern === 'string' && isValidPattern(pattern)) authorizeSubscribe(identity, pattern);
    }
  }
  if (rule.publishArg) {
    const topic = args[rule.publishArg];
    if (typeof topic === 'string') authorizePublish(identity, topic);
  }
}

export { COMMAND_RULES };
