/**
 * The adapter interfaces: one per scenario family. Every compared system implements the same interface
 * through its usual npm client, so the scenario code (timing, counting, warm-up) is shared and identical
 * for all of them.
 */

/** Where the systems live; filled by the harness (ours is started as a child process). */
export interface Endpoints {
  natsUrl: string;
  redisUrl: string;
  mqttUrl: string;
  amqpUrl: string;
  /** `tcp://127.0.0.1:P` of our server; undefined when it could not be started. */
  oursUrl?: string;
  /** Why our server is not available, when it is not. */
  oursUnavailable?: string;
}

/** What every adapter says about itself in the report. */
export interface SystemInfo {
  /** Short id used on the command line (`--systems`): ours, nats, redis, mqtt, rabbitmq, ... */
  readonly id: string;
  /** Human name for the table, e.g. "NATS core". */
  readonly label: string;
  /** npm client and version, e.g. "nats 2.29.3". */
  readonly client: string;
  /** How the publisher respects the client's backpressure, fsync policy, etc. One line. */
  readonly notes: string;
}

export type OnPayload = (payload: Uint8Array) => void;

/** Pub/sub (at-most-once, no persistence) — the NATS-core-equivalent of each system. */
export interface PubSubSystem extends SystemInfo {
  connectPublisher(): Promise<void>;
  /** Opens a dedicated connection subscribed to `topic`; resolves once the server confirmed it when the
   * client can tell (the scenario also probes until every subscriber receives). */
  connectSubscriber(topic: string, onMessage: OnPayload): Promise<void>;
  /** Queues one message; must not await (the scenario calls `flush` every batch). */
  publish(topic: string, payload: Uint8Array): void;
  /** Waits for the client's own backpressure signal for everything published so far. */
  flush(): Promise<void>;
  /** Server version, when the client reports it (for the machine facts). */
  serverVersion(): string | undefined;
  close(): Promise<void>;
}

/** Request/reply: one responder echoing the payload, one requester doing sequential requests. */
export interface ReqRepSystem extends SystemInfo {
  startResponder(topic: string): Promise<void>;
  connectRequester(): Promise<void>;
  request(topic: string, payload: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  serverVersion(): string | undefined;
  close(): Promise<void>;
}

/** Durable queue 1 producer → 1 consumer with publisher confirms and consumer acks. */
export interface DurableSystem extends SystemInfo {
  /** The fsync policy this system runs under here, stated in the table. */
  readonly fsync: string;
  /** Creates a fresh, empty queue/stream (unique name) and connects producer and consumer. */
  setup(): Promise<void>;
  /** Starts consuming; `onAcked` runs once per message after its ack was issued. */
  startConsumer(onAcked: OnPayload): Promise<void>;
  /** Publishes one persistent message; resolves when the server confirmed it is stored. */
  publish(payload: Uint8Array): Promise<void>;
  serverVersion(): string | undefined;
  /** Deletes the queue/stream and disconnects. */
  close(): Promise<void>;
}

/** Measurements only our server takes part in (no rival equivalent is run). */
export interface DurableExtras {
  /** Stores `messages` persistent messages, restarts the server, returns ms until the queue serves again. */
  recoveryTimeMs(messages: number): Promise<number>;
  /** Stores `messages` messages and returns the server's resident-memory growth per stored message. */
  ramBytesPerMessage(messages: number): Promise<number>;
}

export interface TaskJobInfo {
  /** Epoch ms when the job was meant to run (submit time + delay). */
  dueAt: number;
}

/** Task queue: submit no-op tasks, count completions end to end. */
export interface TaskSystem extends SystemInfo {
  /** Creates a fresh queue and `workers` workers, each running one task at a time; `onCompleted` runs
   * when a task's completion is recorded by the worker. `onStarted` runs when the no-op handler starts. */
  setup(workers: number, onStarted: (job: TaskJobInfo) => void, onCompleted: () => void): Promise<void>;
  /** Submits one no-op task (delayed by `delayMs` when given); resolves when the queue accepted it. */
  submit(delayMs?: number): Promise<void>;
  serverVersion(): string | undefined;
  close(): Promise<void>;
}

export type Factory<T> = (endpoints: Endpoints) => T;
