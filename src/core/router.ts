/**
 * Topic routing: a token trie plus a bounded match cache (the idea of nats-server's sublist, with AMQP
 * topic-exchange wildcards: `*` = exactly one token, `#` = zero or more tokens anywhere).
 *
 * Why a trie: a publish walks one path per live wildcard branch, so its cost depends on the topic's
 * length and on how many *different* patterns could match it — not on how many subscriptions exist.
 * Why a cache: most traffic repeats a small set of topics; a hit is one `Map.get` and returns a result
 * built earlier, with no allocation. Every add/remove bumps a generation counter and each cached result
 * remembers the generation it was built in, so a stale result is never returned; it is rebuilt in place
 * on the next lookup, which keeps mutation O(1) instead of scanning the cache like sublist does.
 */
import { validatePattern, validateTopic } from './topic.ts';

/** What `match` returns. Shared between callers when it comes from the cache: never mutate it. */
export interface MatchResult<T> {
  /** Every matching entry without a queue group, each entry once. */
  readonly plain: readonly T[];
  /** One array per queue-group name with at least one matching member, each member entry once. */
  readonly groups: readonly (readonly T[])[];
  /** `groupNames[i]` is the queue-group name of `groups[i]`. */
  readonly groupNames: readonly string[];
}

/** A subscription held by the router; pass it back to `remove`. */
export interface RouteEntry<T> {
  readonly pattern: string;
  readonly value: T;
  readonly queueGroup: string | undefined;
}

export interface RouterOptions {
  /**
   * Most topics whose match results are kept; 0 disables the cache. Default 1024 (sublist's figure):
   * large enough for the hot topics of a busy server, small enough that a flood of one-off topics costs
   * little memory.
   */
  readonly cacheSize?: number;
}

const DEFAULT_CACHE_SIZE = 1024;

/** Returned when nothing matches, so misses on unrouted topics allocate no result. */
const EMPTY: MatchResult<never> = Object.freeze({
  plain: Object.freeze([]),
  groups: Object.freeze([]),
  groupNames: Object.freeze([]),
});

class Entry<T> implements RouteEntry<T> {
  /** Position in `node.entries`, so removal is a swap-and-pop instead of a search. */
  slot = -1;
  constructor(
    readonly owner: Router<T>,
    readonly pattern: string,
    readonly value: T,
    readonly queueGroup: string | undefined,
    public node: Node<T> | null,
  ) {}
}

class Node<T> {
  literal: Map<string, Node<T>> | null = null;
  star: Node<T> | null = null;
  hash: Node<T> | null = null;
  /** Entries whose pattern ends at this node. */
  readonly entries: Entry<T>[] = [];
  /**
   * `#` nodes only: in match number `epoch`, positions `lo..n` have already been expanded from this
   * node. Several `#` on a path can reach the same `#` node at many positions; remembering the covered
   * suffix makes each (node, position) pair expand once, so a match is O(nodes × tokens) instead of
   * exponential, and an entry can never be collected twice (`a.#.#` on `a.b.c`).
   */
  epoch = 0;
  lo = 0;
  constructor(
    readonly parent: Node<T> | null,
    readonly token: string,
  ) {}

  isEmpty(): boolean {
    return (
      this.entries.length === 0 &&
      this.star === null &&
      this.hash === null &&
      (this.literal === null || this.literal.size === 0)
    );
  }
}

interface CacheSlot<T> {
  generation: number;
  result: MatchResult<T>;
}

/**
 * Maps topic patterns to values. `T` is whatever the caller routes to (a subscription, a queue…).
 */
export class Router<T> {
  private readonly root = new Node<T>(null, '');
  private readonly cacheSize: number;
  private readonly cache = new Map<string, CacheSlot<T>>();
  /** Bumped by every add/remove/clear; a cached result from an older generation is rebuilt. */
  private generation = 0;
  private count = 0;
  private hits = 0;
  private misses = 0;

  // Scratch state of the match in progress. `match` never calls out to user code, so it cannot be
  // re-entered; keeping this on the instance spares passing six arguments down every recursive call.
  private epoch = 0;
  private tokens: string[] = [];
  private n = 0;
  private outPlain: T[] = [];
  private outGroups: T[][] = [];
  private outNames: string[] = [];

  constructor(options: RouterOptions = {}) {
    const size = options.cacheSize ?? DEFAULT_CACHE_SIZE;
    if (!Number.isInteger(size) || size < 0) {
      throw new RangeError(`cacheSize must be a non-negative integer, got ${String(size)}`);
    }
    this.cacheSize = size;
  }

  /** Number of entries. */
  get size(): number {
    return this.count;
  }

  /** Lookups answered from the cache. */
  get cacheHits(): number {
    return this.hits;
  }

  /** Lookups that had to walk the trie (all of them when the cache is disabled). */
  get cacheMisses(): number {
    return this.misses;
  }

  /** Number of topics currently cached (never more than `cacheSize`). */
  get cachedTopics(): number {
    return this.cache.size;
  }

  /**
   * Adds `value` under `pattern` (validated; throws `INVALID_PATTERN`). Adding the same value twice
   * makes two entries, each matched and removed on its own.
   */
  add(pattern: string, value: T, queueGroup?: string): RouteEntry<T> {
    validatePattern(pattern);
    let node = this.root;
    let start = 0;
    for (;;) {
      const dot = pattern.indexOf('.', start);
      const token = dot === -1 ? pattern.slice(start) : pattern.slice(start, dot);
      node = this.child(node, token);
      if (dot === -1) break;
      start = dot + 1;
    }
    const entry = new Entry<T>(this, pattern, value, queueGroup, node);
    entry.slot = node.entries.length;
    node.entries.push(entry);
    this.count++;
    this.generation++;
    return entry;
  }

  /** Removes an entry returned by `add`. False if it was already removed or belongs to another router. */
  remove(entry: RouteEntry<T>): boolean {
    const e = entry as Entry<T>;
    if (!(e instanceof Entry) || e.owner !== this || e.node === null) return false;
    const node = e.node;
    const entries = node.entries;
    const last = entries.pop()!;
    if (last !== e) {
      entries[e.slot] = last;
      last.slot = e.slot;
    }
    e.node = null;
    e.slot = -1;
    this.count--;
    this.generation++;
    this.prune(node);
    return true;
  }

  /** Removes every entry and empties the cache. */
  clear(): void {
    const root = this.root;
    // Detach the entries first so a later `remove` of one of them is a harmless `false`.
    this.detachAll(root);
    root.literal = null;
    root.star = null;
    root.hash = null;
    root.entries.length = 0;
    this.cache.clear();
    this.count = 0;
    this.generation++;
  }

  /**
   * Everything that matches `topic`. Throws `INVALID_TOPIC` on an invalid topic (checked on cache
   * misses only: a cached topic was valid when it was cached). The result may be shared: read-only.
   */
  match(topic: string): MatchResult<T> {
    if (this.cacheSize === 0) {
      this.misses++;
      return this.compute(topic);
    }
    const slot = this.cache.get(topic);
    if (slot !== undefined) {
      if (slot.generation === this.generation) {
        this.hits++;
        return slot.result;
      }
      // Stale: rebuild in place. The slot keeps its place in insertion order — it is an approximate
      // FIFO, which is all eviction needs.
      this.misses++;
      const result = this.compute(topic);
      slot.result = result;
      slot.generation = this.generation;
      return result;
    }
    this.misses++;
    const result = this.compute(topic);
    if (this.cache.size >= this.cacheSize) this.evict();
    this.cache.set(topic, { generation: this.generation, result });
    return result;
  }

  /**
   * Drops the oldest eighth of the cache (at least one). Map iteration follows insertion order, so
   * this is FIFO for free; evicting a batch means the sweep runs once per cacheSize/8 misses rather
   * than on each, and unlike LRU a hit never has to reorder anything.
   */
  private evict(): void {
    let drop = Math.max(1, this.cacheSize >>> 3);
    for (const key of this.cache.keys()) {
      this.cache.delete(key);
      if (--drop === 0) break;
    }
  }

  private compute(topic: string): MatchResult<T> {
    validateTopic(topic);
    this.tokens = topic.split('.');
    this.n = this.tokens.length;
    this.epoch++;
    this.outPlain = [];
    this.outGroups = [];
    this.outNames = [];
    this.step(this.root, 0);
    const plain = this.outPlain;
    const groups = this.outGroups;
    const groupNames = this.outNames;
    // Drop references so the router does not pin the last topic's arrays.
    this.tokens = [];
    this.outPlain = [];
    this.outGroups = [];
    this.outNames = [];
    if (plain.length === 0 && groups.length === 0) return EMPTY;
    return { plain, groups, groupNames };
  }

  /** Enter `node` having consumed `j` tokens. */
  private visit(node: Node<T>, j: number): void {
    if (node.token !== '#') {
      this.step(node, j);
      return;
    }
    // `#` may swallow any number of the remaining tokens: expand it at j, j+1, …, n — minus the suffix
    // already expanded in this match (see Node.epoch).
    let stop = this.n + 1;
    if (node.epoch === this.epoch) {
      if (j >= node.lo) return;
      stop = node.lo;
    } else {
      node.epoch = this.epoch;
    }
    node.lo = j;
    for (let k = j; k < stop; k++) this.step(node, k);
  }

  /** At `node` with `j` tokens consumed: collect if the topic is used up, else follow the children. */
  private step(node: Node<T>, j: number): void {
    if (j === this.n) {
      if (node.entries.length !== 0) this.collect(node.entries);
      // A trailing `#` matches zero tokens.
      if (node.hash !== null) this.visit(node.hash, j);
      return;
    }
    if (node.literal !== null) {
      const next = node.literal.get(this.tokens[j]!);
      if (next !== undefined) this.visit(next, j + 1);
    }
    if (node.star !== null) this.visit(node.star, j + 1);
    if (node.hash !== null) this.visit(node.hash, j);
  }

  private collect(entries: readonly Entry<T>[]): void {
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const group = e.queueGroup;
      if (group === undefined) {
        this.outPlain.push(e.value);
        continue;
      }
      // Groups per match are few; a linear scan beats allocating a Map on every miss.
      const names = this.outNames;
      let g = 0;
      while (g < names.length && names[g] !== group) g++;
      if (g === names.length) {
        names.push(group);
        this.outGroups.push([e.value]);
      } else {
        this.outGroups[g]!.push(e.value);
      }
    }
  }

  private child(node: Node<T>, token: string): Node<T> {
    if (token === '*') return (node.star ??= new Node<T>(node, token));
    if (token === '#') return (node.hash ??= new Node<T>(node, token));
    const literal = (node.literal ??= new Map());
    let next = literal.get(token);
    if (next === undefined) {
      next = new Node<T>(node, token);
      literal.set(token, next);
    }
    return next;
  }

  /** Unlinks nodes left with no entries and no children, so churned patterns do not leak trie nodes. */
  private prune(node: Node<T>): void {
    let cur: Node<T> | null = node;
    while (cur !== null && cur.parent !== null && cur.isEmpty()) {
      const parent: Node<T> = cur.parent;
      if (cur.token === '*') parent.star = null;
      else if (cur.token === '#') parent.hash = null;
      else parent.literal?.delete(cur.token);
      cur = parent;
    }
  }

  private detachAll(node: Node<T>): void {
    const stack: Node<T>[] = [node];
    while (stack.length !== 0) {
      const cur = stack.pop()!;
      for (const e of cur.entries) {
        e.node = null;
        e.slot = -1;
      }
      if (cur.literal !== null) for (const c of cur.literal.values()) stack.push(c);
      if (cur.star !== null) stack.push(cur.star);
      if (cur.hash !== null) stack.push(cur.hash);
    }
  }
}
