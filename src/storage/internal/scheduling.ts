/**
 * Read-mostly queue and stream helpers over the shared state: which entry is served next, which is
 * oldest, when something falls due, where a stream must be trimmed. None of them journals anything;
 * the engine turns their answers into records.
 */
import type { QueueState } from './queue-state.ts';
import type { State } from './state.ts';
import type { StreamState } from './stream-state.ts';
import { DELAYED, READY } from './tables.ts';

/**
 * Delayed entries whose time has come become ready. Not a journaled fact: replay decides delayed or
 * ready by the clock, so recording it would add nothing.
 */
export function promote(state: State, q: QueueState, now: number): boolean {
  const e = state.entries;
  let any = false;
  while (q.delayed.size && q.delayed.peekKey() <= now) {
    const nb = q.delayed.peekKey();
    const slot = q.delayed.peekVal();
    q.delayed.pop();
    if (!state.isDelayedPair(q, nb, slot)) continue;
    e.state[slot] = READY;
    q.nDelayed--;
    q.nReady++;
    q.ready[e.prio[slot]!]!.push(state.orderOf(slot), slot);
    any = true;
  }
  return any;
}

/** Pops the next ready entry (highest priority, lowest order) or returns -1. */
export function popReady(state: State, q: QueueState): number {
  for (let p = q.ready.length - 1; p >= 0; p--) {
    const heap = q.ready[p]!;
    while (heap.size) {
      const order = heap.peekKey();
      const slot = heap.peekVal();
      heap.pop();
      if (state.isReadyPair(q, order, slot)) return slot;
    }
  }
  return -1;
}

/** The oldest ready entry without removing it, or -1. */
export function oldestReady(state: State, q: QueueState): number {
  let best = -1;
  let bestOrder = Infinity;
  for (const heap of q.ready) {
    while (heap.size && !state.isReadyPair(q, heap.peekKey(), heap.peekVal())) heap.pop();
    if (heap.size && heap.peekKey() < bestOrder) {
      bestOrder = heap.peekKey();
      best = heap.peekVal();
    }
  }
  return best;
}

/** Oldest waiting entry (ready first, else delayed) for drop-oldest overflow, or -1. */
export function oldestWaiting(state: State, q: QueueState): number {
  const ready = oldestReady(state, q);
  if (ready >= 0) return ready;
  // Only delayed entries remain: rare enough for a scan.
  const e = state.entries;
  let best = -1;
  for (let s = 0; s < e.limit; s++) {
    if (e.state[s] === DELAYED && e.queue[s] === q.id && (best < 0 || state.orderOf(s) < state.orderOf(best)))
      best = s;
  }
  return best;
}

/** Drops stale heap tops and returns the earliest time something of the queue falls due. */
export function nextDue(state: State, q: QueueState): number {
  let next = Infinity;
  while (q.delayed.size && !state.isDelayedPair(q, q.delayed.peekKey(), q.delayed.peekVal())) q.delayed.pop();
  if (q.delayed.size) next = Math.min(next, q.delayed.peekKey());
  while (q.ttl.size && !state.isTtlPair(q, q.ttl.peekKey(), q.ttl.peekVal())) q.ttl.pop();
  if (q.ttl.size) next = Math.min(next, q.ttl.peekKey());
  while (q.timeouts.size && q.inflightBySlot.get(q.timeouts.peekVal())?.deadline !== q.timeouts.peekKey())
    q.timeouts.pop();
  if (q.timeouts.size) next = Math.min(next, q.timeouts.peekKey());
  return next;
}

/** First sequence whose message timestamp is ≥ time (binary search: stream timestamps ascend). */
export function seqAtTime(state: State, s: StreamState, time: number): number {
  let lo = s.first;
  let hi = s.last + 1;
  while (lo < hi) {
    const mid = lo + Math.floor((hi - lo) / 2);
    const p = s.nextPresent(mid);
    if (p > s.last) hi = mid;
    else if (state.bodies.ts[s.get(p)]! >= time) hi = mid;
    else lo = p + 1;
  }
  return lo;
}

/** The first sequence the stream may keep under its limits at `now` (its current first when within). */
export function retentionPoint(state: State, s: StreamState, now: number): number {
  const { max_msgs: maxMsgs, max_bytes: maxBytes, max_age_ms: maxAge } = s.spec;
  if (maxMsgs === undefined && maxBytes === undefined && maxAge === undefined) return s.first;
  const b = state.bodies;
  let count = s.count;
  let bytes = s.bytes;
  let first = s.first;
  for (let seq = s.nextPresent(s.first); seq <= s.last; seq = s.nextPresent(seq + 1)) {
    const h = s.get(seq);
    const over =
      (maxMsgs !== undefined && count > maxMsgs) ||
      (maxBytes !== undefined && bytes > maxBytes) ||
      (maxAge !== undefined && b.ts[h]! <= now - maxAge);
    if (!over) break;
    count--;
    bytes -= b.sizeOf(h);
    first = seq + 1;
  }
  return first;
}
