/**
 * The security runtime of one server, built from `[security*]`, `[audit]` and `[redis]`: TLS options,
 * token verification and issuing, rate limits, the audit log and encryption at rest. The server creates
 * one and hands its parts to the listener, the sessions, the REST API, the admin port and the storage.
 *
 * With everything off (the default) it adds nothing to any path: `forSession` returns undefined and the
 * session's hot path is unchanged.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { TlsOptions } from 'node:tls';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { formatConfig, type ServerConfig } from '../config/index.ts';
import { MessagingError } from '../protocol/errors.ts';
import type { Storage } from '../storage/types.ts';
import { AuditLog, type AuditRecord } from './audit.ts';
import { EncryptedStorage, fileKeyLedger, storageKeyLedger } from './encrypted-storage.ts';
import { HttpGuard } from './http-guard.ts';
import { JwtService } from './jwt.ts';
import { KeyStore } from './keystore.ts';
import { COMMAND_RULES } from './operations.ts';
import { Identity, type ResourceKind } from './permissions.ts';
import { RateLimiter } from './rate-limit.ts';
import { checkRule, SessionGuard, type GuardedSession } from './session-guard.ts';
import { tlsServerOptions } from './tls.ts';

const DAY_MS = 24 * 3600 * 1000;
/** How often (at most) a write looks at the key store for a rotation by another process or by age. */
const KEY_CHECK_MS = 1000;

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Keeps only the entries of `value[key]` whose `name` the identity may use. */
function filterList(identity: Identity, kind: ResourceKind, value: unknown): unknown {
  if (!value || typeof value !== 'object') return value;
  const key = kind;
  const list = (value as Record<string, unknown>)[key];
  if (!Array.isArray(list)) return value;
  return {
    ...value,
    [key]: list.filter(
      (item: unknown) =>
        !!item &&
        typeof item === 'object' &&
        typeof (item as { name?: unknown }).name === 'string' &&
        identity.canAccess(kind, (item as { name: string }).name),
    ),
  };
}

export class Security {
  readonly authRequired: boolean;
  readonly authType: 'jwt' | 'api_key';
  readonly jwt: JwtService | undefined;
  readonly limiter: RateLimiter | undefined;
  readonly audit: AuditLog | undefined;
  readonly tls: TlsOptions | undefined;
  readonly http: HttpGuard;
  private readonly apiKeyDigest: Buffer | undefined;
  private readonly redis: Redis | undefined;
  private keyStore: KeyStore | undefined;
  private readonly log: Logger;

  constructor(
    private readonly config: ServerConfig,
    logger: Logger,
  ) {
    const sec = config.security;
    this.log = logger.child({ module: 'security' });
    this.authRequired = sec.enable_auth;
    this.authType = sec.auth.type;
    // Only a digest of the API key is kept, compared in constant time.
    this.apiKeyDigest = sec.api_key !== '' ? digest(sec.api_key) : undefined;
    this.tls = tlsServerOptions(sec.ssl);

    const a = sec.auth;
    const jwtConfigured =
      a.algorithm === 'HS256' ? sec.jwt_secret !== '' : a.public_key_file !== '' || a.private_key_file !== '';
    if ((sec.enable_auth && a.type === 'jwt') || jwtConfigured) {
      this.jwt = new JwtService({
        algorithm: a.algorithm,
        secret: sec.jwt_secret,
        publicKeyFile: a.public_key_file,
        privateKeyFile: a.private_key_file,
        tokenExpiry: a.token_expiry,
        refreshTokenExpiry: a.refresh_token_expiry,
        audience: a.audience,
        issuer: a.issuer,
      });
    }

    const rl = sec.rate_limit;
    if (rl.enabled) {
      if (config.redis.host !== '') {
        this.redis = new Redis({
          host: config.redis.host,
          port: config.redis.port,
          // Fail fast to the memory insurance limiter instead of queueing behind a dead Redis.
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
          lazyConnect: false,
        });
        this.redis.on('error', (err: Error) =>
          this.log.warn({ err: err.message }, 'rate-limit Redis connection error'),
        );
      } else if (config.clustering.enable) {
        this.log.warn(
          '[clustering] is enabled but [redis] host is not set: rate limits are counted per node',
        );
      }
      let lastStoreError = 0;
      this.limiter = new RateLimiter({
        windowSeconds: rl.window_seconds,
        maxRequests: rl.max_requests,
        burstSize: rl.burst_size,
        blacklistThreshold: rl.blacklist_threshold,
        blacklistDuration: rl.blacklist_duration,
        keyPrefix: `messaging:rl:${config.clustering.cluster_name}`,
        ...(this.redis ? { redis: this.redis } : {}),
        onStoreError: (err) => {
          // At most one line a minute: a dead store must not flood the log.
          if (Date.now() - lastStoreError < 60_000) return;
          lastStoreError = Date.now();
          this.log.error({ err }, 'rate-limit store failed; requests are allowed meanwhile');
        },
      });
    }

    const au = config.audit;
    if (au.enabled) {
      if (au.log_format === 'text') {
        this.log.warn(
          '[audit] log_format = text is not supported: audit records are JSON lines so they can be verified',
        );
      }
      this.audit = new AuditLog({
        file: au.log_file,
        events: au.events_to_log,
        instanceId: config.system.instance_id,
        logger: logger.child({ module: 'audit' }),
        level: au.log_level,
      });
    }
    this.http = new HttpGuard(this);
  }

  get apiKeyConfigured(): boolean {
    return this.apiKeyDigest !== undefined;
  }

  /** Constant-time comparison with API_KEY; false when none is configured. */
  checkApiKey(given: string | undefined): boolean {
    if (!this.apiKeyDigest || given === undefined) return false;
    return timingSafeEqual(digest(given), this.apiKeyDigest);
  }

  /** Verifies a client credential (HELLO `token`, REST Bearer) by the configured auth type. */
  async authenticateToken(token: unknown, address: string): Promise<Identity> {
    if (token === undefined || token === null || token === '') {
      throw new MessagingError(
        'AUTH_REQUIRED',
        'authentication is required: send a token (HELLO "token" or Authorization: Bearer)',
      );
    }
    if (typeof token !== 'string') throw new MessagingError('AUTH_FAILED', 'the token must be a string');
    if (this.authType === 'api_key') {
      if (!this.checkApiKey(token)) throw new MessagingError('AUTH_FAILED', 'wrong API key');
      return new Identity('api-key', 'api_key', undefined, undefined, address);
    }
    if (!this.jwt) throw new MessagingError('AUTH_FAILED', 'no JWT verification key is configured');
    return this.jwt.verifyAccess(token, address);
  }

  /** A guard for a new native/WebSocket connection, or undefined when no security feature is on. */
  forSession(session: GuardedSession): SessionGuard | undefined {
    if (!this.authRequired && !this.limiter && !this.audit) return undefined;
    return new SessionGuard(this, session);
  }

  /**
   * Runs operation `op` for `identity`: permission checks from the operation table, then `run`, then
   * the audit record (data_access / data_modification) and, for restricted identities, list filtering.
   * `http` says `run` resolves with an HTTP reply whose `body` is what to filter.
   */
  runOperation(
    identity: Identity,
    op: string,
    args: Record<string, unknown>,
    run: () => unknown,
    audit: (record: Omit<AuditRecord, 'actor' | 'source'>) => void,
    http = false,
  ): unknown {
    const rule = COMMAND_RULES[op];
    if (!rule) return run();
    checkRule(identity, rule, args);
    const event = rule.audit && this.audit?.enabled(rule.audit) ? rule.audit : undefined;
    const list = rule.list && identity.restricted ? rule.list : undefined;
    if (!event && !list) return run();
    const name = rule.arg ? args[rule.arg] : undefined;
    const resource =
      rule.kind && typeof name === 'string'
        ? { kind: rule.kind.slice(0, -1), name: name.slice(0, 255) }
        : undefined;
    const done = (value: unknown): unknown => {
      if (event) audit({ event, action: op, outcome: 'success', ...(resource ? { resource } : {}) });
      if (!list) return value;
      if (!http) return filterList(identity, list, value);
      const reply = value as { body: unknown };
      return { ...reply, body: filterList(identity, list, reply.body) };
    };
    const failed = (err: unknown): never => {
      if (event && !(err instanceof MessagingError && err.code === 'PERMISSION_DENIED')) {
        const reason = err instanceof MessagingError ? `${err.code}: ${err.message}` : 'INTERNAL';
        audit({ event, action: op, outcome: 'failure', ...(resource ? { resource } : {}), reason });
      }
      throw err;
    };
    let result: unknown;
    try {
      result = run();
    } catch (err) {
      return failed(err);
    }
    if (result instanceof Promise) return result.then(done, failed);
    return done(result);
  }

  /**
   * Wraps the storage with encryption at rest when `[security.encryption] data_at_rest` is on — or,
   * when it is off but the data directory holds encrypted records and a key store is set, in
   * decrypt-only mode so those records stay readable. Throws a start-up error for a missing or wrong key.
   */
  async protectStorage(storage: Storage, dataDir: string | undefined): Promise<Storage> {
    const enc = this.config.security.encryption;
    const ledger =
      dataDir !== undefined
        ? fileKeyLedger(dataDir)
        : storageKeyLedger(storage, `the ${storage.engine} store`);
    const listed = ledger ? await ledger.load() : {};
    const encrypted = Object.keys(listed).length > 0;
    if (!enc.data_at_rest && !encrypted) return storage;
    if (!enc.data_at_rest && enc.key_store === '') {
      throw new Error(
        `the data in ${ledger?.where} is encrypted (it lists its keys) but [security.encryption] key_store is not set`,
      );
    }
    const keys = KeyStore.open(enc.key_store, { create: enc.data_at_rest });
    this.keyStore = keys;
    this.rotateIfDue('start');
    const wrapped = (
      await EncryptedStorage.open(storage, keys, {
        encrypt: enc.data_at_rest,
        ...(ledger ? { ledger } : {}),
        beforeSeal: this.keyCheck(),
      })
    ).asStorage();
    this.log.info(
      {
        key_store: enc.key_store,
        current_key: keys.current.id,
        keys: keys.list().length,
        encrypt: enc.data_at_rest,
      },
      enc.data_at_rest
        ? 'encryption at rest on (AES-256-GCM)'
        : 'encryption at rest off; existing encrypted records stay readable',
    );
    return wrapped;
  }

  /** Audit `system_start`, and `configuration_change` when the effective config differs from last start. */
  started(port: number): void {
    if (!this.audit) return;
    const configSha = createHash('sha256').update(formatConfig(this.config)).digest('hex');
    const previous = this.audit.lastConfigDigest;
    const base = {
      actor: { subject: 'system', method: 'local' },
      source: { address: 'local', transport: 'process' },
    };
    if (previous !== undefined && previous !== configSha) {
      this.audit.record({
        ...base,
        event: 'configuration_change',
        action: 'config.changed',
        outcome: 'success',
        details: { previous_config_sha256: previous, config_sha256: configSha },
      });
    }
    this.audit.record({
      ...base,
      event: 'system_start',
      action: 'start',
      outcome: 'success',
      details: {
        port,
        pid: process.pid,
        config_sha256: configSha,
        tls: this.tls !== undefined,
        auth: this.authRequired,
      },
    });
  }

  /** Audit `system_stop`, close the audit file and the Redis connection. */
  /**
   * Waits (at most `timeoutMs`) for the shared rate-limit store to connect, so that a server starting
   * beside others counts its first requests in the shared budget rather than in its per-node fallback.
   * A Redis that does not come up in time is reported, not fatal: the fallback keeps limits per node.
   */
  async connectStores(timeoutMs = 5000): Promise<void> {
    const redis = this.redis;
    if (!redis || redis.status === 'ready') return;
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => done(false), timeoutMs);
      const onReady = (): void => done(true);
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        redis.off('ready', onReady);
        resolve(ok);
      };
      redis.on('ready', onReady);
    });
    if (!ready) {
      this.log.warn(
        { timeout_ms: timeoutMs },
        'rate-limit Redis not connected yet: counting per node until it is',
      );
    }
  }

  async close(): Promise<void> {
    if (this.audit) {
      this.audit.record({
        event: 'system_stop',
        action: 'stop',
        outcome: 'success',
        actor: { subject: 'system', method: 'local' },
        source: { address: 'local', transport: 'process' },
      });
      this.audit.close();
      // The anchor for the hash chain, kept in a second place (docs/security.md).
      this.log.info({ audit_head: this.audit.head }, 'audit log closed');
    }
    if (this.redis) await this.redis.quit().catch(() => this.redis?.disconnect());
  }

  /** Called before each seal: at most once a second, picks up a rotation and rotates by age. */
  private keyCheck(): () => void {
    let next = 0;
    return () => {
      const now = Date.now();
      if (now < next) return;
      next = now + KEY_CHECK_MS;
      const keys = this.keyStore!;
      let changed = false;
      try {
        changed = keys.reload();
      } catch (err) {
        // Keep writing with the key we have; a broken store is logged, not fatal mid-flight.
        this.log.error({ err: (err as Error).message }, 'cannot re-read the key store');
        return;
      }
      if (changed) this.keyRotated('reloaded', keys.current.id);
      this.rotateIfDue('age');
    };
  }

  private rotateIfDue(why: 'start' | 'age'): void {
    const keys = this.keyStore;
    const days = this.config.security.encryption.key_rotation_days;
    if (!keys || !this.config.security.encryption.data_at_rest || days <= 0) return;
    if (keys.currentAgeMs() < days * DAY_MS) return;
    const id = keys.rotate();
    this.keyRotated(
      why === 'start' ? 'rotated at start (key_rotation_days)' : 'rotated (key_rotation_days)',
      id,
    );
  }

  private keyRotated(how: string, id: string): void {
    this.log.info({ key_id: id }, `encryption key ${how}: new data is written with key ${id}`);
    this.audit?.record({
      event: 'configuration_change',
      action: 'encryption.key_rotation',
      outcome: 'success',
      actor: { subject: 'system', method: 'local' },
      source: { address: 'local', transport: 'process' },
      resource: { kind: 'key', name: id },
      details: { how },
    });
  }
}
