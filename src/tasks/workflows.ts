/**
 * Workflows as records: a chain, group or chord is a record of its own (`kind` chain/group/chord,
 * created `running`) whose children are ordinary tasks pointing back at it (`parent: {id, index}`).
 * Children get deterministic ids (`<workflow id>.<index>`; the chord callback's index is the number of
 * members), so creating a step twice — a retry after a conflict, the sweep after a crash — stores it
 * once.
 *
 * This module only plans: given the workflow record and how a child ended, it returns the changes
 * (to the workflow record) and the new records (the next chain step, the chord callback) that the
 * service applies in the same atomic step as the child's own change.
 *
 * - chain: each step's result feeds the next step (as `args`, or prepended to array args, or as
 *   `ctx.previous` when the step has other args); the chain's result is the last step's.
 * - group: members run in parallel; the result is every member's result, in declaration order.
 * - chord: a group, then a callback that receives every result in order; its result is the chord's.
 * A step that ends any other way than `succeeded` fails the workflow, naming the step.
 */
import { MessagingError } from '../protocol/errors.ts';
import type { TaskChange, TaskError, TaskKind, TaskRecord, TaskTemplate } from '../storage/task-types.ts';
import { newTaskId, recordFromTemplate, TASK_DEFAULTS, templateFromArgs } from './model.ts';

export type WorkflowKind = Exclude<TaskKind, 'task'>;

export interface WorkflowInput {
  kind: WorkflowKind;
  steps: TaskTemplate[];
  callback?: TaskTemplate;
  /** A name for the workflow record (shown in listings); default `chain`, `group` or `chord`. */
  name?: string;
  result_ttl_ms?: number;
  tags?: string[];
}

export function workflowFromArgs(args: Record<string, unknown>): WorkflowInput {
  const kind = args.kind;
  if (kind !== 'chain' && kind !== 'group' && kind !== 'chord')
    throw new MessagingError('BAD_REQUEST', '"kind" must be chain, group or chord');
  const steps = args.steps;
  if (!Array.isArray(steps) || steps.length === 0 || steps.length > 10_000)
    throw new MessagingError('BAD_REQUEST', '"steps" must be an array of 1 to 10000 tasks');
  const input: WorkflowInput = {
    kind,
    steps: steps.map((s, i) => templateFromArgs(s, `step ${i}`)),
  };
  if (kind === 'chord') {
    if (args.callback === undefined)
      throw new MessagingError('BAD_REQUEST', 'a chord needs a "callback" task');
    input.callback = templateFromArgs(args.callback, 'callback');
  }
  if (typeof args.name === 'string' && args.name) input.name = args.name.slice(0, 255);
  if (
    typeof args.result_ttl_ms === 'number' &&
    Number.isInteger(args.result_ttl_ms) &&
    args.result_ttl_ms > 0
  )
    input.result_ttl_ms = args.result_ttl_ms;
  if (Array.isArray(args.tags)) input.tags = args.tags.filter((t): t is string => typeof t === 'string');
  return input;
}

export function childId(workflowId: string, index: number): string {
  return `${workflowId}.${index}`;
}

/** The previous result handed to a step: as its args, prepended to array args, or as `ctx.previous`. */
function feed(t: TaskTemplate, previous: unknown): { args?: { value: unknown }; previous?: unknown } {
  if (t.args === undefined) return { args: { value: previous } };
  if (Array.isArray(t.args)) return { args: { value: [previous, ...(t.args as unknown[])] } };
  return { previous };
}

function child(
  t: TaskTemplate,
  workflowId: string,
  index: number,
  now: number,
  previous?: { value: unknown },
): TaskRecord {
  const fed = previous ? feed(t, previous.value) : {};
  const r = recordFromTemplate(t, {
    now,
    id: childId(workflowId, index),
    parent: { id: workflowId, index },
    ...(fed.args ? { args: fed.args } : {}),
  });
  if ('previous' in fed) r.previous = fed.previous;
  return r;
}

/** The workflow record and the children to create with it. */
export function buildWorkflow(
  input: WorkflowInput,
  now: number,
): { workflow: TaskRecord; children: TaskRecord[] } {
  const id = newTaskId();
  const first = input.steps[0]!;
  const workflow: TaskRecord = {
    id,
    kind: input.kind,
    name: input.name ?? input.kind,
    args: null,
    queue: first.queue ?? TASK_DEFAULTS.queue,
    priority: first.priority ?? TASK_DEFAULTS.priority,
    state: 'running',
    created_at: now,
    updated_at: now,
    started_at: now,
    max_retries: 0,
    retry: { ...TASK_DEFAULTS.retry },
    result_ttl_ms: input.result_ttl_ms ?? TASK_DEFAULTS.result_ttl_ms,
    attempts: 0,
    steps: input.steps,
  };
  if (input.tags?.length) workflow.tags = input.tags;
  let children: TaskRecord[];
  if (input.kind === 'chain') {
    children = [child(first, id, 0, now)];
    workflow.results = [];
  } else {
    children = input.steps.map((s, i) => child(s, id, i, now));
    workflow.results = input.steps.map(() => null);
    workflow.remaining = input.steps.length;
    if (input.callback) workflow.callback = input.callback;
  }
  workflow.children = children.map((c) => c.id);
  return { workflow, children };
}

export interface Plan {
  changes: TaskChange[];
  add: TaskRecord[];
}

function stepLabel(wf: TaskRecord, c: TaskRecord): string {
  const index = c.parent?.index ?? -1;
  if (wf.kind === 'chord' && index === (wf.steps?.length ?? 0)) return `chord callback (${c.name})`;
  return `${wf.kind} step ${index} (${c.name})`;
}

/** A child succeeded with `result`: what happens to its workflow record. */
export function planSuccess(wf: TaskRecord, c: TaskRecord, result: unknown, now: number): Plan {
  const index = c.parent!.index;
  const steps = wf.steps ?? [];
  if (wf.kind === 'chain') {
    if (index + 1 < steps.length) {
      const next = child(steps[index + 1]!, wf.id, index + 1, now, { value: result });
      return {
        changes: [
          {
            id: wf.id,
            from: ['running'],
            set: { children: [...(wf.children ?? []), next.id], results: [result] },
          },
        ],
        add: [next],
      };
    }
    return {
      changes: [{ id: wf.id, from: ['running'], to: 'succeeded', set: { result, results: [result] } }],
      add: [],
    };
  }
  if (index === steps.length) {
    // The chord callback: its result is the chord's.
    return { changes: [{ id: wf.id, from: ['running'], to: 'succeeded', set: { result } }], add: [] };
  }
  return { changes: [{ id: wf.id, from: ['running'], set: { collect: { index, value: result } } }], add: [] };
}

/**
 * Every member of a group or chord has succeeded (`remaining` reached 0): the group ends with every
 * result in order; a chord starts its callback with them.
 */
export function planGroupDone(wf: TaskRecord, now: number): Plan {
  const results = wf.results ?? [];
  if (wf.kind === 'chord' && wf.callback) {
    const cb = child(wf.callback, wf.id, wf.steps?.length ?? 0, now, { value: results });
    return {
      changes: [{ id: wf.id, from: ['running'], set: { children: [...(wf.children ?? []), cb.id] } }],
      add: [cb],
    };
  }
  return { changes: [{ id: wf.id, from: ['running'], to: 'succeeded', set: { result: results } }], add: [] };
}

/** A child ended without success (failed, expired, cancelled): the workflow fails, naming the step. */
export function planFailure(wf: TaskRecord, c: TaskRecord): Plan {
  const what = c.state === 'failed' ? 'failed' : `was ${c.state}`;
  const error: TaskError = {
    name:
      c.error?.name ??
      (c.state === 'failed' ? 'Error' : c.state === 'expired' ? 'TaskExpired' : 'TaskCancelled'),
    message: `${stepLabel(wf, c)} ${what}${c.error ? `: ${c.error.message}` : ''}`,
    step: { index: c.parent?.index ?? -1, id: c.id, name: c.name },
  };
  if (c.error?.stack) error.stack = c.error.stack;
  return { changes: [{ id: wf.id, from: ['running'], to: 'failed', set: { error } }], add: [] };
}

/**
 * After a crash between a child's end and its workflow's update, or for anything a live path missed:
 * what the workflow record should now be, recomputed from its children.
 */
export function planSweep(wf: TaskRecord, children: Map<string, TaskRecord>, now: number): Plan | undefined {
  const ids = wf.children ?? [];
  for (const id of ids) {
    const c = children.get(id);
    if (c && (c.state === 'failed' || c.state === 'expired' || c.state === 'cancelled'))
      return planFailure(wf, c);
  }
  const steps = wf.steps ?? [];
  if (wf.kind === 'chain') {
    const last = children.get(ids[ids.length - 1] ?? '');
    if (last?.state === 'succeeded') return planSuccess(wf, last, last.result, now);
    return undefined;
  }
  const cb = wf.kind === 'chord' && ids.length > steps.length ? children.get(ids[steps.length]!) : undefined;
  if (cb) return cb.state === 'succeeded' ? planSuccess(wf, cb, cb.result, now) : undefined;
  const members = ids.slice(0, steps.length).map((id) => children.get(id));
  if (members.every((m) => m?.state === 'succeeded')) {
    return planGroupDone({ ...wf, results: members.map((m) => m!.result), remaining: 0 }, now);
  }
  return undefined;
}
