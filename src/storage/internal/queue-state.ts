/**
 * Per-queue bookkeeping on top of the shared tables: one ready heap per priority (keyed by FIFO order),
 * a heap of delayed entries (keyed by not-before), one of entries with a TTL (keyed by expiry) and one of
 * deliveries (keyed by ack deadline). Heaps hold slot numbers and are validated lazily against the tables.
 */
import type { DeadLetterReason, QueueSpec } from '../types.ts';
import { PairHeap } from './heap.ts';

export const PRIORITY_LEVELS = 6;

export interface InFlight {
  id: string;
  slot: number;
  consumer: string;
  deadline: number;
}

export interface DeadInfo {
  slot: number;
  reason: DeadLetterReason;
  failures: number;
  error: string | undefined;
  at: number;
}

export class QueueState {
  readonly ready: PairHeap[] = Array.from({ length: PRIORITY_LEVELS }, () => new PairHeap());
  readonly delayed = new PairHeap();
  readonly ttl = new PairHeap();
  readonly timeouts = new PairHeap();
  /** Deliveries by delivery id, and by entry slot. Not journaled: after a restart they are ready again. */
  readonly inflight = new Map<string, InFlight>();
  readonly inflightBySlot = new Map<number, InFlight>();
  /**
   * Dead letters by message key. Listed in (time, key) order: that is insertion order unless
   * `deadUnordered` (replay may re-insert compacted dead letters late), then listing sorts.
   */
  readonly dead = new Map<number, DeadInfo>();
  deadUnordered = false;
  lastDeadAt = 0;
  lastDeadKey = 0;

  nReady = 0;
  nDelayed = 0;
  published = 0;
  acked = 0;
  deadTotal = 0;

  constructor(
    readonly id: number,
    public spec: QueueSpec,
  ) {}

  get nInflight(): number {
    return this.inflight.size;
  }

  get readyHeapSize(): number {
    let n = 0;
    for (const h of this.ready) n += h.size;
    return n;
  }
}
