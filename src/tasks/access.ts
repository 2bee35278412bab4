/**
 * Task permissions: a token's `tasks` claim lists the task names (handler keys) it may submit, read,
 * wait for, cancel, schedule and run as a worker (docs/security.md, "Tasks"). Both front doors (CMD and
 * REST) call these checks with the caller's identity; `undefined` (security off) and unrestricted
 * identities pass everything. A denial is PERMISSION_DENIED, which the front doors answer and audit.
 *
 * A workflow (chain, group, chord) is not a handler: access to it is access to every one of its steps
 * and its callback, so a token cannot learn or cancel work it could not have submitted step by step.
 */
import { MessagingError } from '../protocol/errors.ts';
import { authorize, type Identity } from '../security/permissions.ts';
import type {
  ClaimTarget,
  ScheduleRecord,
  TaskFilter,
  TaskRecord,
  TaskTemplate,
} from '../storage/task-types.ts';
import type { TaskService } from './service.ts';

/** The handler names a record stands for: itself, or a workflow's steps and callback. */
function namesOf(t: Pick<TaskRecord, 'kind' | 'name' | 'steps' | 'callback'>): string[] {
  if (t.kind === 'task') return [t.name];
  const names = (t.steps ?? []).map((s) => s.name);
  if (t.callback) names.push(t.callback.name);
  return names;
}

export function mayUse(identity: Identity | undefined, t: Parameters<typeof namesOf>[0]): boolean {
  if (!identity?.restricted) return true;
  return namesOf(t).every((n) => identity.canAccess('tasks', n));
}

/** Throws PERMISSION_DENIED unless every name is allowed. */
export function checkNames(identity: Identity | undefined, names: Iterable<string>): void {
  if (!identity?.restricted) return;
  for (const n of names) authorize(identity, 'tasks', n);
}

export function checkTask(identity: Identity | undefined, t: Parameters<typeof namesOf>[0]): void {
  checkNames(identity, namesOf(t));
}

/** Submit arguments: the name is checked when it is a string (anything else is the handler's BAD_REQUEST). */
export function checkSubmitArgs(identity: Identity | undefined, args: Record<string, unknown>): void {
  if (typeof args.name === 'string') checkNames(identity, [args.name]);
}

export function checkTemplates(identity: Identity | undefined, templates: readonly TaskTemplate[]): void {
  checkNames(
    identity,
    templates.map((t) => t.name),
  );
}

export function checkSchedule(identity: Identity | undefined, s: ScheduleRecord): void {
  checkNames(identity, [s.task.name]);
}

/** Keeps the records the identity may see (listings are filtered, not refused). */
export function visibleTasks<T extends Parameters<typeof namesOf>[0]>(
  identity: Identity | undefined,
  records: T[],
): T[] {
  if (!identity?.restricted) return records;
  return records.filter((t) => mayUse(identity, t));
}

export function visibleSchedules(
  identity: Identity | undefined,
  schedules: ScheduleRecord[],
): ScheduleRecord[] {
  if (!identity?.restricted) return schedules;
  return schedules.filter((s) => identity.canAccess('tasks', s.task.name));
}

/**
 * Stats for a restricted identity: per-name figures it may see; per-queue figures and the worker list
 * (which mix every name) only for unrestricted callers.
 */
export function visibleStats(
  identity: Identity | undefined,
  stats: Record<string, unknown>,
): Record<string, unknown> {
  if (!identity?.restricted) return stats;
  const names = (stats.names ?? {}) as Record<string, unknown>;
  return {
    names: Object.fromEntries(Object.entries(names).filter(([n]) => identity.canAccess('tasks', n))),
    at: stats.at,
  };
}

/**
 * What a worker of a restricted identity may claim. Targets naming their tasks must name only allowed
 * ones. A target for a whole queue is narrowed to the names the claim lists, which works when those
 * are exact names; a claim with prefix patterns (`resize*`) cannot be turned into a claim filter, so the
 * worker must then list its names itself.
 */
export function narrowTargets(identity: Identity | undefined, targets: ClaimTarget[]): ClaimTarget[] {
  const allowed = identity?.restricted ? (identity.permissions?.tasks ?? []) : undefined;
  if (!identity || !allowed || allowed.includes('*')) return targets;
  return targets.map((t) => {
    if (t.names) {
      checkNames(identity, t.names);
      return t;
    }
    const patterns = allowed.filter((n) => n.endsWith('*'));
    if (patterns.length) {
      throw new MessagingError(
        'PERMISSION_DENIED',
        `this token may run only tasks matching ${patterns.join(', ')}: list the task names the worker ` +
          `runs for queue "${t.queue}" (targets[].names)`,
        { details: { permission: 'tasks', resource: t.queue } },
      );
    }
    const names = allowed.filter((n) => !t.exclude?.includes(n));
    if (names.length === 0) {
      throw new MessagingError(
        'PERMISSION_DENIED',
        `"${identity.subject}" may run no task of queue "${t.queue}": its token allows no task name`,
        { details: { permission: 'tasks', resource: t.queue } },
      );
    }
    return { queue: t.queue, names };
  });
}

/** The task, once the caller is known to be allowed to see it (NOT_FOUND first: no existence leak beyond it). */
export async function readableTask(
  service: TaskService,
  identity: Identity | undefined,
  id: string,
): Promise<TaskRecord> {
  const t = await service.get(id);
  checkTask(identity, t);
  return t;
}

export async function readableSchedule(
  service: TaskService,
  identity: Identity | undefined,
  id: string,
): Promise<ScheduleRecord> {
  const s = await service.schedule(id);
  checkSchedule(identity, s);
  return s;
}

/** A listing: a filter naming a task is checked, otherwise the result is filtered to what may be seen. */
export async function listTasksFor(
  service: TaskService,
  identity: Identity | undefined,
  filter: TaskFilter,
): Promise<TaskRecord[]> {
  if (filter.name !== undefined) checkNames(identity, [filter.name]);
  return visibleTasks(identity, await service.list(filter));
}
