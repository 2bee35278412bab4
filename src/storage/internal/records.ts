/**
 * Journal records: every durable state change is one of these facts. Records state outcomes, never
 * commands ("entry k of queue q was dead-lettered with reason r at t", not "expire what is due"), so
 * replaying them needs no clock and no decisions and always rebuilds the same state. The memory engine
 * applies them too, which keeps both engines on one code path.
 */
import type { ScheduleRecord, TaskPatch, TaskRecord } from '../task-types.ts';
import type { DeadLetterReason, Message, QueueSpec, StreamSpec } from '../types.ts';

/** A message's state in one queue, as carried in a `msg` record. */
export interface EntryFact {
  q: string;
  /** FIFO position (the message key unless replayed from the dead letters). */
  o: number;
  /** Deliveries so far. */
  dc: number;
  /** Not before (ms), 0 = now. */
  nb: number;
  /** Expires at (ms), 0 = never. */
  ex: number;
  dead?: DeadFact;
}

export interface DeadFact {
  reason: DeadLetterReason;
  at: number;
  error?: string;
}

export interface QueueMeta {
  spec: QueueSpec;
  published: number;
  acked: number;
  dead: number;
}

export interface StreamMeta {
  spec: StreamSpec;
  first: number;
  last: number;
  readers: Record<string, number>;
}

/** The message without its payload: what state needs (payloads live in the engine). */
export type MessageHead = Omit<Message, 'payload'>;

/**
 * The head of a message: every field but the payload. Built field by field on purpose — an object rest
 * (`const { payload, ...head } = msg`) makes V8 create a dictionary-mode object, on which every read of
 * an absent optional field is a slow lookup (measured: ~0.8 µs for six reads, on every delivery).
 */
export function headOf(m: Message): MessageHead {
  const head: MessageHead = {
    id: m.id,
    topic: m.topic,
    headers: m.headers,
    priority: m.priority,
    timestamp: m.timestamp,
  };
  if (m.ttl_ms !== undefined) head.ttl_ms = m.ttl_ms;
  if (m.deliver_at !== undefined) head.deliver_at = m.deliver_at;
  if (m.correlation_id !== undefined) head.correlation_id = m.correlation_id;
  if (m.reply_to !== undefined) head.reply_to = m.reply_to;
  if (m.type !== undefined) head.type = m.type;
  if (m.trace_id !== undefined) head.trace_id = m.trace_id;
  return head;
}

export type Rec =
  /** Full control state; heads every file segment so older segments can go without losing declarations. */
  | { t: 'meta'; next: number; queues: QueueMeta[]; streams: StreamMeta[]; schedules?: ScheduleRecord[] }
  | { t: 'qdecl'; spec: QueueSpec }
  | { t: 'qdel'; q: string }
  /** Drop every waiting entry of `q` except the keys in `keep` (deliveries held by consumers). */
  | { t: 'qpurge'; q: string; keep: number[] }
  | { t: 'sdecl'; spec: StreamSpec }
  | { t: 'sdel'; s: string }
  /**
   * A message and where it is. `carried`: rewritten by compaction; if the key is already known only its
   * location changes.
   */
  | {
      t: 'msg';
      key: number;
      head: MessageHead;
      payload?: Uint8Array;
      queues: EntryFact[];
      streams: { s: string; seq: number }[];
      carried?: boolean;
    }
  | { t: 'ack'; q: string; key: number }
  /** A consumer's batch of acks on one queue: one record instead of one per message. */
  | { t: 'acks'; q: string; keys: number[] }
  | { t: 'requeue'; q: string; key: number; dc: number; nb: number }
  | { t: 'dead'; q: string; key: number; dc: number; reason: DeadLetterReason; at: number; error?: string }
  /** Dead letters back to the queue, each with a new FIFO position. */
  | { t: 'replay'; q: string; items: { key: number; o: number }[] }
  | { t: 'dlpurge'; q: string; keys: number[] }
  /** Everything below `first` leaves the stream. */
  | { t: 'trim'; s: string; first: number }
  /** `pos` null deletes the reader. */
  | { t: 'reader'; s: string; r: string; pos: number | null }
  /**
   * Task facts, applied together (one atomic change): new records (`carried`: rewritten by compaction,
   * replacing the whole record), field changes, removals, and the schedule tick that created `add`.
   */
  | TaskRec
  /** A schedule saved or removed (schedules are control state: every segment's `meta` repeats them). */
  | { t: 'sched'; put?: ScheduleRecord; del?: string };

export type TaskSetFact = TaskPatch & { id: string };

export interface TaskRec {
  t: 'task';
  add?: TaskRecord[];
  set?: TaskSetFact[];
  del?: string[];
  tick?: { id: string; tick: number };
  carried?: boolean;
}

/** Where a record sits in the journal; the memory engine has none. */
export interface Loc {
  seg: number;
  off: number;
  len: number;
}
