/**
 * The scenarios of each suite and the systems compared in each. A scenario instance creates fresh adapters
 * (fresh connections, fresh queue names) for every round.
 */
import type {
  DurableSystem,
  Endpoints,
  Factory,
  PubSubSystem,
  ReqRepSystem,
  SystemInfo,
  TaskSystem,
} from './types.ts';
import type { Measurement } from './scenarios/measurement.ts';
import { runPubSub } from './scenarios/pubsub.ts';
import { runReqRep } from './scenarios/reqrep.ts';
import { runDurable } from './scenarios/durable.ts';
import { runDelayed, runTasks } from './scenarios/tasks.ts';
import { natsPubSub, natsReqRep } from './systems/nats.ts';
import { redisPubSub, redisReqRep } from './systems/redis.ts';
import { mqttPubSub, mqttReqRep } from './systems/mqtt.ts';
import { rabbitPubSub, rabbitReqRep } from './systems/rabbitmq.ts';
import { oursPubSub, oursReqRep } from './systems/ours.ts';
import { rabbitDurable } from './systems/rabbitmq-durable.ts';
import { jetstreamDurable } from './systems/jetstream.ts';
import {
  redisStreamsDurable,
  redisStreamsDurableAof,
  redisStreamsDurableEverysec,
} from './systems/redis-streams.ts';
import { bullmqTasks } from './systems/bullmq.ts';
import {
  oursDurable,
  oursDurableExtras,
  oursDurableMemory,
  oursDurableNoFsync,
  oursDurablePostgres,
} from './systems/ours-durable.ts';
import { oursTasks, oursTasksNoFsync } from './systems/ours-tasks.ts';

export const SUITES = ['pubsub', 'reqrep', 'durable', 'tasks'] as const;
export type Suite = (typeof SUITES)[number];

/** Product name of each family's server, for the versions line. */
export const PRODUCT: Record<string, string> = {
  ours: 'messaging-system',
  nats: 'nats-server',
  redis: 'Redis',
  mqtt: 'Mosquitto',
  rabbitmq: 'RabbitMQ',
};

/** Which server a system id talks to: `--systems nats` selects NATS core and JetStream, and so on. */
export const FAMILY: Record<string, 'ours' | 'nats' | 'redis' | 'mqtt' | 'rabbitmq'> = {
  ours: 'ours',
  'ours-nofsync': 'ours',
  'ours-postgres': 'ours',
  'ours-memory': 'ours',
  nats: 'nats',
  jetstream: 'nats',
  redis: 'redis',
  'redis-streams': 'redis',
  'redis-streams-aof': 'redis',
  'redis-streams-everysec': 'redis',
  bullmq: 'redis',
  mqtt: 'mqtt',
  rabbitmq: 'rabbitmq',
};

export interface Params {
  messages: number;
  size: number;
  batch: number;
  requests: number;
  durableMessages: number;
  durableSize: number;
  tasks: number;
}

export interface RoundResult {
  measurement: Measurement;
  serverVersion: string | undefined;
  /** The fsync policy as found at run time (Redis reads its own config), when the adapter states one. */
  fsync?: string;
}

export interface SystemRun {
  info: SystemInfo & { fsync?: string };
  run(ep: Endpoints): Promise<RoundResult>;
}

export interface Scenario {
  id: string;
  suite: Suite;
  title: string;
  kind: 'throughput' | 'latency';
  /** Unit of `Measurement.value`. */
  unit: 'msg/s' | 'tasks/s' | 'µs' | 'ms' | 'B/msg';
  /** System id the ratio column compares against. */
  baseline: string;
  systems: SystemRun[];
}

const placeholder: Endpoints = { natsUrl: '', redisUrl: '', mqttUrl: '', amqpUrl: '' };

/** Binds a factory to a scenario runner; reads the adapter's self-description without connecting. */
function bind<T extends SystemInfo & { serverVersion(): string | undefined }>(
  factory: Factory<T>,
  runner: (sys: T) => Promise<Measurement>,
): SystemRun {
  const sample = factory(placeholder) as T & { fsync?: string };
  const info = {
    id: sample.id,
    label: sample.label,
    client: sample.client,
    notes: sample.notes,
    fsync: sample.fsync,
  };
  return {
    info,
    async run(ep) {
      const sys = factory(ep) as T & { fsync?: string };
      const measurement = await runner(sys);
      return { measurement, serverVersion: sys.serverVersion(), fsync: sys.fsync };
    },
  };
}

const PUBSUB: Array<Factory<PubSubSystem>> = [oursPubSub, natsPubSub, redisPubSub, mqttPubSub, rabbitPubSub];
const REQREP: Array<Factory<ReqRepSystem>> = [oursReqRep, natsReqRep, redisReqRep, mqttReqRep, rabbitReqRep];
const DURABLE: Array<Factory<DurableSystem>> = [
  oursDurable,
  oursDurableNoFsync,
  oursDurableMemory,
  oursDurablePostgres,
  jetstreamDurable,
  rabbitDurable,
  redisStreamsDurableAof,
  redisStreamsDurableEverysec,
  redisStreamsDurable,
];
const TASKS: Array<Factory<TaskSystem>> = [oursTasks, oursTasksNoFsync, bullmqTasks];

export function buildScenarios(suites: readonly Suite[], p: Params): Scenario[] {
  const out: Scenario[] = [];
  const warmup = Math.min(10_000, Math.max(1000, Math.floor(p.messages / 20)));
  if (suites.includes('pubsub')) {
    for (const subscribers of [1, 4]) {
      const params = {
        subscribers,
        messages: p.messages,
        size: p.size,
        batch: p.batch,
        warmup,
        publishLimitMs: 5000,
        measureLimitMs: 10_000,
        idleMs: 2000,
      };
      out.push({
        id: `pubsub-1x${subscribers}`,
        suite: 'pubsub',
        title: `pub/sub 1→${subscribers}, ${p.size} B`,
        kind: 'throughput',
        unit: 'msg/s',
        baseline: 'nats',
        systems: PUBSUB.map((f) => bind(f, (sys) => runPubSub(sys, params))),
      });
    }
  }
  if (suites.includes('reqrep')) {
    const params = {
      requests: p.requests,
      warmup: Math.min(500, Math.max(50, Math.floor(p.requests / 10))),
      size: p.size,
      timeoutMs: 2000,
      limitMs: 30_000,
    };
    out.push({
      id: 'reqrep',
      suite: 'reqrep',
      title: `request/reply, ${p.size} B, sequential`,
      kind: 'latency',
      unit: 'µs',
      baseline: 'nats',
      systems: REQREP.map((f) => bind(f, (sys) => runReqRep(sys, params))),
    });
  }
  if (suites.includes('durable')) {
    const params = {
      messages: p.durableMessages,
      size: p.durableSize,
      warmup: Math.min(10_000, Math.max(200, Math.floor(p.durableMessages / 5))),
      window: 256,
      publishLimitMs: 20_000,
      idleMs: 3000,
    };
    out.push({
      id: 'durable-1x1',
      suite: 'durable',
      title: `durable queue 1→1, ${p.durableSize} B, confirms + acks`,
      kind: 'throughput',
      unit: 'msg/s',
      baseline: 'jetstream',
      systems: DURABLE.map((f) => bind(f, (sys) => runDurable(sys, params))),
    });
    // Ours only: no rival runs these; the rows stay visible (skipped) until the hooks are implemented.
    out.push({
      id: 'durable-recovery',
      suite: 'durable',
      title: 'recovery time, 1M stored messages',
      kind: 'latency',
      unit: 'ms',
      baseline: 'ours',
      systems: [oursExtra('recovery', (x) => x.recoveryTimeMs(1_000_000))],
    });
    out.push({
      id: 'durable-ram',
      suite: 'durable',
      title: 'RAM per stored message',
      kind: 'latency',
      unit: 'B/msg',
      baseline: 'ours',
      systems: [oursExtra('ram', (x) => x.ramBytesPerMessage(1_000_000))],
    });
  }
  if (suites.includes('tasks')) {
    for (const workers of [1, 4]) {
      const params = {
        tasks: p.tasks,
        workers,
        warmup: 200,
        window: 64,
        publishLimitMs: 20_000,
        idleMs: 3000,
      };
      out.push({
        id: `tasks-w${workers}`,
        suite: 'tasks',
        title: `no-op tasks end to end, ${workers} worker${workers > 1 ? 's' : ''}`,
        kind: 'throughput',
        unit: 'tasks/s',
        baseline: 'bullmq',
        systems: TASKS.map((f) => bind(f, (sys) => runTasks(sys, params))),
      });
    }
    const delayed = { jobs: 100, delayMs: 100, spacingMs: 10 };
    out.push({
      id: 'tasks-delayed',
      suite: 'tasks',
      title: `delayed task lateness (${delayed.delayMs} ms delay)`,
      kind: 'latency',
      unit: 'ms',
      baseline: 'bullmq',
      systems: TASKS.map((f) => bind(f, (sys) => runDelayed(sys, delayed))),
    });
  }
  return out;
}

function oursExtra(
  what: string,
  measure: (x: ReturnType<typeof oursDurableExtras>) => Promise<number>,
): SystemRun {
  return {
    info: { id: 'ours', label: 'messaging-system', client: 'src/client', notes: `ours only (${what})` },
    async run(ep) {
      const value = await measure(oursDurableExtras(ep));
      return { measurement: { value, detail: {} }, serverVersion: undefined };
    },
  };
}
