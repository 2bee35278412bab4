/**
 * The storage contract, in queue terms. Every engine (memory, file, PostgreSQL) implements
 * `Storage` and passes `test/storage/conformance.ts`. Nothing here names files, rows or sockets: an engine
 * is free to keep its facts however it likes as long as the observable behaviour is the same.
 *
 * Field names are snake_case where they travel to clients unchanged (messages, specs, stats).
 */
import type {
  ClaimTarget,
  ScheduleRecord,
  TaskChange,
  TaskChangeOutcome,
  TaskCounts,
  TaskFilter,
  TaskPatch,
  TaskProgress,
  TaskRecord,
  TaskState,
  TaskTickResult,
} from './task-types.ts';

/** `lowest` 0 … `critical` 5; higher is served first, FIFO among equals. */
export type Priority = 0 | 1 | 2 | 3 | 4 | 5;

export const DEFAULT_PRIORITY: Priority = 2;

export type MessageType = 'event' | 'command' | 'query' | 'reply' | 'notification';

/** A message as stored and delivered. Treat delivered instances as read-only: engines may share them. */
export interface Message {
  /** Time-ordered unique id (ULID); the storage assigns one when the publisher did not. */
  id: string;
  topic: string;
  headers: Record<string, string>;
  payload: Uint8Array;
  priority: Priority;
  /** Milliseconds since the epoch. */
  timestamp: number;
  /** Expires at `timestamp + ttl_ms`; an expired message is never delivered. */
  ttl_ms?: number;
  /** Not delivered before this time (ms since the epoch). */
  deliver_at?: number;
  correlation_id?: string;
  reply_to?: string;
  type?: MessageType;
  /** W3C traceparent. */
  trace_id?: string;
}

/** What a publisher hands in: the storage fills `id`, `headers`, `priority` and `timestamp` when absent. */
export type MessageInput = Omit<Message, 'id' | 'headers' | 'priority' | 'timestamp'> &
  Partial<Pick<Message, 'id' | 'headers' | 'priority' | 'timestamp'>>;

export type OverflowPolicy = 'reject-publish' | 'drop-oldest';

export interface QueueSpec {
  name: string;
  /** Topic patterns routed into this queue; stored for the router, not interpreted by storage. */
  bindings: string[];
  /** Maximum number of waiting (ready + delayed) messages; absent = unbounded. */
  max_length?: number;
  overflow: OverflowPolicy;
  /** An unacknowledged delivery is redelivered after this long. */
  ack_timeout_ms: number;
  /** After this many failed deliveries the message goes to the dead letters; 0 = never. */
  max_deliveries: number;
}

export type QueueSpecInput = Pick<QueueSpec, 'name'> & Partial<Omit<QueueSpec, 'name'>>;

export const QUEUE_DEFAULTS = {
  overflow: 'reject-publish',
  ack_timeout_ms: 30_000,
  max_deliveries: 5,
} as const satisfies Partial<QueueSpec>;

export interface Delivery {
  queue: string;
  /** Opaque; valid for this delivery attempt only. */
  delivery_id: string;
  /** 1 on the first delivery, incremented on every redelivery. */
  delivery_count: number;
  message: Message;
}

export interface NackOptions {
  /** true: back to the queue (after `delay_ms`); false: to the dead letters with reason `rejected`. */
  requeue: boolean;
  delay_ms?: number;
  /** Kept as the dead letter's `last_error`. */
  error?: string;
}

export type DeadLetterReason = 'max_deliveries' | 'expired' | 'rejected' | 'overflow';

export interface DeadLetter {
  /** Opaque dead-letter id, stable across restarts; `replayDeadLetters` also accepts message ids. */
  id: string;
  queue: string;
  reason: DeadLetterReason;
  /** Delivery attempts before it was dead-lettered. */
  failures: number;
  last_error?: string;
  dead_lettered_at: number;
  message: Message;
}

export interface QueueStats {
  queue: string;
  /** Messages ready for delivery now. */
  depth: number;
  in_flight: number;
  /** Waiting for their `deliver_at` or a nack delay. */
  delayed: number;
  dead_letters: number;
  /** Age of the oldest ready message, or null when none is ready. */
  oldest_message_age_ms: number | null;
  /** Counters since the queue was declared; rates are the caller's business. */
  published_total: number;
  acked_total: number;
  dead_lettered_total: number;
}

export interface StreamSpec {
  name: string;
  /** Topic patterns recorded into this stream; stored for the router, not interpreted by storage. */
  bindings: string[];
  max_age_ms?: number;
  max_bytes?: number;
  max_msgs?: number;
}

export type StreamSpecInput = Pick<StreamSpec, 'name'> & Partial<Omit<StreamSpec, 'name'>>;

export interface StreamInfo extends StreamSpec {
  /** First retained sequence; `last_seq + 1` when the stream is empty. */
  first_seq: number;
  /** Last sequence ever assigned; 0 before the first message. */
  last_seq: number;
  messages: number;
  /** Sum of `messageSize` over retained messages. */
  bytes: number;
  /** Durable reader name → next sequence it will read. */
  readers: Record<string, number>;
}

/**
 * Where a read starts. `earliest`: first retained; `last`: the last message itself; `latest`: after the
 * last message (only new ones); `{seq}`: that sequence (or the first retained after it); `{time}`: first
 * message whose timestamp is ≥ time; `{reader}`: a durable reader's saved position.
 */
export type StreamStart =
  'earliest' | 'latest' | 'last' | { seq: number } | { time: number } | { reader: string };

export interface StreamMessage {
  seq: number;
  message: Message;
}

export interface StreamReadResult {
  messages: StreamMessage[];
  /** Pass as `{ seq: next_seq }` to continue. */
  next_seq: number;
  first_seq: number;
  last_seq: number;
}

export interface AppendResult {
  id: string;
  /** Sequence assigned in each stream the message was recorded in. */
  streams: Record<string, number>;
}

/** A publish applied in memory, and the promise of its durability (see `Storage.publishNow`). */
export interface PublishNow {
  result: AppendResult;
  durable: Promise<void>;
}

export interface TickResult {
  /** Deliveries whose ack timeout passed and went back to their queue. */
  redelivered: number;
  dead_lettered: number;
  /** Queues that gained ready messages (timeouts, due delays): wake their consumers. */
  ready_queues: string[];
  /** Earliest time something becomes due again, or null. Schedule the next tick for it. */
  next_due_at: number | null;
}

export interface Logger {
  warn(obj: unknown, msg?: string): void;
  info(obj: unknown, msg?: string): void;
}

/**
 * One storage interface for every engine. All methods are async; a mutating method resolves only once
 * its effect is durable under the engine's fsync policy (for `append`: the publisher confirm).
 * Errors are `MessagingError`s: NOT_FOUND, ALREADY_EXISTS, QUEUE_FULL, UNKNOWN_DELIVERY, BAD_REQUEST,
 * STORAGE_FULL (no space; nothing stored) and STORAGE_FAILURE.
 */
export interface Storage {
  readonly engine: string;

  // Queues
  /** Idempotent for an equal spec; ALREADY_EXISTS when a queue of that name differs. */
  declareQueue(spec: QueueSpecInput): Promise<QueueSpec>;
  /** Removes the queue with its messages, deliveries and dead letters. */
  deleteQueue(name: string): Promise<void>;
  listQueues(): Promise<QueueSpec[]>;
  getQueue(name: string): Promise<QueueSpec>;
  /** Drops ready and delayed messages (in-flight ones stay with their consumer); returns how many. */
  purgeQueue(name: string): Promise<number>;
  stats(name: string): Promise<QueueStats>;

  /**
   * Stores one message for one or more queues atomically. All or nothing: an unknown queue is NOT_FOUND,
   * a full `reject-publish` queue is QUEUE_FULL, and then nothing is stored; a full `drop-oldest` queue
   * dead-letters its oldest waiting message with reason `overflow`.
   */
  append(queues: string | readonly string[], message: MessageInput): Promise<AppendResult>;
  /** `append` to queues and streams in one atomic, durable step (one copy of the message is stored). */
  publish(
    targets: { queues?: readonly string[]; streams?: readonly string[] },
    message: MessageInput,
  ): Promise<AppendResult>;
  /**
   * Optional fast path of `publish` for engines that decide in memory (memory, file): the message is
   * stored — or the call throws, as `publish` would reject — before it returns, and `durable` resolves
   * once it is durable: one promise shared by every write of a group commit, so a caller confirming many
   * publishes waits on one promise per group instead of one per message. Undefined when the engine
   * cannot decide now (opening, reloading after a failed write, closed): then use `publish`.
   */
  publishNow?(
    targets: { queues?: readonly string[]; streams?: readonly string[] },
    message: MessageInput,
  ): PublishNow | undefined;

  /**
   * Up to `max` deliveries for `consumerId`, highest priority first, FIFO within a priority, skipping
   * messages not yet due. Expired messages met on the way go to the dead letters (`expired`).
   */
  take(queue: string, consumerId: string, max: number): Promise<Delivery[]>;
  /** UNKNOWN_DELIVERY when unknown, already settled, timed out, or held by another consumer. */
  ack(queue: string, consumerId: string, deliveryId: string): Promise<void>;
  /**
   * A consumer's batch of acks on one queue, each settled on its own, journaled together. Resolves once
   * they are durable with the ids that were not acked (unknown, already settled, timed out, or held by
   * another consumer; empty when all were); rejects only when the acks could not be made durable.
   */
  ackMany(queue: string, consumerId: string, deliveryIds: readonly string[]): Promise<string[]>;
  /** Requeue (optionally delayed) or reject to the dead letters. Counts as a failed delivery. */
  nack(queue: string, consumerId: string, deliveryId: string, options: NackOptions): Promise<void>;
  /** Restarts the ack timeout of a delivery still being worked on. */
  touch(queue: string, consumerId: string, deliveryId: string): Promise<void>;
  /** A consumer went away: its deliveries return to their queues (a failed attempt each); returns how many. */
  releaseConsumer(consumerId: string): Promise<number>;
  /** Housekeeping: ack timeouts, due delays, TTL expiry, stream age retention. Call it on a timer. */
  tick(): Promise<TickResult>;

  // Dead letters
  listDeadLetters(queue: string, options?: { limit?: number; offset?: number }): Promise<DeadLetter[]>;
  /** Back to the tail of their queue with a fresh delivery count; all when `ids` is absent. Returns how many. */
  replayDeadLetters(queue: string, ids?: readonly string[]): Promise<number>;
  /** All, or only those dead-lettered more than `olderThanMs` ago. Returns how many. */
  purgeDeadLetters(queue: string, options?: { olderThanMs?: number }): Promise<number>;

  // Streams
  declareStream(spec: StreamSpecInput): Promise<StreamSpec>;
  deleteStream(name: string): Promise<void>;
  listStreams(): Promise<StreamInfo[]>;
  getStream(name: string): Promise<StreamInfo>;
  /** Records the message in each stream; returns the sequence assigned in each. */
  streamAppend(streams: string | readonly string[], message: MessageInput): Promise<AppendResult>;
  /** Exact, ordered replay of up to `max` retained messages. */
  streamRead(stream: string, options: { from: StreamStart; max: number }): Promise<StreamReadResult>;
  /** Saves a durable reader's position: the next sequence it will read. */
  setReaderPosition(stream: string, reader: string, nextSeq: number): Promise<void>;
  /** The saved position, or undefined for an unknown reader. */
  getReaderPosition(stream: string, reader: string): Promise<number | undefined>;
  deleteReader(stream: string, reader: string): Promise<void>;

  // Tasks (the model and the transition table are in task-types.ts)
  /** Stores new tasks atomically; a known id or idempotency key returns the existing record instead. */
  submitTasks(records: readonly TaskRecord[]): Promise<{ task: TaskRecord; created: boolean }[]>;
  /** Compare-and-set state changes (+ new records) in one atomic step; `atomic`: all or none. */
  updateTasks(
    changes: readonly TaskChange[],
    options?: { add?: readonly TaskRecord[]; atomic?: boolean },
  ): Promise<TaskChangeOutcome[]>;
  /** Up to `max` ready tasks become `running` for `worker`: priority first, FIFO within a priority. */
  claimTasks(
    targets: readonly ClaimTarget[],
    worker: string,
    max: number,
    lockMs: number,
  ): Promise<{ claimed: TaskRecord[]; expired: TaskRecord[] }>;
  /** Heartbeat: extends the locks `worker` still holds; the others are `lost`. */
  renewTaskLocks(
    worker: string,
    ids: readonly string[],
    lockMs: number,
  ): Promise<{ held: string[]; lost: string[] }>;
  setTaskProgress(id: string, worker: string, attempt: number, progress: TaskProgress): Promise<boolean>;
  getTask(id: string): Promise<TaskRecord | undefined>;
  getTasks(ids: readonly string[]): Promise<(TaskRecord | undefined)[]>;
  listTasks(filter?: TaskFilter): Promise<TaskRecord[]>;
  taskCounts(): Promise<TaskCounts>;
  /**
   * Due ETAs/retries → queued, expiry, stalled locks (moved as `onStalled` says), result-TTL removal.
   * Unlike other mutations it resolves without waiting for durability: its changes are re-derived from
   * the clock after a crash, and anything depending on them is journaled after them.
   */
  tickTasks(onStalled?: (task: TaskRecord) => { to: TaskState; set?: TaskPatch }): Promise<TaskTickResult>;
  deleteTasks(ids: readonly string[]): Promise<number>;
  putSchedule(schedule: ScheduleRecord): Promise<ScheduleRecord>;
  deleteSchedule(id: string): Promise<void>;
  getSchedule(id: string): Promise<ScheduleRecord | undefined>;
  listSchedules(): Promise<ScheduleRecord[]>;
  /** Exactly one caller wins each (schedule, tick); the winner's task is stored with the claim. */
  claimScheduleTick(id: string, tick: number, task: TaskRecord): Promise<boolean>;

  /** Reclaims space of settled data now (engines also do it in the background). */
  compact(): Promise<void>;
  /**
   * Engines shared by several servers (PostgreSQL) report what the other servers wrote, so this one can
   * wake its consumers, stream tails, task workers and scheduler. Absent on single-process engines.
   * Returns a function that stops the listener.
   */
  watch?(listener: (event: StorageEvent) => void): () => void;
  /**
   * Small named values kept with the data, for layers above the engine whose facts must travel with it
   * (the encryption key verifiers). Engines whose data lives away from this host (PostgreSQL) have them;
   * a file store's callers keep such values in its directory, and the memory engine needs none.
   */
  readMeta?(prefix: string): Promise<Record<string, string>>;
  writeMeta?(name: string, value: string): Promise<void>;
  /** Flushes and releases resources; later calls fail with STORAGE_FAILURE. */
  close(): Promise<void>;
}

/** A write made through another server sharing the store (see `Storage.watch`). */
export type StorageEvent =
  /** Messages of the queue became ready (published, requeued, replayed). */
  | { kind: 'queue'; queue: string }
  /** Queues or streams were declared or deleted. */
  | { kind: 'declared' }
  /** Message `seq` was recorded in the stream. */
  | { kind: 'stream'; stream: string; seq: number }
  /** Tasks of the queue became ready to claim. */
  | { kind: 'tasks'; queue: string }
  /** A pending or retrying task falls due at `at`. */
  | { kind: 'task-due'; at: number }
  /** The task reached a final state. */
  | { kind: 'task-ended'; id: string }
  /** Schedules were created, changed or removed. */
  | { kind: 'schedules' }
  /** Events may have been missed (the connection was lost): look at everything again. */
  | { kind: 'resync' };

export type FsyncPolicy = 'always' | 'batch' | 'none';

/**
 * Connection of the `postgres` engine: the seed's `[database]` / `[database_pool]` keys (DB_* environment
 * variables override them). Several servers pointed at the same database and schema share every queue,
 * stream, task and schedule.
 */
export interface PostgresOptions {
  host: string;
  port: number;
  database: string;
  user: string;
  password?: string;
  /** Schema holding the tables (created on open); default `messaging`. */
  schema?: string;
  /** Connections kept open (`pool_size` / `min_connections`). */
  poolMin?: number;
  /** Most connections opened (`max_pool_size` / `max_connections`). */
  poolMax?: number;
  /** How long to wait for a connection before failing with STORAGE_FAILURE. */
  connectionTimeoutMs?: number;
  /** Idle pooled connections are closed after this long. */
  idleTimeoutMs?: number;
  /** Server-side cap on one statement (0 = none). */
  statementTimeoutMs?: number;
  /** Told about every statement and the connections in use (the server feeds its `messaging_db_*` metrics). */
  observer?: DbObserver;
}

export interface DbObserver {
  /** One statement ran for `seconds`; `ok` false when it failed. */
  query(seconds: number, ok: boolean): void;
  /** Pool connections now checked out. */
  connections(active: number): void;
}

export interface StorageOptions {
  engine: 'memory' | 'file' | 'postgres';
  /** Connection of the `postgres` engine. */
  postgres?: PostgresOptions;
  /** Directory for the `file` engine (`persistence_path`). */
  path?: string;
  /** `always`: each confirm follows an fsync covering it; `batch`: group fsync; `none`: after write(). */
  fsync?: FsyncPolicy;
  /** Records per group commit (the seed's `batch_size`). */
  batchSize?: number;
  /** How long a `batch` group waits to fill (the seed's `batch_timeout_ms`). */
  batchTimeoutMs?: number;
  /** Segment size at which the file engine rolls to a new segment. */
  segmentBytes?: number;
  /** Bytes of decoded messages the file engine caches in memory. */
  cacheBytes?: number;
  logger?: Logger;
  /** Clock, injectable for tests. */
  now?: () => number;
}
