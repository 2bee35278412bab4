/**
 * What an authenticated client may do, and the one place that decides it.
 *
 * A token's `permissions` claim lists it: `{"publish": [patterns], "subscribe": [patterns],
 * "queues": [names], "streams": [names], "tasks": [names]}`. A token without the claim may do everything
 * (as a NATS user without permissions may); a token with the claim may do only what it lists, so a
 * category missing from the claim allows nothing of that kind. See docs/security.md.
 *
 * Feature code calls `authorize(identity, 'tasks', name)` (or `'queues'`, `'streams'`) before acting on a
 * named resource; it throws PERMISSION_DENIED, which the front doors answer, audit and survive.
 */
import { isValidPattern, matchesPattern } from '../core/topic.ts';
import { MessagingError } from '../protocol/errors.ts';

export const RESOURCE_KINDS = ['queues', 'streams', 'tasks'] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

/** The `permissions` claim, validated. */
export interface Permissions {
  publish?: readonly string[];
  subscribe?: readonly string[];
  queues?: readonly string[];
  streams?: readonly string[];
  tasks?: readonly string[];
}

const CLAIM_KEYS = ['publish', 'subscribe', ...RESOURCE_KINDS] as const;

/** How the identity proved itself; `anonymous` when authentication is off. */
export type AuthMethod = 'anonymous' | 'jwt' | 'api_key';

/**
 * Who is acting: the token's subject and permissions, and where the connection comes from. One per
 * connection (native, WebSocket) or per REST request. Matching results are cached here because a
 * publisher sends the same few topics over and over.
 */
export class Identity {
  private publishCache: Map<string, boolean> | undefined;

  constructor(
    /** `sub` of the token, `api-key` for the API key, `anonymous` without authentication. */
    readonly subject: string,
    readonly method: AuthMethod,
    /** undefined: unrestricted (no claim, API key, or authentication off). */
    readonly permissions: Permissions | undefined,
    /** Epoch ms after which the credentials are no longer valid; undefined: never. */
    readonly expiresAt: number | undefined,
    /** Client IP address (without port). */
    readonly address: string,
  ) {}

  static anonymous(address: string): Identity {
    return new Identity('anonymous', 'anonymous', undefined, undefined, address);
  }

  get restricted(): boolean {
    return this.permissions !== undefined;
  }

  /** The key rate limits are counted under: the subject once known, the address before that. */
  get rateKey(): string {
    return this.method === 'anonymous' ? `addr:${this.address}` : `sub:${this.subject}`;
  }

  canPublish(topic: string): boolean {
    const p = this.permissions;
    if (!p) return true;
    // Replies go to the requester's private inbox, whose name the responder only learns from the request.
    if (topic.startsWith('_INBOX.')) return true;
    const cache = (this.publishCache ??= new Map());
    let allowed = cache.get(topic);
    if (allowed === undefined) {
      allowed = (p.publish ?? []).some((pattern) => matchesPattern(pattern, topic));
      // Bounded: a client publishing to endless distinct topics must not grow this without limit.
      if (cache.size >= 4096) cache.clear();
      cache.set(topic, allowed);
    }
    return allowed;
  }

  canSubscribe(pattern: string): boolean {
    const p = this.permissions;
    if (!p) return true;
    if (isPrivateInbox(pattern)) return true;
    return (p.subscribe ?? []).some((allowed) => patternCovers(allowed, pattern));
  }

  canAccess(kind: ResourceKind, name: string): boolean {
    const p = this.permissions;
    if (!p) return true;
    return (p[kind] ?? []).some((entry) => nameMatches(entry, name));
  }
}

/**
 * `_INBOX.<id>…` with a literal `<id>`: a requester's own reply inbox. `_INBOX.*` or `_INBOX.#` would
 * read everybody's replies, so the second token must be literal; ids are random, so guessing is futile.
 */
export function isPrivateInbox(pattern: string): boolean {
  if (!pattern.startsWith('_INBOX.')) return false;
  const second = pattern.split('.', 2)[1];
  return second !== undefined && second !== '' && second !== '*' && second !== '#';
}

/** Queue, stream and task names: exact, `*` for any, or a `prefix*` glob. */
export function nameMatches(entry: string, name: string): boolean {
  if (entry === '*' || entry === name) return true;
  return entry.endsWith('*') && name.startsWith(entry.slice(0, -1));
}

/**
 * Whether every topic matched by `requested` is also matched by `allowed` (pattern ⊆ pattern), with
 * `*` = exactly one token and `#` = zero or more, over non-empty topics.
 *
 * Both patterns are small automata over tokens (`#` is a state that loops on any token). The check walks
 * the two determinised automata in step — one symbol per literal that occurs in either pattern, plus one
 * standing for every other token — and fails as soon as some non-empty token sequence reaches the end
 * of `requested` but not of `allowed`. That is exact (no guessing about where a `#` ends) and small:
 * the reachable state pairs are bounded by the pattern lengths; past a generous cap the answer is "no",
 * which only ever denies.
 */
export function patternCovers(allowed: string, requested: string): boolean {
  const a = allowed.split('.');
  const r = requested.split('.');
  const OTHER = '\u0000other';
  const symbols = [...new Set([...a, ...r].filter((t) => t !== '*' && t !== '#')), OTHER];
  /** ε-closure: a `#` may match nothing, so its state also stands at the next one. */
  const close = (p: string[], states: Iterable<number>): number[] => {
    const out = new Set<number>();
    for (let s of states) {
      out.add(s);
      while (p[s] === '#') out.add(++s);
    }
    return [...out].sort((x, y) => x - y);
  };
  const step = (p: string[], states: number[], symbol: string): number[] => {
    const next: number[] = [];
    for (const s of states) {
      const t = p[s];
      if (t === undefined) continue;
      if (t === '#') next.push(s);
      else if (t === '*' || t === symbol) next.push(s + 1);
    }
    return close(p, next);
  };
  const start: [number[], number[]] = [close(r, [0]), close(a, [0])];
  const seen = new Set<string>();
  const queue = [start];
  // The start pair is never checked for acceptance: topics have at least one token.
  for (let i = 0; i < queue.length; i++) {
    if (i > 10_000) return false;
    const [rs, as] = queue[i]!;
    for (const symbol of symbols) {
      const nr = step(r, rs, symbol);
      if (nr.length === 0) continue;
      const na = step(a, as, symbol);
      if (nr.includes(r.length) && !na.includes(a.length)) return false;
      const key = `${nr.join(',')}|${na.join(',')}`;
      if (seen.has(key)) continue;
      seen.add(key);
      queue.push([nr, na]);
    }
  }
  return true;
}

/**
 * Validates a `permissions` claim. Malformed claims are refused outright (AUTH_FAILED) rather than
 * read leniently: a typo must never widen what a token allows. Unknown keys are ignored.
 */
export function parsePermissions(claim: unknown): Permissions | undefined {
  if (claim === undefined || claim === null) return undefined;
  if (typeof claim !== 'object' || Array.isArray(claim)) {
    throw new MessagingError('AUTH_FAILED', 'the token\'s "permissions" claim must be an object');
  }
  const out: Permissions = {};
  for (const key of CLAIM_KEYS) {
    const value = (claim as Record<string, unknown>)[key];
    if (value === undefined) continue;
    if (
      !Array.isArray(value) ||
      value.some((v) => typeof v !== 'string' || v === '') ||
      value.length > 1000
    ) {
      throw new MessagingError(
        'AUTH_FAILED',
        `the token's permissions.${key} must be an array of non-empty strings`,
      );
    }
    const list = value as string[];
    if ((key === 'publish' || key === 'subscribe') && list.some((p) => !isValidPattern(p))) {
      throw new MessagingError(
        'AUTH_FAILED',
        `the token's permissions.${key} holds an invalid topic pattern`,
      );
    }
    out[key] = Object.freeze([...list]);
  }
  return out;
}

function denied(identity: Identity, permission: string, resource: string, what: string): MessagingError {
  return new MessagingError(
    'PERMISSION_DENIED',
    `"${identity.subject}" may not ${what} "${resource.slice(0, 255)}"`,
    { details: { permission, resource: resource.slice(0, 255) } },
  );
}

/**
 * The one check feature code calls before acting on a named queue, stream or task. `identity` is
 * `session.identity` (native, WebSocket) or `req.identity` (REST); undefined means security is off.
 * Throws PERMISSION_DENIED with `details: {permission, resource}`.
 */
export function authorize(identity: Identity | undefined, kind: ResourceKind, name: string): void {
  if (identity && !identity.canAccess(kind, name)) {
    throw denied(identity, kind, name, `use ${kind.slice(0, -1)}`);
  }
}

export function authorizePublish(identity: Identity | undefined, topic: string): void {
  if (identity && !identity.canPublish(topic)) throw denied(identity, 'publish', topic, 'publish to');
}

export function authorizeSubscribe(identity: Identity | undefined, pattern: string): void {
  if (identity && !identity.canSubscribe(pattern)) {
    throw denied(identity, 'subscribe', pattern, 'subscribe to');
  }
}
