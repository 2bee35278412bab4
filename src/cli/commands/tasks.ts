/**
 * `messaging task submit | status | cancel | ls | stats | watch | schedule …` — tasks from the terminal.
 * `submit --wait` prints the result and exits 1 when the task failed, was cancelled or expired.
 */
import { InvalidArgumentError, type Command } from 'commander';
import cliProgress from 'cli-progress';
import type { Connection, Message, SubmitOptions, TaskInfo, TaskSignature } from '../../client/index.ts';
import {
  connectFromOptions,
  positiveInt,
  print,
  serverFrom,
  withConnection,
  type GlobalOptions,
} from '../connect.ts';
import { CliError, describeError, EXIT } from '../errors.ts';
import {
  collect,
  durationArg,
  examples,
  formatCount,
  formatDuration,
  nonNegativeInt,
  preview,
  renderKeyValues,
} from '../format.ts';
import { LineWriter, note, onInterrupt } from '../io.ts';
import { renderTable } from '../table.ts';

interface SubmitCli extends GlobalOptions {
  args?: string;
  queue?: string;
  priority?: string;
  countdown?: number;
  eta?: string;
  expiresIn?: number;
  maxRetries?: number;
  retryDelay?: number;
  retryBackoff?: number;
  retryMaxDelay?: number;
  timeout?: number;
  taskTimeout?: number;
  tag?: string[];
  idempotencyKey?: string;
  resultTtl?: number;
  wait?: boolean;
  waitTimeout?: number;
  json?: boolean;
}

interface JsonCli extends GlobalOptions {
  json?: boolean;
}

const STATES = ['pending', 'queued', 'running', 'succeeded', 'failed', 'retrying', 'cancelled', 'expired'];

function jsonArg(value: string): string {
  try {
    JSON.parse(value);
  } catch {
    throw new InvalidArgumentError(
      `--args must be JSON, e.g. '{"to":"a@b.c"}' or '[1,2]'; got ${preview(value)}`,
    );
  }
  return value;
}

function numberArg(name: string, min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${name} must be a number >= ${min}.`);
    return n;
  };
}

function submitOptions(o: SubmitCli): SubmitOptions {
  const s: SubmitOptions = {};
  if (o.queue !== undefined) s.queue = o.queue;
  if (o.priority !== undefined) {
    const n = Number(o.priority);
    s.priority = Number.isInteger(n) ? n : (o.priority as SubmitOptions['priority']);
  }
  if (o.countdown !== undefined) s.countdownMs = o.countdown;
  if (o.eta !== undefined) {
    const t = Date.parse(o.eta);
    if (Number.isNaN(t)) throw new CliError(`--eta ${o.eta}: use an ISO time such as 2030-01-01T09:00:00Z`);
    s.eta = t;
  }
  if (o.expiresIn !== undefined) s.expiresInMs = o.expiresIn;
  if (o.maxRetries !== undefined) s.maxRetries = o.maxRetries;
  if (o.retryDelay !== undefined) s.retryDelayMs = o.retryDelay;
  if (o.retryBackoff !== undefined) s.retryBackoff = o.retryBackoff;
  if (o.retryMaxDelay !== undefined) s.retryMaxDelayMs = o.retryMaxDelay;
  const taskTimeout = o.taskTimeout ?? o.timeout;
  if (taskTimeout !== undefined) s.timeoutMs = taskTimeout;
  if (o.tag?.length) s.tags = o.tag;
  if (o.idempotencyKey !== undefined) s.idempotencyKey = o.idempotencyKey;
  if (o.resultTtl !== undefined) s.resultTtlMs = o.resultTtl;
  return s;
}

function outcomeLine(t: TaskInfo): string {
  if (t.state === 'succeeded') return JSON.stringify(t.result ?? null);
  if (t.state === 'failed') return `${t.error?.name ?? 'Error'}: ${t.error?.message ?? 'failed'}`;
  return t.state;
}

async function runSubmit(name: string, o: SubmitCli): Promise<void> {
  const args = o.args !== undefined ? (JSON.parse(o.args) as unknown) : undefined;
  const conn = await connectFromOptions(o);
  try {
    const handle = await conn.tasks.submit(name, args, submitOptions(o));
    if (!o.wait) {
      if (o.json) return await print(JSON.stringify(handle.info));
      note(
        `task ${name} ${handle.info.created === false ? 'already exists' : 'submitted'} (${handle.info.state})`,
      );
      return await print(handle.id);
    }
    const waitMs = o.waitTimeout ?? 3_600_000;
    note(`task ${handle.id} submitted; waiting for it…`);
    const t = await conn.tasks.waitInfo(handle.id, waitMs);
    if (o.json) await print(JSON.stringify(t));
    else if (t.state === 'succeeded') await print(JSON.stringify(t.result ?? null));
    if (t.state !== 'succeeded') {
      throw new CliError(
        `task ${t.id} ${t.state === 'failed' ? 'failed' : `was ${t.state}`}: ${outcomeLine(t)}`,
        EXIT.FAILURE,
      );
    }
  } catch (err) {
    throw describeError(err, { server: serverFrom(o) });
  } finally {
    await conn.close();
  }
}

function describeTask(t: TaskInfo): string {
  const rows: Array<[string, string]> = [
    ['id', t.id],
    ['name', t.kind === 'task' ? t.name : `${t.name} (${t.kind})`],
    ['state', t.state],
    ['queue', t.queue],
    ['priority', String(t.priority)],
    ['attempts', `${t.attempts} of ${t.max_retries + 1}`],
    ['created', new Date(t.created_at).toISOString()],
  ];
  if (t.eta !== undefined) rows.push(['due', new Date(t.eta).toISOString()]);
  if (t.started_at !== undefined) rows.push(['started', new Date(t.started_at).toISOString()]);
  if (t.finished_at !== undefined && t.started_at !== undefined)
    rows.push(['ran', formatDuration(t.finished_at - t.started_at)]);
  if (t.worker !== undefined) rows.push(['worker', t.worker]);
  if (t.progress)
    rows.push([
      'progress',
      `${Math.round(t.progress.value * 100)}%${t.progress.message ? ` ${t.progress.message}` : ''}`,
    ]);
  if (t.state === 'succeeded') rows.push(['result', preview(JSON.stringify(t.result ?? null), 200)]);
  if (t.error) rows.push(['error', `${t.error.name}: ${t.error.message}`]);
  if (t.children?.length) rows.push(['children', t.children.join(', ')]);
  return renderKeyValues(rows);
}

async function runStatus(id: string, o: JsonCli): Promise<void> {
  const t = await withConnection(o, {}, (conn) => conn.tasks.get(id));
  await print(o.json ? JSON.stringify(t) : describeTask(t));
}

async function runCancel(id: string, o: JsonCli): Promise<void> {
  const t = await withConnection(o, {}, (conn) => conn.tasks.cancel(id));
  if (o.json) return print(JSON.stringify(t));
  note(`task ${id} cancelled`);
}

async function runLs(
  o: JsonCli & { state?: string; queue?: string; name?: string; tag?: string; limit?: number },
): Promise<void> {
  if (o.state !== undefined && !STATES.includes(o.state))
    throw new CliError(`--state must be one of ${STATES.join(', ')}`);
  const filter: Record<string, unknown> = { limit: o.limit ?? 50 };
  for (const k of ['state', 'queue', 'name', 'tag'] as const) if (o[k] !== undefined) filter[k] = o[k];
  const tasks = await withConnection(o, {}, (conn) => conn.tasks.list(filter));
  if (o.json) return print(JSON.stringify(tasks));
  if (tasks.length === 0) return print('no tasks');
  const now = Date.now();
  await print(
    renderTable(
      ['ID', 'NAME', 'STATE', 'QUEUE', 'ATTEMPTS', 'AGE', 'OUTCOME'],
      tasks.map((t) => [
        t.id,
        t.kind === 'task' ? t.name : `${t.name} (${t.kind})`,
        t.state,
        t.queue,
        String(t.attempts),
        formatDuration(now - t.created_at),
        t.state === 'running' && t.progress
          ? `${Math.round(t.progress.value * 100)}%`
          : preview(outcomeLine(t), 40),
      ]),
    ),
  );
}

interface GroupStats {
  counts: Record<string, number>;
  throughput_per_s: number;
  wait: { p50_ms: number; p95_ms: number } | null;
  run: { p50_ms: number; p95_ms: number } | null;
}

async function runStats(o: JsonCli): Promise<void> {
  const stats = await withConnection(o, {}, (conn) => conn.tasks.stats());
  if (o.json) return print(JSON.stringify(stats));
  const table = (title: string, groups: Record<string, GroupStats>): string =>
    renderTable(
      [title, 'QUEUED', 'RUNNING', 'WAITING', 'OK', 'FAILED', 'PER S', 'WAIT P50', 'RUN P50'],
      Object.entries(groups).map(([k, g]) => [
        k,
        formatCount(g.counts['queued'] ?? 0),
        formatCount(g.counts['running'] ?? 0),
        formatCount((g.counts['pending'] ?? 0) + (g.counts['retrying'] ?? 0)),
        formatCount(g.counts['succeeded'] ?? 0),
        formatCount(g.counts['failed'] ?? 0),
        g.throughput_per_s.toFixed(1),
        formatDuration(g.wait?.p50_ms),
        formatDuration(g.run?.p50_ms),
      ]),
    );
  const workers = (stats['workers'] as Array<Record<string, unknown>>) ?? [];
  const now = Date.now();
  await print(
    [
      table('QUEUE', (stats['queues'] as Record<string, GroupStats>) ?? {}),
      '',
      table('TASK', (stats['names'] as Record<string, GroupStats>) ?? {}),
      '',
      workers.length
        ? renderTable(
            ['WORKER', 'POOLS', 'QUEUES', 'RUNNING', 'LAST HEARTBEAT'],
            workers.map((w) => [
              String(w['worker']),
              (w['pools'] as string[]).join(','),
              (w['queues'] as string[]).join(','),
              String(w['running']),
              `${formatDuration(now - Number(w['last_heartbeat']))} ago`,
            ]),
          )
        : 'no workers connected',
    ].join('\n'),
  );
}

interface WatchCli extends GlobalOptions {
  queue?: string;
  name?: string;
  count?: number;
  json?: boolean;
}

/** Live view: a progress bar per running task; a line per finished one. */
async function runWatch(o: WatchCli): Promise<void> {
  const conn: Connection = await connectFromOptions(o, { reconnect: true });
  const tty = process.stderr.isTTY === true && !o.json;
  const out = new LineWriter(process.stdout);
  const bars = new cliProgress.MultiBar(
    {
      format: ' {bar} {percentage}% | {name} {id} {message}',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      noTTYOutput: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const active = new Map<string, cliProgress.SingleBar>();
  let finished = 0;
  let stop!: () => void;
  const done = new Promise<void>((resolve) => (stop = resolve));
  const wanted = (e: Record<string, unknown>): boolean =>
    (o.queue === undefined || e['queue'] === o.queue) && (o.name === undefined || e['name'] === o.name);
  const line = (text: string): void => {
    if (tty) bars.log(`${text}\n`);
    else out.line(text);
  };
  const bar = (e: Record<string, unknown>): cliProgress.SingleBar | undefined => {
    if (!tty) return undefined;
    const id = String(e['id']);
    let b = active.get(id);
    if (!b) {
      b = bars.create(100, 0, { name: e['name'], id: id.slice(-8), message: '' });
      active.set(id, b);
    }
    return b;
  };
  const onEvent = (m: Message): void => {
    let e: Record<string, unknown>;
    try {
      e = m.json();
    } catch {
      return;
    }
    if (!wanted(e)) return;
    if (o.json) {
      out.line(JSON.stringify(e));
    } else {
      const id = String(e['id']);
      switch (e['event']) {
        case 'task.started':
          bar(e);
          if (!tty) line(`started   ${e['name']} ${id} (attempt ${String(e['attempt'])})`);
          break;
        case 'task.progress': {
          const p = e['progress'] as { value: number; message?: string } | undefined;
          const b = bar(e);
          if (b && p) b.update(Math.round(p.value * 100), { message: p.message ?? '' });
          else if (p) line(`progress  ${e['name']} ${id} ${Math.round(p.value * 100)}% ${p.message ?? ''}`);
          break;
        }
        default: {
          const ev = String(e['event']).replace('task.', '');
          if (!['succeeded', 'failed', 'retrying', 'cancelled', 'expired'].includes(ev)) break;
          const b = active.get(id);
          if (b) {
            if (ev === 'succeeded') b.update(100);
            bars.remove(b);
            active.delete(id);
          }
          const err = e['error'] as { name: string; message: string } | undefined;
          line(`${ev.padEnd(9)} ${e['name']} ${id}${err ? ` — ${err.name}: ${err.message}` : ''}`);
        }
      }
    }
    if (['task.succeeded', 'task.failed', 'task.cancelled', 'task.expired'].includes(String(e['event']))) {
      finished++;
      if (o.count !== undefined && finished >= o.count) stop();
    }
  };
  const sub = conn.subscribe('tasks.task.*', { callback: onEvent });
  const removeInterrupt = onInterrupt(() => stop());
  try {
    await sub.ready();
    if (!o.json) note(`watching tasks on ${serverFrom(o)} (Ctrl-C to stop)`);
    await done;
  } finally {
    removeInterrupt();
    bars.stop();
    await out.flush();
    await conn.close();
  }
}

function scheduleTask(o: SubmitCli & { name: string }): TaskSignature {
  const s: TaskSignature = { name: o.name };
  if (o.args !== undefined) s.args = JSON.parse(o.args) as unknown;
  const { countdownMs: _c, eta: _e, expires: _x, idempotencyKey: _k, id: _i, ...rest } = submitOptions(o);
  if (Object.keys(rest).length) s.options = rest;
  return s;
}

function addSubmitOptions(cmd: Command, withTiming: boolean): Command {
  cmd
    .option('--args <json>', 'arguments as JSON (the handler receives them as its first parameter)', jsonArg)
    .option('-q, --queue <queue>', 'queue (default: default)')
    .option('-p, --priority <p>', 'priority 0-5 or lowest|low|normal|high|highest|critical (default normal)');
  if (withTiming) {
    cmd
      .option(
        '--countdown <duration>',
        'run no sooner than this from now, e.g. 500, 30s, 5m',
        durationArg('--countdown', true),
      )
      .option('--eta <time>', 'run no sooner than this ISO time')
      .option(
        '--expires-in <duration>',
        'expire (never run) if not started within this',
        durationArg('--expires-in'),
      )
      .option('--idempotency-key <key>', 'submitting the same key again returns the first task');
  }
  return cmd
    .option(
      '--max-retries <n>',
      'further attempts after a failure (default 3)',
      nonNegativeInt('--max-retries'),
    )
    .option(
      '--retry-delay <duration>',
      'delay before the 2nd attempt (default 1s)',
      durationArg('--retry-delay', true),
    )
    .option(
      '--retry-backoff <factor>',
      'each further delay × this (default 2)',
      numberArg('--retry-backoff', 1),
    )
    .option(
      '--retry-max-delay <duration>',
      'cap on a retry delay (default 10m)',
      durationArg('--retry-max-delay', true),
    )
    .option(
      '--task-timeout <duration>',
      'an attempt running longer fails (same as --timeout MS here)',
      durationArg('--task-timeout'),
    )
    .option('--tag <tag>', 'tag (repeatable)', collect)
    .option(
      '--result-ttl <duration>',
      'keep the result this long after the end (default 24h)',
      durationArg('--result-ttl'),
    );
}

/** Registers the `task` command group. */
export function registerTasks(program: Command): void {
  const task = program
    .command('task')
    .description('tasks: submit, follow, cancel, list, stats, live watch, schedules')
    .addHelpText(
      'after',
      examples(
        `messaging task submit email.send --args '{"to":"a@b.c"}' --queue emails --wait`,
        'messaging task status 01J9Z3K4M5N6P7Q8R9S0T1V2W3',
        'messaging task ls --state failed',
        'messaging task watch',
      ),
    );

  addSubmitOptions(
    task
      .command('submit')
      .description('submit a task; prints its id (with --wait: its result)')
      .argument('<name>', 'task name (handler key)'),
    true,
  )
    .option('--wait', 'wait for the task to end; print its result; exit 1 if it did not succeed')
    .option(
      '--wait-timeout <duration>',
      'give up waiting after this (default 1h)',
      durationArg('--wait-timeout'),
    )
    .option('--json', 'print the answer as JSON (with --wait: the final task record)')
    .addHelpText(
      'after',
      `
--timeout MS is the task's timeout here (an attempt running longer fails and counts as a failed
attempt); it also bounds connecting. --task-timeout takes a duration (30s, 5m) for the same.
${examples(
  `messaging task submit resize --args '{"w":100}' --priority high --max-retries 5 --retry-delay 2s`,
  `messaging task submit report --countdown 10m`,
  `messaging task submit add --args '[1,2]' --wait`,
)}`,
    )
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals<SubmitCli>();
      await runSubmit(name, o);
    });

  task
    .command('status')
    .description("a task's state, attempts, progress, result or error")
    .argument('<id>', 'task id')
    .option('--json', 'the whole record as JSON')
    .action(async (id: string, _o: unknown, cmd: Command) => runStatus(id, cmd.optsWithGlobals<JsonCli>()));

  task
    .command('cancel')
    .description('cancel a task: a waiting one never runs, a running one is aborted')
    .argument('<id>', 'task id')
    .option('--json', 'print the cancelled record as JSON')
    .action(async (id: string, _o: unknown, cmd: Command) => runCancel(id, cmd.optsWithGlobals<JsonCli>()));

  task
    .command('ls')
    .description('list tasks, newest first')
    .option('--state <state>', `only this state (${STATES.join(', ')})`)
    .option('-q, --queue <queue>', 'only this queue')
    .option('--name <name>', 'only this task name')
    .option('--tag <tag>', 'only tasks with this tag')
    .option('--limit <n>', 'at most this many (default 50)', positiveInt('--limit'))
    .option('--json', 'JSON array')
    .action(async (_o: unknown, cmd: Command) => runLs(cmd.optsWithGlobals()));

  task
    .command('stats')
    .description('counts by state, throughput and latency per queue and task name; connected workers')
    .option('--json', 'JSON')
    .action(async (_o: unknown, cmd: Command) => runStats(cmd.optsWithGlobals<JsonCli>()));

  task
    .command('watch')
    .description('live progress bars of running tasks, and a line per finished task')
    .option('-q, --queue <queue>', 'only this queue')
    .option('--name <name>', 'only this task name')
    .option('--count <n>', 'exit after this many tasks finished', positiveInt('--count'))
    .option('--json', 'print the raw events as JSON lines')
    .action(async (_o: unknown, cmd: Command) => runWatch(cmd.optsWithGlobals<WatchCli>()));

  const schedule = task.command('schedule').description('periodic and cron schedules');
  addSubmitOptions(
    schedule
      .command('add')
      .description('create (or replace) a schedule: each tick runs NAME as a fresh task')
      .argument('<id>', 'schedule id')
      .requiredOption('--name <task>', 'task name to run')
      .option('--every <duration>', 'periodic: every this long, e.g. 30s, 5m', durationArg('--every'))
      .option('--cron <expr>', "5-field cron, e.g. '0 3 * * 1-5' (Vixie semantics)")
      .option('--tz <zone>', 'IANA time zone of --cron (default UTC)')
      .option('--disabled', 'create it disabled'),
    false,
  ).action(async (id: string, _o: unknown, cmd: Command) => {
    const o = cmd.optsWithGlobals<
      SubmitCli & { name: string; every?: number; cron?: string; tz?: string; disabled?: boolean }
    >();
    if ((o.every === undefined) === (o.cron === undefined))
      throw new CliError('give exactly one of --every and --cron');
    const s = await withConnection(o, {}, (conn) =>
      conn.tasks.schedules.create({
        id,
        task: scheduleTask(o),
        ...(o.every !== undefined ? { everyMs: o.every } : {}),
        ...(o.cron !== undefined ? { cron: o.cron } : {}),
        ...(o.tz !== undefined ? { timezone: o.tz } : {}),
        enabled: !o.disabled,
      }),
    );
    note(
      `schedule '${s.id}' ${s.enabled ? 'enabled' : 'created disabled'}: ${s.cron ? `cron '${s.cron}' ${s.timezone ?? 'UTC'}` : `every ${formatDuration(s.every_ms)}`}`,
    );
  });
  schedule
    .command('ls')
    .description('list schedules')
    .option('--json', 'JSON array')
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals<JsonCli>();
      const list = await withConnection(o, {}, (conn) => conn.tasks.schedules.list());
      if (o.json) return print(JSON.stringify(list));
      if (!list.length) return print('no schedules');
      await print(
        renderTable(
          ['ID', 'TASK', 'WHEN', 'ENABLED', 'RUNS', 'LAST RUN'],
          list.map((s) => [
            s.id,
            String(s.task['name']),
            s.cron ? `cron ${s.cron} ${s.timezone ?? 'UTC'}` : `every ${formatDuration(s.every_ms)}`,
            s.enabled ? 'yes' : 'no',
            formatCount(s.runs),
            s.last_tick ? new Date(s.last_tick).toISOString() : '-',
          ]),
        ),
      );
    });
  for (const [verb, what] of [
    ['enable', 'enable a schedule'],
    ['disable', 'disable a schedule (its ticks are skipped)'],
    ['trigger', 'run the schedule’s task now (prints the task id)'],
    ['rm', 'remove a schedule'],
  ] as const) {
    schedule
      .command(verb)
      .description(what)
      .argument('<id>', 'schedule id')
      .action(async (id: string, _o: unknown, cmd: Command) => {
        const o = cmd.optsWithGlobals<GlobalOptions>();
        await withConnection(o, {}, async (conn) => {
          if (verb === 'trigger') await print((await conn.tasks.schedules.trigger(id)).id);
          else if (verb === 'rm') await conn.tasks.schedules.remove(id);
          else await conn.tasks.schedules[verb](id);
        });
        if (verb !== 'trigger') note(`schedule '${id}' ${verb === 'rm' ? 'removed' : `${verb}d`}`);
      });
  }
}
