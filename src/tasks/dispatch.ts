/**
 * Pushes ready tasks to connected workers. A worker pool registers a consumer (its targets — queues and
 * task names — its capacity and its lock duration); whenever tasks may have become ready in a queue, the
 * consumers of that queue with free capacity claim up to that many in one storage call (highest
 * priority first) and get them in one frame. Wake-ups are coalesced per event-loop turn, so a burst of
 * submits becomes a few batched claims.
 *
 * A consumer that goes away (connection closed) leaves its tasks running under their locks: if the
 * worker process lives on and reconnects it keeps heartbeating and finishing them; if it died, the locks
 * run out and the tasks are retried elsewhere (see `TaskService`).
 */
import type { Storage } from '../storage/types.ts';
import type { ClaimTarget, TaskRecord } from '../storage/task-types.ts';

export interface ConsumerSpec {
  worker: string;
  pool: string;
  targets: ClaimTarget[];
  /** Most tasks held at once (running + prefetched). */
  capacity: number;
  lockMs: number;
  hostname?: string;
  pid?: number;
  /** Sends claimed tasks to the worker. */
  deliver(tasks: TaskRecord[]): void;
  /** Tells the worker to abort these tasks (cancelled, or no longer its own). */
  abort(ids: string[], reason: string): void;
}

export class Consumer {
  readonly held = new Set<string>();
  active = true;
  claiming = false;
  again = false;
  readonly queues: Set<string>;
  constructor(readonly spec: ConsumerSpec) {
    this.queues = new Set(spec.targets.map((t) => t.queue));
  }
  get free(): number {
    return this.spec.capacity - this.held.size;
  }
}

export interface WorkerInfo {
  worker: string;
  hostname?: string;
  pid?: number;
  pools: string[];
  queues: string[];
  /** Tasks it holds now. */
  running: number;
  /** false while it shuts down: it takes no new tasks but may still report on the ones it holds. */
  online: boolean;
  connected_at: number;
  last_heartbeat: number;
}

interface WorkerEntry {
  consumers: Set<Consumer>;
  connectedAt: number;
  lastHeartbeat: number;
  hostname?: string;
  pid?: number;
}

export interface DispatchHooks {
  now(): number;
  /** Returns the records to deliver (the same tasks, possibly annotated, e.g. with a trace). */
  claimed(tasks: TaskRecord[], expired: TaskRecord[]): TaskRecord[];
  /** Tasks claimed for a consumer that left meanwhile: give them back unstarted. */
  handBack(worker: string, tasks: TaskRecord[]): void;
  online(info: WorkerInfo): void;
  offline(info: WorkerInfo): void;
  error(err: unknown): void;
}

export class Dispatcher {
  private readonly byQueue = new Map<string, Consumer[]>();
  private readonly workers = new Map<string, WorkerEntry>();
  /** Task id → the consumer it was delivered to. */
  private readonly holders = new Map<string, Consumer>();
  private readonly dirty = new Set<string>();
  private scheduled = false;
  private readonly turn = new Map<string, number>();

  constructor(
    private readonly storage: Storage,
    private readonly hooks: DispatchHooks,
  ) {}

  add(spec: ConsumerSpec): Consumer {
    const c = new Consumer(spec);
    for (const q of c.queues) {
      let list = this.byQueue.get(q);
      if (!list) this.byQueue.set(q, (list = []));
      list.push(c);
    }
    let w = this.workers.get(spec.worker);
    const fresh = !w || ![...w.consumers].some((x) => x.active);
    if (!w) {
      w = { consumers: new Set(), connectedAt: this.hooks.now(), lastHeartbeat: this.hooks.now() };
      this.workers.set(spec.worker, w);
    }
    if (spec.hostname !== undefined) w.hostname = spec.hostname;
    if (spec.pid !== undefined) w.pid = spec.pid;
    w.consumers.add(c);
    if (fresh) this.hooks.online(this.info(spec.worker, w));
    this.wake(c.queues);
    return c;
  }

  /** No new tasks for this consumer (UNSUB); what it holds it may still finish and report. */
  stop(c: Consumer): void {
    if (!c.active) return;
    c.active = false;
    const w = this.workers.get(c.spec.worker);
    // The worker goes offline when its last pool stops taking tasks (it may still report).
    if (w && ![...w.consumers].some((x) => x.active)) this.hooks.offline(this.info(c.spec.worker, w));
  }

  /** The consumer's connection is gone. */
  remove(c: Consumer): void {
    const wasActive = c.active;
    c.active = false;
    for (const q of c.queues) {
      const list = this.byQueue.get(q);
      if (!list) continue;
      const i = list.indexOf(c);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.byQueue.delete(q);
    }
    for (const id of c.held) if (this.holders.get(id) === c) this.holders.delete(id);
    const w = this.workers.get(c.spec.worker);
    if (!w) return;
    const info = this.info(c.spec.worker, w);
    w.consumers.delete(c);
    if (wasActive && ![...w.consumers].some((x) => x.active)) this.hooks.offline(info);
    if (w.consumers.size === 0) this.workers.delete(c.spec.worker);
  }

  /** Whether `worker` is registered by some consumer (settlements are accepted from it). */
  hasWorker(worker: string): boolean {
    return this.workers.has(worker);
  }

  heartbeat(worker: string): void {
    const w = this.workers.get(worker);
    if (w) w.lastHeartbeat = this.hooks.now();
  }

  /** Tasks `ids` no longer occupy their consumer (settled, handed back, lost, cancelled). */
  release(ids: readonly string[]): void {
    const freed = new Set<Consumer>();
    for (const id of ids) {
      const c = this.holders.get(id);
      if (!c) continue;
      this.holders.delete(id);
      c.held.delete(id);
      freed.add(c);
    }
    // Once per consumer, after all of them: one claim refills the whole batch.
    for (const c of freed) if (c.active) this.fill(c);
  }

  /** Asks the workers holding `ids` to abort them (the tasks stay held until the worker reports back). */
  abort(ids: readonly string[], reason: string): void {
    const by = new Map<Consumer, string[]>();
    for (const id of ids) {
      const c = this.holders.get(id);
      if (!c) continue;
      let list = by.get(c);
      if (!list) by.set(c, (list = []));
      list.push(id);
    }
    for (const [c, list] of by) c.spec.abort(list, reason);
  }

  /** Tasks may have become ready in these queues. */
  wake(queues: Iterable<string>): void {
    for (const q of queues) if (this.byQueue.has(q)) this.dirty.add(q);
    if (this.dirty.size && !this.scheduled) {
      this.scheduled = true;
      setImmediate(this.pump);
    }
  }

  private readonly pump = (): void => {
    this.scheduled = false;
    const queues = [...this.dirty];
    this.dirty.clear();
    for (const q of queues) {
      const list = this.byQueue.get(q);
      if (!list?.length) continue;
      // Rotate the starting consumer so a trickle of tasks spreads over the workers.
      const start = (this.turn.get(q) ?? 0) % list.length;
      this.turn.set(q, start + 1);
      for (let i = 0; i < list.length; i++) {
        const c = list[(start + i) % list.length]!;
        if (c.active && c.free > 0) this.fill(c);
      }
    }
  };

  /** Claims for `c` until it is full or nothing is ready; one claim at a time per consumer. */
  private fill(c: Consumer): void {
    if (c.claiming) {
      c.again = true;
      return;
    }
    const free = c.free;
    if (!c.active || free <= 0) return;
    c.claiming = true;
    c.again = false;
    this.storage.claimTasks(c.spec.targets, c.spec.worker, free, c.spec.lockMs).then(
      ({ claimed, expired }) => {
        c.claiming = false;
        if (!c.active) {
          if (claimed.length) this.hooks.handBack(c.spec.worker, claimed);
          if (expired.length) this.hooks.claimed([], expired);
          return;
        }
        for (const t of claimed) {
          c.held.add(t.id);
          this.holders.set(t.id, c);
        }
        const deliver = this.hooks.claimed(claimed, expired);
        if (deliver.length) c.spec.deliver(deliver);
        if (c.again || claimed.length + expired.length >= free) this.fill(c);
      },
      (err: unknown) => {
        c.claiming = false;
        this.hooks.error(err);
      },
    );
  }

  private info(worker: string, w: WorkerEntry): WorkerInfo {
    const pools = new Set<string>();
    const queues = new Set<string>();
    let running = 0;
    for (const c of w.consumers) {
      pools.add(c.spec.pool);
      for (const q of c.queues) queues.add(q);
      running += c.held.size;
    }
    const info: WorkerInfo = {
      worker,
      pools: [...pools],
      queues: [...queues],
      running,
      online: [...w.consumers].some((c) => c.active),
      connected_at: w.connectedAt,
      last_heartbeat: w.lastHeartbeat,
    };
    if (w.hostname !== undefined) info.hostname = w.hostname;
    if (w.pid !== undefined) info.pid = w.pid;
    return info;
  }

  /** Connected workers, for stats. */
  list(): WorkerInfo[] {
    return [...this.workers].map(([id, w]) => this.info(id, w));
  }
}
