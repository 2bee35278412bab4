/**
 * At-most-once pub/sub and request routing (DESIGN.md delivery modes 1 and 4), with no knowledge of
 * sockets or frames: the server plugs in one `Subscriber` per connection subscription and turns
 * `request` returning 0 into a `no_responders` error. Nothing is stored; a message nobody matches is gone.
 */
import { MessagingError } from '../protocol/errors.ts';
import { type MatchResult, type RouteEntry, Router } from './router.ts';

/** A message as pub/sub moves it. The same object is handed to every subscriber of one publish. */
export interface PubSubMessage {
  readonly topic: string;
  /** Reply subject (the requester's inbox), empty when none. */
  readonly reply: string;
  readonly meta: Record<string, unknown> | undefined;
  readonly payload: Uint8Array;
  /**
   * Free slot for a transport: the first subscriber to encode the message may store the bytes here so
   * the others reuse them. Pub/sub only carries it.
   */
  encoded?: Uint8Array;
}

/** The receiving end the server implements (per connection subscription). */
export interface Subscriber {
  readonly id: number;
  /**
   * Hands the message over, synchronously. Should not throw; if it does, the message counts as dropped
   * for this subscriber and delivery to the others carries on.
   */
  deliver(message: PubSubMessage): void;
}

/** A live registration, returned by `PubSub.subscribe`. */
export interface Subscription {
  readonly pattern: string;
  readonly queueGroup: string | undefined;
  readonly subscriber: Subscriber;
  /** Messages delivered to this subscription so far (deliveries that threw are not counted). */
  readonly delivered: number;
  /** Auto-unsubscribe limit, if one was set. */
  readonly max: number | undefined;
  /** False once unsubscribed, by hand or by reaching `max`. */
  readonly active: boolean;
  /** Stops delivery. False if it was already inactive. */
  unsubscribe(): boolean;
  /**
   * Unsubscribe once `max` messages in total have been delivered, counting those already delivered —
   * NATS `UNSUB <sid> <max>`; if that many were already delivered it unsubscribes now.
   */
  autoUnsubscribe(max: number): void;
}

export interface PubSubOptions {
  /** Match-cache size handed to the router; 0 disables the cache. */
  readonly cacheSize?: number;
}

/** Round-robin position of one queue group, shared by every subscription with that name. */
class GroupState {
  next = 0;
  refs = 0;
  constructor(readonly name: string) {}
}

/** The state subscriptions need to remove themselves, without a back door into PubSub's privates. */
interface Registry {
  readonly router: Router<Sub>;
  readonly groups: Map<string, GroupState>;
}

class Sub implements Subscription {
  delivered = 0;
  max: number | undefined = undefined;
  /** Value of PubSub's request sequence when this was last chosen as a responder (0 = never). */
  lastPicked = 0;
  entry: RouteEntry<Sub> | null = null;

  constructor(
    private readonly registry: Registry,
    readonly pattern: string,
    readonly subscriber: Subscriber,
    readonly queueGroup: string | undefined,
    readonly group: GroupState | null,
  ) {}

  get active(): boolean {
    return this.entry !== null;
  }

  unsubscribe(): boolean {
    const entry = this.entry;
    if (entry === null) return false;
    this.entry = null;
    this.registry.router.remove(entry);
    const group = this.group;
    if (group !== null && --group.refs === 0) this.registry.groups.delete(group.name);
    return true;
  }

  autoUnsubscribe(max: number): void {
    if (!Number.isInteger(max) || max < 1) {
      throw new MessagingError('BAD_REQUEST', `max must be a positive integer, got ${String(max)}`);
    }
    this.max = max;
    if (this.delivered >= max) this.unsubscribe();
  }
}

/** Pub/sub fan-out, queue groups and one-responder requests over a `Router`. */
export class PubSub {
  private readonly router: Router<Sub>;
  private readonly registry: Registry;
  private messagesInCount = 0;
  private deliveriesCount = 0;
  private droppedCount = 0;
  /** Ticks once per responder choice; `Sub.lastPicked` compares against it. */
  private requestSeq = 0;

  constructor(options: PubSubOptions = {}) {
    this.router = new Router<Sub>(options.cacheSize === undefined ? {} : { cacheSize: options.cacheSize });
    this.registry = { router: this.router, groups: new Map() };
  }

  /** Live subscriptions. */
  get size(): number {
    return this.router.size;
  }

  /** Messages given to `publish` or `request`. */
  get messagesIn(): number {
    return this.messagesInCount;
  }

  /** Successful `deliver` calls. */
  get deliveries(): number {
    return this.deliveriesCount;
  }

  /** `deliver` calls that threw. */
  get dropped(): number {
    return this.droppedCount;
  }

  get cacheHits(): number {
    return this.router.cacheHits;
  }

  get cacheMisses(): number {
    return this.router.cacheMisses;
  }

  /**
   * Registers `subscriber` for topics matching `pattern` (throws `INVALID_PATTERN`). Subscriptions with
   * the same `queueGroup` name — on any pattern — share messages: each message goes to one of them.
   */
  subscribe(pattern: string, subscriber: Subscriber, queueGroup?: string): Subscription {
    if (queueGroup !== undefined) checkQueueGroup(queueGroup);
    let group: GroupState | null = null;
    if (queueGroup !== undefined) {
      group = this.registry.groups.get(queueGroup) ?? null;
      if (group === null) {
        group = new GroupState(queueGroup);
        this.registry.groups.set(queueGroup, group);
      }
    }
    const sub = new Sub(this.registry, pattern, subscriber, queueGroup, group);
    try {
      sub.entry = this.router.add(pattern, sub, queueGroup);
    } catch (err) {
      if (group !== null && group.refs === 0) this.registry.groups.delete(group.name);
      throw err;
    }
    if (group !== null) group.refs++;
    return sub;
  }

  /**
   * Delivers `message` to every matching subscription without a queue group and to one member of each
   * matching queue group (round-robin, so members split the load evenly). Returns the number of
   * deliveries. Throws `INVALID_TOPIC` for an invalid topic.
   */
  publish(message: PubSubMessage): number {
    this.messagesInCount++;
    const result = this.router.match(message.topic);
    let delivered = 0;
    // The result is an immutable snapshot: a subscriber that (un)subscribes from inside `deliver`
    // changes the router, not the arrays being walked here; `entry !== null` skips the departed.
    const plain = result.plain;
    for (let i = 0; i < plain.length; i++) {
      const sub = plain[i]!;
      if (sub.entry !== null && this.send(sub, message)) delivered++;
    }
    const groups = result.groups;
    for (let i = 0; i < groups.length; i++) {
      if (this.sendToGroup(groups[i]!, message)) delivered++;
    }
    return delivered;
  }

  /**
   * Delivers `message` to exactly one responder among all matching subscriptions, grouped or not,
   * choosing the one chosen least recently (round-robin over the combined candidates, which stays fair
   * when candidates differ from topic to topic). If that responder's `deliver` throws, the next one is
   * tried. Returns 1 if someone took it, 0 when nobody listens (the server answers `no_responders`).
   * Throws `INVALID_TOPIC` for an invalid topic.
   */
  request(message: PubSubMessage): number {
    this.messagesInCount++;
    const result = this.router.match(message.topic);
    let candidates = result.plain.length;
    const groups = result.groups;
    for (let i = 0; i < groups.length; i++) candidates += groups[i]!.length;
    for (let attempt = 0; attempt < candidates; attempt++) {
      const sub = leastRecentlyPicked(result);
      if (sub === null) return 0;
      sub.lastPicked = ++this.requestSeq;
      if (this.send(sub, message)) return 1;
    }
    return 0;
  }

  /** Round-robin within one queue group; skips members that left or whose `deliver` threw. */
  private sendToGroup(members: readonly Sub[], message: PubSubMessage): boolean {
    const len = members.length;
    // Every member of one router group shares the group name, hence the same GroupState.
    const group = members[0]!.group!;
    for (let attempt = 0; attempt < len; attempt++) {
      let i = group.next;
      if (i >= len) i %= len;
      group.next = i + 1;
      const sub = members[i]!;
      if (sub.entry !== null && this.send(sub, message)) return true;
    }
    return false;
  }

  private send(sub: Sub, message: PubSubMessage): boolean {
    try {
      sub.subscriber.deliver(message);
    } catch {
      // A broken subscriber must not stop the publisher or the other subscribers; it is counted and
      // the server's own subscriber implementation decides what to log.
      this.droppedCount++;
      return false;
    }
    this.deliveriesCount++;
    const max = sub.max;
    if (++sub.delivered === max) sub.unsubscribe();
    return true;
  }
}

function leastRecentlyPicked(result: MatchResult<Sub>): Sub | null {
  let best: Sub | null = null;
  const plain = result.plain;
  for (let i = 0; i < plain.length; i++) {
    const sub = plain[i]!;
    if (sub.entry !== null && (best === null || sub.lastPicked < best.lastPicked)) best = sub;
  }
  const groups = result.groups;
  for (let g = 0; g < groups.length; g++) {
    const members = groups[g]!;
    for (let i = 0; i < members.length; i++) {
      const sub = members[i]!;
      if (sub.entry !== null && (best === null || sub.lastPicked < best.lastPicked)) best = sub;
    }
  }
  return best;
}

/** Queue-group names travel on the wire and appear in metrics: non-empty, bounded, no whitespace. */
function checkQueueGroup(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > 255 || /\s/.test(name)) {
    throw new MessagingError(
      'BAD_REQUEST',
      `Invalid queue group ${JSON.stringify(String(name).slice(0, 64))}: 1 to 255 characters, no whitespace`,
    );
  }
}
