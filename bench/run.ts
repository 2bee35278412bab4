/**
 * Benchmark harness: runs our broker and the rivals already running on this machine side by side in one
 * run, and prints a table with ratios. See docs/benchmarks.md for the method.
 *
 *   npm run bench -- --suite pubsub,reqrep --rounds 3 --markdown
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import type { Endpoints } from './types.ts';
import {
  buildScenarios,
  FAMILY,
  PRODUCT,
  SUITES,
  type Scenario,
  type Suite,
  type SystemRun,
} from './suites.ts';
import { startOursServer, type OursServer } from './lib/ours-server.ts';
import { machineFacts } from './lib/machine.ts';
import {
  buildTable,
  formatFacts,
  formatMarkdown,
  formatSystems,
  formatTargets,
  formatText,
  medianOf,
  type Outcome,
  type Row,
} from './lib/report.ts';
import { errorText, NotImplementedError, UnavailableError } from './lib/util.ts';
import type { Measurement } from './scenarios/measurement.ts';

const positiveInt =
  (name: string) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer`);
    return n;
  };

const program = new Command('bench')
  .description('Benchmarks messaging-system side by side with NATS, Redis, Mosquitto and RabbitMQ')
  .option('--suite <list>', `comma-separated: ${SUITES.join(', ')}, or all`, 'pubsub,reqrep')
  .option(
    '--systems <list>',
    `comma-separated ids or families: ${Object.keys(FAMILY).join(', ')} (default: all)`,
  )
  .option('--messages <n>', 'pub/sub messages per round', positiveInt('--messages'), 200_000)
  .option('--size <bytes>', 'pub/sub and request payload size', positiveInt('--size'), 128)
  .option('--batch <n>', 'pub/sub publishes between two flushes', positiveInt('--batch'), 1000)
  .option('--requests <n>', 'sequential requests per round (request/reply)', positiveInt('--requests'), 5000)
  .option(
    '--durable-messages <n>',
    'durable-queue messages per round',
    positiveInt('--durable-messages'),
    50_000,
  )
  .option('--durable-size <bytes>', 'durable-queue payload size', positiveInt('--durable-size'), 256)
  .option('--tasks <n>', 'tasks per round', positiveInt('--tasks'), 5000)
  .option(
    '--rounds <n>',
    'rounds per scenario and system; the median is reported',
    positiveInt('--rounds'),
    3,
  )
  .option('--json <file>', 'also write every round and the machine facts as JSON')
  .option('--markdown', 'print a markdown table (for docs/benchmarks.md) instead of the text table')
  .option('--quiet', 'no progress output on stderr')
  .addOption(new Option('--ours-url <url>', 'use our server at this URL instead of starting one'))
  .option('--nats-url <url>', 'NATS server', 'nats://127.0.0.1:4222')
  .option('--redis-url <url>', 'Redis server', 'redis://127.0.0.1:6379')
  .option('--mqtt-url <url>', 'MQTT broker', 'mqtt://127.0.0.1:1883')
  .option('--amqp-url <url>', 'RabbitMQ', 'amqp://guest:guest@127.0.0.1:5672')
  .addHelpText(
    'after',
    `
Examples:
  npm run bench                                              # pub/sub + request/reply, all systems, 3 rounds
  npm run bench -- --suite pubsub,reqrep --rounds 3 --markdown
  npm run bench -- --suite durable,tasks --systems ours,rabbitmq,nats,redis
  npm run bench -- --messages 2000 --rounds 1 --systems ours  # quick check`,
  );

program.parse();
const opts = program.opts<{
  suite: string;
  systems?: string;
  messages: number;
  size: number;
  batch: number;
  requests: number;
  durableMessages: number;
  durableSize: number;
  tasks: number;
  rounds: number;
  json?: string;
  markdown?: boolean;
  quiet?: boolean;
  oursUrl?: string;
  natsUrl: string;
  redisUrl: string;
  mqttUrl: string;
  amqpUrl: string;
}>();

function usage(message: string): never {
  console.error(`bench: ${message}`);
  process.exit(2);
}

const suiteList = opts.suite
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
const suites: Suite[] = suiteList.includes('all')
  ? [...SUITES]
  : suiteList.map((s) =>
      (SUITES as readonly string[]).includes(s) ? (s as Suite) : usage(`unknown suite '${s}'`),
    );

const wanted = opts.systems
  ?.split(',')
  .map((s) => s.trim())
  .filter(Boolean);
for (const w of wanted ?? [])
  if (!(w in FAMILY)) usage(`unknown system '${w}' (known: ${Object.keys(FAMILY).join(', ')})`);
/** `nats` selects NATS core and JetStream, `redis` Redis pub/sub, Streams and BullMQ; exact ids work too. */
const selected = (id: string): boolean => !wanted || wanted.includes(id) || wanted.includes(FAMILY[id] ?? id);

const scenarios: Scenario[] = buildScenarios(suites, {
  messages: opts.messages,
  size: opts.size,
  batch: opts.batch,
  requests: opts.requests,
  durableMessages: opts.durableMessages,
  durableSize: opts.durableSize,
  tasks: opts.tasks,
}).map((s) => ({ ...s, systems: s.systems.filter((x) => selected(x.info.id)) }));
if (scenarios.every((s) => s.systems.length === 0)) usage('no system selected');

// ---- endpoints ----------------------------------------------------------------------------------------

const endpoints: Endpoints = {
  natsUrl: opts.natsUrl,
  redisUrl: opts.redisUrl,
  mqttUrl: opts.mqttUrl,
  amqpUrl: opts.amqpUrl,
};

const DEFAULT_PORTS: Record<string, number> = { nats: 4222, redis: 6379, mqtt: 1883, amqp: 5672, tcp: 8080 };

/** A TCP connect to the server: cheap, and it tells "not running" apart from "failed under load". */
function reachable(url: string): Promise<string | undefined> {
  const u = new URL(url);
  const port = Number(u.port) || DEFAULT_PORTS[u.protocol.replace(':', '')] || 0;
  const host = u.hostname || '127.0.0.1';
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port, timeout: 1000 });
    const done = (why: string | undefined): void => {
      socket.destroy();
      resolve(why);
    };
    socket.once('connect', () => done(undefined));
    socket.once('timeout', () => done(`${host}:${port} did not answer within 1 s`));
    socket.once('error', (err) => done(`${host}:${port} not reachable (${errorText(err)})`));
  });
}

const familyUrl = (family: string): string | undefined =>
  ({
    nats: endpoints.natsUrl,
    redis: endpoints.redisUrl,
    mqtt: endpoints.mqttUrl,
    rabbitmq: endpoints.amqpUrl,
  })[family];

const unreachable = new Map<string, string>();
const families = new Set(scenarios.flatMap((s) => s.systems.map((x) => FAMILY[x.info.id] ?? x.info.id)));
for (const family of families) {
  const url = familyUrl(family);
  if (!url) continue;
  const why = await reachable(url);
  if (why) unreachable.set(family, why);
}

// Ours runs as a child process so that it, like every rival, has a process (and event loop) of its own.
let oursServer: OursServer | undefined;
const stopOurs = async (): Promise<void> => {
  const s = oursServer;
  oursServer = undefined;
  await s?.stop();
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void stopOurs().finally(() => process.exit(130));
  });
}
// The variants start servers of their own, but only once the harness's one shows that ours starts here.
const oursNeeded = scenarios.some((s) => s.systems.some((x) => FAMILY[x.info.id] === 'ours'));
if (opts.oursUrl) {
  endpoints.oursUrl = opts.oursUrl;
  const why = await reachable(opts.oursUrl);
  if (why) endpoints.oursUnavailable = why;
} else if (oursNeeded) {
  try {
    oursServer = await startOursServer();
    endpoints.oursUrl = oursServer.url;
  } catch (err) {
    endpoints.oursUnavailable = `server did not start: ${errorText(err)}`;
  }
}
if (endpoints.oursUnavailable) {
  unreachable.set('ours', endpoints.oursUnavailable);
  delete endpoints.oursUrl;
}

// ---- running --------------------------------------------------------------------------------------------

const isNotImplemented = (err: unknown): boolean =>
  err instanceof NotImplementedError || (err instanceof Error && /^not yet implemented/i.test(err.message));

const totalSteps = scenarios.reduce((n, s) => n + s.systems.length * opts.rounds, 0);
const showBar = !opts.quiet && process.stderr.isTTY === true;
const bar = showBar
  ? new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: '{bar} {value}/{total} | {task}',
        hideCursor: true,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    )
  : undefined;
bar?.start(totalSteps, 0, { task: 'starting' });
let step = 0;
const progress = (task: string, line?: string): void => {
  step++;
  if (bar) bar.update(step, { task });
  else if (!opts.quiet && line) console.error(`[${step}/${totalSteps}] ${line}`);
};

const versions: Record<string, string> = {};
const rows: Row[] = [];
const describe = (m: Measurement, s: Scenario): string =>
  s.kind === 'throughput'
    ? `${Math.round(m.value)} ${s.unit}${m.delivered !== undefined && m.delivered < 1 ? ` (${(m.delivered * 100).toFixed(1)}% delivered)` : ''}`
    : `p50 ${m.value.toFixed(1)} ${s.unit}`;

for (const scenario of scenarios) {
  const state = new Map<SystemRun, { rounds: Measurement[]; stop?: Outcome }>();
  for (const sys of scenario.systems) {
    const family = FAMILY[sys.info.id] ?? sys.info.id;
    const why = unreachable.get(family);
    state.set(sys, why ? { rounds: [], stop: { status: 'skipped', reason: why } } : { rounds: [] });
  }
  // Rounds interleave the systems (round 1 of each, then round 2, ...) so drift on the machine over the
  // run does not favour whoever runs first.
  for (let round = 1; round <= opts.rounds; round++) {
    for (const sys of scenario.systems) {
      const st = state.get(sys)!;
      const task = `${scenario.title} · ${sys.info.label} · round ${round}`;
      if (st.stop) {
        progress(task);
        continue;
      }
      // A round that writes to disk starts with no dirty pages of the previous one, so its fsyncs do
      // not also pay for the kernel writing back another system's data (a fsync-none round leaves
      // tens of megabytes behind).
      if (scenario.suite === 'durable' || scenario.suite === 'tasks') spawnSync('sync');
      try {
        const { measurement, serverVersion, fsync } = await sys.run(endpoints);
        st.rounds.push(measurement);
        const family = FAMILY[sys.info.id] ?? sys.info.id;
        if (serverVersion)
          versions[PRODUCT[family] ?? family] = serverVersion.replace(/^mosquitto version /i, '');
        if (fsync) sys.info.fsync = fsync;
        progress(task, `${task}: ${describe(measurement, scenario)}`);
      } catch (err) {
        const reason = errorText(err);
        if (isNotImplemented(err)) {
          st.stop = {
            status: 'skipped',
            reason: `not implemented yet: ${reason.replace(/^not yet implemented:?\s*/i, '')}`,
          };
        } else if (err instanceof UnavailableError) st.stop = { status: 'skipped', reason };
        else st.stop = { status: 'failed', reason, rounds: st.rounds };
        progress(task, `${task}: ${st.stop.status}: ${reason}`);
      }
    }
  }
  for (const sys of scenario.systems) {
    const st = state.get(sys)!;
    const outcome: Outcome = st.stop ?? { status: 'ok', result: medianOf(st.rounds), rounds: st.rounds };
    rows.push({ scenario, system: sys.info, outcome });
  }
}
bar?.stop();
await stopOurs();

// ---- report ---------------------------------------------------------------------------------------------

const facts = machineFacts();
const table = buildTable(rows);
const out: string[] = [];
if (opts.markdown) {
  out.push(formatMarkdown(table), '');
  out.push(...formatFacts(facts, versions).map((l) => `${l}  `));
  out.push('', 'Systems and method per row:', '', ...formatSystems(rows, true));
} else {
  out.push(formatText(table), '');
  out.push(...formatFacts(facts, versions));
  out.push('Systems:', ...formatSystems(rows, false));
}
const targets = formatTargets(rows);
if (targets.length)
  out.push(
    '',
    opts.markdown ? 'Targets:' : 'Targets:',
    ...targets.map((t) => (opts.markdown ? `- ${t}` : `  ${t}`)),
  );
out.push(
  '',
  'Throughput ratios: >1 = more per second than the reference. Latency ratios: <1 = lower (better) than the reference.',
);
console.log(out.join('\n'));

if (opts.json) {
  const json = {
    machine: facts,
    versions,
    params: { ...opts },
    results: rows.map((r) => ({
      scenario: r.scenario.id,
      title: r.scenario.title,
      unit: r.scenario.unit,
      baseline: r.scenario.baseline,
      system: r.system,
      status: r.outcome.status,
      ...(r.outcome.status === 'ok'
        ? { median: r.outcome.result, rounds: r.outcome.rounds }
        : { reason: r.outcome.reason, rounds: r.outcome.status === 'failed' ? r.outcome.rounds : [] }),
    })),
  };
  writeFileSync(opts.json, `${JSON.stringify(json, null, 2)}\n`);
}

// Some clients keep timers or sockets alive after close (reconnect logic, BullMQ's blocking reads); the
// run is over, so exit explicitly. A failed (not skipped) system makes the run fail.
process.exit(rows.some((r) => r.outcome.status === 'failed') ? 1 : 0);
