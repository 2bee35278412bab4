/**
 * Rate limits per identity (per address before authentication), with a burst allowance and a temporary
 * blacklist for repeat offenders — `[security.rate_limit]`.
 *
 * Semantics (docs/security.md): a key may make `max_requests` requests per `window_seconds` (a fixed
 * window that starts at its first request), plus up to `burst_size` extra requests per window. Every
 * refused request is a violation; `blacklist_threshold` violations within `blacklist_duration` blacklist
 * the key for `blacklist_duration` seconds, during which everything it sends is refused.
 *
 * Counters live in rate-limiter-flexible stores: in memory on one node, in Redis when the servers share
 * one (so a client cannot multiply its budget by spreading over nodes). Redis failures fall back to a
 * per-node memory limiter (the library's insurance limiter) rather than refusing or admitting everyone.
 *
 * The hot path — PUB frames — never waits for the store: a `Meter` per connection counts locally,
 * charges the store in batches, and refuses synchronously once the store has said the budget is spent
 * (or the locally counted remainder reaches zero). A connection can therefore overshoot by at most one
 * batch before it is refused.
 */
import {
  RateLimiterMemory,
  RateLimiterRedis,
  RateLimiterRes,
  type RateLimiterAbstract,
} from 'rate-limiter-flexible';
import type { Redis } from 'ioredis';
import { MessagingError } from '../protocol/errors.ts';

export interface RateLimitSettings {
  windowSeconds: number;
  maxRequests: number;
  burstSize: number;
  /** 0 never blacklists. */
  blacklistThreshold: number;
  /** Seconds. */
  blacklistDuration: number;
  /** Prefix of every store key; unique per cluster (and per test). */
  keyPrefix: string;
  /** Share the counters through this Redis connection; memory when absent. */
  redis?: Redis;
  /** Store errors (e.g. Redis down) are reported here, not thrown. */
  onStoreError?: (err: unknown) => void;
}

export interface Verdict {
  allowed: boolean;
  /** When refused: how long until a retry may succeed. */
  retryAfterMs: number;
  blacklisted: boolean;
  /** Requests left in this window (main + burst), as far as the store knows. */
  remaining: number;
  /** Ms until the window resets. */
  resetMs: number;
}

/** PUB frames charged to the store at most this many at a time (the overshoot bound). */
export const METER_BATCH = 64;

function isLimiterRes(x: unknown): x is RateLimiterRes {
  return x instanceof RateLimiterRes;
}

export class RateLimiter {
  private readonly main: RateLimiterAbstract;
  private readonly burst: RateLimiterAbstract | undefined;
  private readonly violations: RateLimiterAbstract | undefined;
  private readonly ban: RateLimiterAbstract;
  /** Keys known to be blacklisted on this node → until (epoch ms), for synchronous refusals. */
  private readonly banned = new Map<string, number>();

  constructor(readonly settings: RateLimitSettings) {
    const make = (name: string, points: number, duration: number): RateLimiterAbstract => {
      const keyPrefix = `${settings.keyPrefix}:${name}`;
      const memory = new RateLimiterMemory({ keyPrefix, points, duration });
      if (!settings.redis) return memory;
      return new RateLimiterRedis({
        storeClient: settings.redis,
        keyPrefix,
        points,
        duration,
        rejectIfRedisNotReady: true,
        insuranceLimiter: memory,
      });
    };
    this.main = make('req', settings.maxRequests, settings.windowSeconds);
    this.burst =
      settings.burstSize > 0 ? make('burst', settings.burstSize, settings.windowSeconds) : undefined;
    this.violations =
      settings.blacklistThreshold > 0
        ? make('viol', settings.blacklistThreshold, settings.blacklistDuration)
        : undefined;
    this.ban = make('ban', 1, settings.blacklistDuration);
  }

  /** Synchronous: is `key` blacklisted as far as this node knows? Returns the ms left, or 0. */
  bannedFor(key: string, now = Date.now()): number {
    const until = this.banned.get(key);
    if (until === undefined) return 0;
    if (until <= now) {
      this.banned.delete(key);
      return 0;
    }
    return until - now;
  }

  /** Charges `points` requests to `key` and says whether they were allowed. Never rejects. */
  async consume(key: string, points = 1): Promise<Verdict> {
    return this.charge(key, points, 0);
  }

  /**
   * Charges `points` requests and `violations` refusals counted elsewhere (a meter's local refusals).
   * Never rejects: store failures are reported through `onStoreError` and allow the request.
   */
  async charge(key: string, points: number, violations: number): Promise<Verdict> {
    try {
      const banMs = await this.banRemaining(key);
      if (banMs > 0) return refused(banMs, true);
      if (violations > 0) {
        const banned = await this.addViolations(key, violations);
        if (banned > 0) return refused(banned, true);
      }
      if (points <= 0)
        return { allowed: true, retryAfterMs: 0, blacklisted: false, remaining: 0, resetMs: 0 };
      return await this.take(key, points);
    } catch (err) {
      this.settings.onStoreError?.(err);
      return { allowed: true, retryAfterMs: 0, blacklisted: false, remaining: 0, resetMs: 0 };
    }
  }

  /** A meter for one connection acting as `key`. */
  meter(key: string, onBlacklisted?: (error: MessagingError) => void): Meter {
    return new Meter(this, key, onBlacklisted);
  }

  /** The error a refused request gets: RATE_LIMITED with `details.retry_after_ms`. */
  error(verdict: Pick<Verdict, 'retryAfterMs' | 'blacklisted'>): MessagingError {
    const ms = Math.max(1, Math.ceil(verdict.retryAfterMs));
    const s = this.settings;
    const message = verdict.blacklisted
      ? `temporarily blacklisted after ${s.blacklistThreshold} rate-limit violations; retry in ${Math.ceil(ms / 1000)} s`
      : `rate limit exceeded: ${s.maxRequests} requests per ${s.windowSeconds} s` +
        (s.burstSize > 0 ? ` (+${s.burstSize} burst)` : '') +
        `; retry in ${ms} ms`;
    return new MessagingError('RATE_LIMITED', message, {
      details: verdict.blacklisted ? { retry_after_ms: ms, blacklisted: true } : { retry_after_ms: ms },
    });
  }

  private async take(key: string, points: number): Promise<Verdict> {
    try {
      const res = await this.main.consume(key, points);
      const burstLeft = this.burst ? await this.burstRemaining(key) : 0;
      return {
        allowed: true,
        retryAfterMs: 0,
        blacklisted: false,
        remaining: res.remainingPoints + burstLeft,
        resetMs: res.msBeforeNext,
      };
    } catch (mainErr) {
      if (!isLimiterRes(mainErr)) throw mainErr;
      if (this.burst) {
        try {
          const res = await this.burst.consume(key, points);
          return {
            allowed: true,
            retryAfterMs: 0,
            blacklisted: false,
            remaining: res.remainingPoints,
            resetMs: Math.min(res.msBeforeNext, mainErr.msBeforeNext),
          };
        } catch (burstErr) {
          if (!isLimiterRes(burstErr)) throw burstErr;
        }
      }
      const banned = await this.addViolations(key, 1);
      if (banned > 0) return refused(banned, true);
      return refused(mainErr.msBeforeNext, false);
    }
  }

  private async burstRemaining(key: string): Promise<number> {
    const res = await this.burst!.get(key);
    return res ? res.remainingPoints : this.settings.burstSize;
  }

  /** Counts violations; blacklists the key when they reach the threshold. Returns the ban in ms, or 0. */
  private async addViolations(key: string, count: number): Promise<number> {
    if (!this.violations) return 0;
    let consumed: number;
    try {
      consumed = (await this.violations.penalty(key, count)).consumedPoints;
    } catch (err) {
      if (!isLimiterRes(err)) throw err;
      consumed = err.consumedPoints;
    }
    if (consumed < this.settings.blacklistThreshold) return 0;
    await this.ban.block(key, this.settings.blacklistDuration);
    await this.violations.delete(key);
    const ms = this.settings.blacklistDuration * 1000;
    this.banned.set(key, Date.now() + ms);
    return ms;
  }

  private async banRemaining(key: string): Promise<number> {
    const local = this.bannedFor(key);
    if (local > 0) return local;
    const res = await this.ban.get(key);
    if (!res || res.consumedPoints <= 1) return 0;
    // A ban set by another node: remember it so this node refuses synchronously too.
    this.banned.set(key, Date.now() + res.msBeforeNext);
    return res.msBeforeNext;
  }
}

function refused(retryAfterMs: number, blacklisted: boolean): Verdict {
  return {
    allowed: false,
    retryAfterMs: Math.max(1, retryAfterMs),
    blacklisted,
    remaining: 0,
    resetMs: retryAfterMs,
  };
}

/**
 * Counts one connection's requests without waiting on the store (see the module comment). `hit()` is
 * O(1) and synchronous; the store is charged on the next turn of the event loop or every METER_BATCH
 * requests, whichever comes first.
 */
export class Meter {
  private pending = 0;
  private pendingViolations = 0;
  /** Requests left as of the last store answer, counted down locally; Infinity when unknown. */
  private remaining = Infinity;
  private resetAt = 0;
  private blockedUntil = 0;
  private blacklisted = false;
  private scheduled = false;
  private inFlight = false;
  private closed = false;

  constructor(
    private readonly limiter: RateLimiter,
    readonly key: string,
    private readonly onBlacklisted?: (error: MessagingError) => void,
  ) {}

  /** Counts one request; returns the RATE_LIMITED error when it must be refused. */
  hit(now = Date.now()): MessagingError | undefined {
    if (now < this.blockedUntil) return this.refuse(this.blockedUntil - now, this.blacklisted);
    if (now >= this.resetAt) this.remaining = Infinity;
    else if (this.remaining <= 0) return this.refuse(this.resetAt - now, false);
    this.remaining--;
    this.pending++;
    if (this.pending >= METER_BATCH && !this.inFlight) this.flush();
    else this.schedule();
    return undefined;
  }

  /** Stops charging (the connection closed); what is pending is still charged. */
  close(): void {
    this.closed = true;
  }

  private refuse(retryAfterMs: number, blacklisted: boolean): MessagingError {
    if (!blacklisted) {
      this.pendingViolations++;
      this.schedule();
    }
    return this.limiter.error({ retryAfterMs, blacklisted });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight) return;
    this.scheduled = true;
    setImmediate(this.flush);
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    if (this.inFlight) return;
    const points = this.pending;
    const violations = this.pendingViolations;
    if (points === 0 && violations === 0) return;
    this.pending = 0;
    this.pendingViolations = 0;
    this.inFlight = true;
    void this.limiter.charge(this.key, points, violations).then((verdict) => {
      this.inFlight = false;
      const now = Date.now();
      if (verdict.allowed) {
        // A charge of violations alone says nothing about the budget: keep what we know.
        if (points > 0) {
          // Requests counted locally while the store was answering are already spent.
          this.remaining = verdict.resetMs > 0 ? Math.max(0, verdict.remaining - this.pending) : Infinity;
          this.resetAt = now + verdict.resetMs;
        }
      } else {
        this.blockedUntil = now + verdict.retryAfterMs;
        this.remaining = 0;
        if (verdict.blacklisted && !this.blacklisted) {
          this.blacklisted = true;
          if (!this.closed) this.onBlacklisted?.(this.limiter.error(verdict));
        }
      }
      if (this.pending > 0 || this.pendingViolations > 0) this.schedule();
    });
  };
}
