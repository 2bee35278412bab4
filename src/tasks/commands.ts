/**
 * CMD operations for tasks, workers and schedules (docs/tasks.md, "Protocol"). Argument checking lives
 * here; semantics live in `TaskService` and the storage.
 *
 * Workers: `task.worker` opens a consumer on a sid; the server then sends MSG frames on that sid —
 * topic `_tasks.assign` with `{"tasks": [assignment…]}` (claimed for this worker, running under its lock) and
 * `_tasks.abort` with `{"ids": […], "reason"}` (cancelled: abort the handler). The worker answers with
 * `task.settle`, `task.heartbeat`, `task.progress` and `task.release`, batched.
 */
import { encodeMsg, MessagingError, utf8Encode } from '../protocol/index.ts';
import type { CommandHandler, Session } from '../server/session.ts';
import {
  TASK_STATES,
  type ClaimTarget,
  type TaskFilter,
  type TaskKind,
  type TaskRecord,
  type TaskState,
} from '../storage/task-types.ts';
import * as access from './access.ts';
import type { FailureReport } from './model.ts';
import type { SettleItem, TaskService } from './service.ts';
import { workflowFromArgs } from './workflows.ts';

type Args = Record<string, unknown>;

const MAX_MS = 10 * 365 * 24 * 3600_000;
/** Assignment frames stay well under any client's frame limit; a bigger batch is split. */
const MAX_ASSIGN_BYTES = 256 * 1024;

export function str(a: Args, key: string): string {
  const v = a[key];
  if (typeof v !== 'string' || v.length === 0)
    throw new MessagingError('BAD_REQUEST', `"${key}" must be a non-empty string`);
  return v;
}

export function optInt(a: Args, key: string, min: number, max: number): number | undefined {
  const v = a[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new MessagingError('BAD_REQUEST', `"${key}" must be an integer from ${min} to ${max}`);
  return v;
}

function list(a: Args, key: string): Args[] {
  const v = a[key];
  if (!Array.isArray(v) || v.some((x) => !x || typeof x !== 'object'))
    throw new MessagingError('BAD_REQUEST', `"${key}" must be an array of objects`);
  return v as Args[];
}

function strings(v: unknown, what: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x.length === 0))
    throw new MessagingError('BAD_REQUEST', `${what} must be an array of non-empty strings`);
  return v as string[];
}

export function filterFrom(a: Args | URLSearchParams): TaskFilter {
  const get = (k: string): unknown => (a instanceof URLSearchParams ? (a.get(k) ?? undefined) : a[k]);
  const f: TaskFilter = {};
  const state = get('state');
  if (state !== undefined) {
    if (!TASK_STATES.includes(state as TaskState))
      throw new MessagingError('BAD_REQUEST', `"state" must be one of ${TASK_STATES.join(', ')}`);
    f.state = state as TaskState;
  }
  for (const k of ['queue', 'name', 'tag'] as const) {
    const v = get(k);
    if (typeof v === 'string' && v) f[k] = v;
  }
  const kind = get('kind');
  if (kind === 'task' || kind === 'chain' || kind === 'group' || kind === 'chord') f.kind = kind as TaskKind;
  const limit = get('limit');
  if (limit !== undefined) {
    const n = Number(limit);
    if (!Number.isInteger(n) || n < 1 || n > 10_000)
      throw new MessagingError('BAD_REQUEST', '"limit" must be an integer from 1 to 10000');
    f.limit = n;
  }
  return f;
}

function targetsFrom(a: Args): ClaimTarget[] {
  if (a.targets !== undefined) {
    return list(a, 'targets').map((t) => {
      const target: ClaimTarget = { queue: str(t, 'queue') };
      const names = strings(t.names, '"names"');
      const exclude = strings(t.exclude, '"exclude"');
      if (names) target.names = names;
      if (exclude?.length) target.exclude = exclude;
      return target;
    });
  }
  const queues = strings(a.queues, '"queues"') ?? ['default'];
  return queues.map((queue) => ({ queue }));
}

function failureFrom(v: unknown): FailureReport {
  const f = v && typeof v === 'object' ? (v as Args) : {};
  const e = f.error && typeof f.error === 'object' ? (f.error as Args) : {};
  const error: FailureReport['error'] = {
    name: typeof e.name === 'string' && e.name ? e.name.slice(0, 256) : 'Error',
    message: typeof e.message === 'string' ? e.message.slice(0, 8192) : 'the handler failed',
  };
  if (typeof e.stack === 'string') error.stack = e.stack.slice(0, 16_384);
  const report: FailureReport = { error };
  if (f.unrecoverable === true) report.unrecoverable = true;
  if (typeof f.retry_in_ms === 'number' && Number.isFinite(f.retry_in_ms) && f.retry_in_ms >= 0)
    report.retryInMs = Math.min(f.retry_in_ms, MAX_MS);
  return report;
}

function settleItems(a: Args): SettleItem[] {
  return list(a, 'items').map((i) => {
    const item: SettleItem = {
      id: str(i, 'id'),
      attempt: optInt(i, 'attempt', 1, Number.MAX_SAFE_INTEGER) ?? 1,
      ok: i.ok === true,
    };
    if (item.ok) item.result = i.result ?? null;
    else item.failure = failureFrom(i);
    return item;
  });
}

/** What a worker gets of a claimed task (client type `TaskAssignment`); undefined fields drop out. */
function assignment(t: TaskRecord): object {
  return {
    id: t.id,
    name: t.name,
    args: t.args,
    queue: t.queue,
    priority: t.priority,
    attempts: t.attempts,
    max_retries: t.max_retries,
    created_at: t.created_at,
    eta: t.eta,
    timeout_ms: t.timeout_ms,
    tags: t.tags,
    parent: t.parent,
    previous: t.previous,
    schedule: t.schedule,
    lock_until: t.lock_until,
    traceparent: t.traceparent,
  };
}

/**
 * What a submit answers: the task's identity and where it stands (`task.get` has the whole record).
 * Submits are the hottest operation; the whole record would double what travels and is parsed.
 */
export function receipt(t: TaskRecord, created: boolean): object {
  return {
    id: t.id,
    name: t.name,
    queue: t.queue,
    priority: t.priority,
    state: t.state,
    created_at: t.created_at,
    eta: t.eta,
    expires: t.expires,
    idempotency_key: t.idempotency_key,
    created,
  };
}

/** Encodes claimed tasks as one or more `_tasks.assign` MSG frames on `sid`. */
function assignFrames(sid: number, tasks: TaskRecord[]): Uint8Array[] {
  const frames: Uint8Array[] = [];
  let parts: string[] = [];
  let size = 0;
  const flush = (): void => {
    if (!parts.length) return;
    frames.push(encodeMsg(sid, '_tasks.assign', utf8Encode(`{"tasks":[${parts.join(',')}]}`)));
    parts = [];
    size = 0;
  };
  for (const t of tasks) {
    const json = JSON.stringify(assignment(t));
    if (size + json.length > MAX_ASSIGN_BYTES) flush();
    parts.push(json);
    size += json.length + 1;
  }
  flush();
  return frames;
}

export function registerTaskCommands(commands: Map<string, CommandHandler>, service: TaskService): void {
  /** Worker ids each connection registered: a connection reports only for its own workers. */
  const workersOf = new WeakMap<Session, Set<string>>();
  const ownWorker = (session: Session, a: Args): string => {
    const worker = str(a, 'worker');
    if (!workersOf.get(session)?.has(worker)) {
      throw new MessagingError(
        'BAD_REQUEST',
        `worker "${worker}" is not registered on this connection (task.worker first)`,
      );
    }
    return worker;
  };
  const readable = (s: Session, id: string) => access.readableTask(service, s.identity, id);
  const ownSchedule = (s: Session, id: string) => access.readableSchedule(service, s.identity, id);
  const ops: Record<string, CommandHandler> = {
    'task.submit': async (_s, a) => {
      const r = await service.submitOne(a);
      return receipt(r.task, r.created);
    },
    'task.submit_many': async (s, a) => {
      const tasks = list(a, 'tasks');
      if (tasks.length > 10_000) throw new MessagingError('BAD_REQUEST', 'at most 10000 tasks per call');
      for (const t of tasks) access.checkSubmitArgs(s.identity, t);
      if (a.partial === true) {
        // Each item on its own: an invalid one gets its error, the others are stored.
        const out = await service.submitEach(tasks);
        return {
          tasks: out.map((r) => ('error' in r ? { error: r.error.toWire() } : receipt(r.task, r.created))),
        };
      }
      const out = await service.submit(tasks);
      return { tasks: out.map((r) => receipt(r.task, r.created)) };
    },
    'task.get': (s, a) => readable(s, str(a, 'id')),
    'task.list': async (s, a) => ({ tasks: await access.listTasksFor(service, s.identity, filterFrom(a)) }),
    'task.cancel': async (s, a) => service.cancel((await readable(s, str(a, 'id'))).id),
    'task.wait': async (s, a) =>
      service.wait((await readable(s, str(a, 'id'))).id, optInt(a, 'timeout_ms', 0, 3600_000) ?? 30_000),
    'task.stats': async (s) => access.visibleStats(s.identity, await service.statsSnapshot()),
    'task.workflow': async (s, a) => {
      const input = workflowFromArgs(a);
      access.checkTemplates(s.identity, input.callback ? [...input.steps, input.callback] : input.steps);
      const { workflow, children } = await service.workflow(input);
      return { ...workflow, children: children.map((c) => c.id) };
    },

    'task.worker': (session: Session, a) => {
      const sid = session.claimSid(a.sid);
      const worker = str(a, 'worker');
      const lockMs = optInt(a, 'lock_ms', 100, 3600_000) ?? 30_000;
      const consumer = service.addConsumer({
        worker,
        pool: typeof a.pool === 'string' && a.pool ? a.pool.slice(0, 64) : 'default',
        targets: access.narrowTargets(session.identity, targetsFrom(a)),
        capacity: optInt(a, 'capacity', 1, 10_000) ?? 1,
        lockMs,
        ...(typeof a.hostname === 'string' ? { hostname: a.hostname.slice(0, 255) } : {}),
        ...(typeof a.pid === 'number' ? { pid: a.pid } : {}),
        deliver: (tasks) => {
          for (const f of assignFrames(sid, tasks)) session.send(f);
        },
        abort: (ids, reason) => {
          session.send(encodeMsg(sid, '_tasks.abort', utf8Encode(JSON.stringify({ ids, reason }))));
        },
      });
      session.addResource(sid, {
        stop: () => service.dispatcher.stop(consumer),
        release: () => service.dispatcher.remove(consumer),
      });
      let mine = workersOf.get(session);
      if (!mine) workersOf.set(session, (mine = new Set()));
      mine.add(worker);
      return { sid, worker, lock_ms: lockMs };
    },
    'task.settle': async (s, a) => ({ results: await service.settle(ownWorker(s, a), settleItems(a)) }),
    'task.heartbeat': async (s, a) => ({
      lost: await service.heartbeat(
        ownWorker(s, a),
        strings(a.ids, '"ids"') ?? [],
        optInt(a, 'lock_ms', 100, 3600_000) ?? 30_000,
      ),
    }),
    'task.progress': async (s, a) => {
      const items = list(a, 'items').map((i) => {
        const value = typeof i.value === 'number' && Number.isFinite(i.value) ? i.value : 0;
        const item: { id: string; attempt: number; value: number; message?: string } = {
          id: str(i, 'id'),
          attempt: optInt(i, 'attempt', 1, Number.MAX_SAFE_INTEGER) ?? 1,
          value,
        };
        if (typeof i.message === 'string') item.message = i.message.slice(0, 1024);
        return item;
      });
      await service.progress(ownWorker(s, a), items);
      return {};
    },
    'task.release': async (s, a) => ({
      results: await service.release(
        ownWorker(s, a),
        list(a, 'items').map((i) => ({
          id: str(i, 'id'),
          attempt: optInt(i, 'attempt', 1, Number.MAX_SAFE_INTEGER) ?? 1,
        })),
      ),
    }),

    'schedule.create': (s, a) => {
      if (a.task && typeof a.task === 'object') access.checkSubmitArgs(s.identity, a.task as Args);
      return service.createSchedule(a);
    },
    'schedule.list': async (s) => ({
      schedules: access.visibleSchedules(s.identity, await service.storage.listSchedules()),
    }),
    'schedule.get': (s, a) => ownSchedule(s, str(a, 'id')),
    'schedule.enable': async (s, a) =>
      service.setScheduleEnabled((await ownSchedule(s, str(a, 'id'))).id, true),
    'schedule.disable': async (s, a) =>
      service.setScheduleEnabled((await ownSchedule(s, str(a, 'id'))).id, false),
    'schedule.trigger': async (s, a) => service.triggerSchedule((await ownSchedule(s, str(a, 'id'))).id),
    'schedule.remove': async (s, a) => {
      await service.removeSchedule((await ownSchedule(s, str(a, 'id'))).id);
      return {};
    },
  };
  for (const [op, handler] of Object.entries(ops)) commands.set(op, handler);
}
