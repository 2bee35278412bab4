/**
 * Task and worker events, published on the bus as JSON under `tasks.<event>` — `tasks.task.succeeded`,
 * `tasks.worker.online`… Subscribe to `tasks.#` for everything, `tasks.task.*` for task events. A
 * durable queue or stream bound to these topics keeps them (e.g. an audit trail). Publishing is skipped
 * entirely while nothing could receive an event, so an unobserved server pays nothing for them.
 */
import type { Broker } from '../core/broker.ts';
import type { TaskRecord } from '../storage/task-types.ts';

export type TaskEventName =
  | 'task.queued'
  | 'task.started'
  | 'task.progress'
  | 'task.succeeded'
  | 'task.failed'
  | 'task.retrying'
  | 'task.cancelled'
  | 'task.expired';

export type WorkerEventName = 'worker.online' | 'worker.offline';

/** Payload of every `tasks.task.*` event. */
export interface TaskEvent {
  event: TaskEventName;
  id: string;
  name: string;
  queue: string;
  kind: TaskRecord['kind'];
  state: TaskRecord['state'];
  /** Attempts started so far. */
  attempt: number;
  /** When the state changed (epoch ms). */
  at: number;
  worker?: string;
  parent?: { id: string; index: number };
  /** task.retrying: when the next attempt is due. */
  eta?: number;
  /** task.progress (and the last progress on task.succeeded). */
  progress?: TaskRecord['progress'];
  /** task.succeeded. */
  result?: unknown;
  /** task.failed, task.retrying. */
  error?: TaskRecord['error'];
}

/** Payload of `tasks.worker.online` / `tasks.worker.offline`. */
export interface WorkerEvent {
  event: WorkerEventName;
  worker: string;
  at: number;
  queues: string[];
  pools: string[];
  hostname?: string;
  pid?: number;
}

export const EVENT_TOPIC_PREFIX = 'tasks.';

const STATE_EVENT: Partial<Record<TaskRecord['state'], TaskEventName>> = {
  queued: 'task.queued',
  running: 'task.started',
  succeeded: 'task.succeeded',
  failed: 'task.failed',
  retrying: 'task.retrying',
  cancelled: 'task.cancelled',
  expired: 'task.expired',
};

export class TaskEvents {
  private readonly encoder = new TextEncoder();

  constructor(private readonly broker: Broker) {}

  private listening(topic: string): boolean {
    if (this.broker.pubsub.size > 0) return true;
    return this.broker.durable?.targetsFor(topic) !== undefined;
  }

  private publish(topic: string, build: () => object): void {
    if (!this.listening(topic)) return;
    try {
      this.broker.publish({ topic, payload: this.encoder.encode(JSON.stringify(build())) });
    } catch {
      // An event too large to publish (a huge result) is dropped; the task record still has it.
    }
  }

  /** The event for the state `task` has just reached (nothing for `pending`). */
  state(task: TaskRecord, now: number): void {
    const event = STATE_EVENT[task.state];
    if (event) this.task(event, task, now);
  }

  task(event: TaskEventName, t: TaskRecord, now: number): void {
    this.publish(EVENT_TOPIC_PREFIX + event, () => {
      const e: TaskEvent = {
        event,
        id: t.id,
        name: t.name,
        queue: t.queue,
        kind: t.kind,
        state: t.state,
        attempt: t.attempts,
        // When the state changed (the progress event: when it was reported).
        at: event === 'task.progress' ? (t.progress?.at ?? now) : t.updated_at,
      };
      if (t.worker !== undefined) e.worker = t.worker;
      if (t.parent) e.parent = t.parent;
      if (event === 'task.retrying' && t.eta !== undefined) e.eta = t.eta;
      if (t.progress && (event === 'task.progress' || event === 'task.succeeded')) e.progress = t.progress;
      if (event === 'task.succeeded') e.result = t.result;
      if (t.error && (event === 'task.failed' || event === 'task.retrying')) e.error = t.error;
      return e;
    });
  }

  worker(event: WorkerEventName, payload: Omit<WorkerEvent, 'event'>): void {
    this.publish(EVENT_TOPIC_PREFIX + event, () => ({ event, ...payload }));
  }
}
