/**
 * From what a client asks for to the task record the storage keeps: argument checking, defaults, and the
 * retry policy (exponential backoff with a cap and jitter). The record type, its states and the
 * transition table are the storage's contract (`src/storage/task-types.ts`); this module only builds
 * records and decides what a failure leads to.
 */
import { parsePriority } from '../core/broker.ts';
import { MessagingError } from '../protocol/errors.ts';
import { UlidGenerator, ulidToString } from '../protocol/ulid.ts';
import type {
  RetryPolicy,
  TaskPatch,
  TaskPriority,
  TaskRecord,
  TaskState,
  TaskTemplate,
} from '../storage/task-types.ts';

export const TASK_DEFAULTS = {
  queue: 'default',
  priority: 2 as TaskPriority,
  max_retries: 3,
  retry: { delay_ms: 1000, backoff: 2, max_delay_ms: 10 * 60_000, jitter: 0.1 } satisfies RetryPolicy,
  /** Results (and errors) are kept a day after the task ends. */
  result_ttl_ms: 24 * 3600_000,
} as const;

const MAX_MS = 10 * 365 * 24 * 3600_000;
// The protocol's generator draws randomness once per millisecond (the `ulid` package draws per character).
const ids = new UlidGenerator();

/** A fresh task id (ULID: time-ordered, strictly increasing within this process). */
export function newTaskId(): string {
  return ulidToString(ids.next());
}

type Args = Record<string, unknown>;

function bad(message: string): MessagingError {
  return new MessagingError('BAD_REQUEST', message);
}

function int(args: Args, key: string, min: number, max: number): number | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw bad(`"${key}" must be an integer from ${min} to ${max}`);
  return v;
}

function num(args: Args, key: string, min: number, max: number): number | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max)
    throw bad(`"${key}" must be a number from ${min} to ${max}`);
  return v;
}

/** Epoch ms, or an ISO-8601 time. */
function time(args: Args, key: string): number | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  const t = typeof v === 'string' ? Date.parse(v) : v;
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0)
    throw bad(`"${key}" must be epoch milliseconds or an ISO-8601 time`);
  return t;
}

function text(args: Args, key: string, max = 255): string | undefined {
  const v = args[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > max || /[\p{Cc}]/u.test(v))
    throw bad(`"${key}" must be a string of 1-${max} printable characters`);
  return v;
}

/** Task and queue names: no whitespace or control characters (they appear in metrics and CLI output). */
function name(args: Args, key: string, fallback?: string): string {
  const v = text(args, key) ?? fallback;
  if (v === undefined) throw bad(`"${key}" is required`);
  if (/\s/.test(v)) throw bad(`"${key}" must not contain whitespace`);
  return v;
}

function tags(args: Args): string[] | undefined {
  const v = args.tags;
  if (v === undefined || v === null) return undefined;
  if (
    !Array.isArray(v) ||
    v.length > 64 ||
    v.some((t) => typeof t !== 'string' || t.length === 0 || t.length > 128)
  )
    throw bad('"tags" must be an array of at most 64 non-empty strings');
  return [...new Set(v as string[])];
}

function retryPolicy(args: Args): Partial<RetryPolicy> {
  const nested = args.retry && typeof args.retry === 'object' ? (args.retry as Args) : {};
  const out: Partial<RetryPolicy> = {};
  const delay = int(args, 'retry_delay_ms', 0, MAX_MS) ?? int(nested, 'delay_ms', 0, MAX_MS);
  const backoff = num(args, 'retry_backoff', 1, 100) ?? num(nested, 'backoff', 1, 100);
  const cap = int(args, 'retry_max_delay_ms', 0, MAX_MS) ?? int(nested, 'max_delay_ms', 0, MAX_MS);
  const jitter = num(args, 'retry_jitter', 0, 1) ?? num(nested, 'jitter', 0, 1);
  if (delay !== undefined) out.delay_ms = delay;
  if (backoff !== undefined) out.backoff = backoff;
  if (cap !== undefined) out.max_delay_ms = cap;
  if (jitter !== undefined) out.jitter = jitter;
  return out;
}

/** A task to create later (workflow step, chord callback, schedule), from wire arguments. */
export function templateFromArgs(args: unknown, what = 'task'): TaskTemplate {
  if (!args || typeof args !== 'object' || Array.isArray(args)) throw bad(`${what} must be an object`);
  const a = args as Args;
  const t: TaskTemplate = { name: name(a, 'name') };
  if (a.args !== undefined) t.args = a.args;
  const queue = text(a, 'queue');
  if (queue !== undefined) t.queue = name(a, 'queue');
  const priority = parsePriority(a.priority);
  if (priority !== undefined) t.priority = priority;
  const maxRetries = int(a, 'max_retries', 0, 1000);
  if (maxRetries !== undefined) t.max_retries = maxRetries;
  const retry = retryPolicy(a);
  if (Object.keys(retry).length) t.retry = retry;
  const timeout = int(a, 'timeout_ms', 1, MAX_MS);
  if (timeout !== undefined) t.timeout_ms = timeout;
  const tg = tags(a);
  if (tg) t.tags = tg;
  const ttl = int(a, 'result_ttl_ms', 1, MAX_MS);
  if (ttl !== undefined) t.result_ttl_ms = ttl;
  const expiresIn = int(a, 'expires_in_ms', 1, MAX_MS);
  if (expiresIn !== undefined) t.expires_in_ms = expiresIn;
  return t;
}

export interface BuildOptions {
  now: number;
  id?: string;
  /** Replaces the template's args (a chain step fed by the previous result). */
  args?: { value: unknown };
  parent?: { id: string; index: number };
  schedule?: { id: string; tick: number };
  eta?: number;
  expires?: number;
  idempotencyKey?: string;
}

/** The record for a new task: `pending` with a future ETA, else `queued`. */
export function recordFromTemplate(t: TaskTemplate, o: BuildOptions): TaskRecord {
  const r: TaskRecord = {
    id: o.id ?? newTaskId(),
    kind: 'task',
    name: t.name,
    args: o.args ? o.args.value : (t.args ?? null),
    queue: t.queue ?? TASK_DEFAULTS.queue,
    priority: t.priority ?? TASK_DEFAULTS.priority,
    state: o.eta !== undefined && o.eta > o.now ? 'pending' : 'queued',
    created_at: o.now,
    updated_at: o.now,
    max_retries: t.max_retries ?? TASK_DEFAULTS.max_retries,
    retry: { ...TASK_DEFAULTS.retry, ...t.retry },
    result_ttl_ms: t.result_ttl_ms ?? TASK_DEFAULTS.result_ttl_ms,
    attempts: 0,
  };
  if (r.state === 'pending') r.eta = o.eta;
  else r.queued_at = o.now;
  const expires = o.expires ?? (t.expires_in_ms !== undefined ? o.now + t.expires_in_ms : undefined);
  if (expires !== undefined) r.expires = expires;
  if (t.timeout_ms !== undefined) r.timeout_ms = t.timeout_ms;
  if (t.tags) r.tags = t.tags;
  if (o.idempotencyKey !== undefined) r.idempotency_key = o.idempotencyKey;
  if (o.parent) r.parent = o.parent;
  if (o.schedule) r.schedule = o.schedule;
  return r;
}

/** `task.submit` / `POST /v1/tasks` arguments → a new record. */
export function recordFromArgs(args: Args, now: number): TaskRecord {
  const t = templateFromArgs(args);
  const id = text(args, 'id', 128);
  if (id !== undefined && !/^[\w.:-]+$/.test(id)) throw bad('"id" may use letters, digits and . _ : - only');
  const countdown = int(args, 'countdown_ms', 0, MAX_MS);
  const eta = time(args, 'eta') ?? (countdown !== undefined ? now + countdown : undefined);
  const expires = time(args, 'expires');
  const key = text(args, 'idempotency_key');
  const o: BuildOptions = { now };
  if (id !== undefined) o.id = id;
  if (eta !== undefined) o.eta = eta;
  if (expires !== undefined) o.expires = expires;
  if (key !== undefined) o.idempotencyKey = key;
  const r = recordFromTemplate(t, o);
  // As for messages, a malformed traceparent starts no trace rather than failing the submit.
  if (typeof args.traceparent === 'string' && TRACEPARENT.test(args.traceparent))
    r.traceparent = args.traceparent;
  return r;
}

const TRACEPARENT = /^[\da-f]{2}-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/;

/** Delay before the attempt after failed attempt `attempt` (1-based), jitter drawn from `random`. */
export function retryDelay(p: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const raw = p.delay_ms * Math.pow(p.backoff, Math.max(0, attempt - 1));
  const capped = Math.min(raw, p.max_delay_ms);
  return Math.max(0, Math.round(capped * (1 - p.jitter * random())));
}

/** What a failed attempt reports: the handler's error and how it wants the task steered. */
export interface FailureReport {
  error: { name: string; message: string; stack?: string };
  /** UnrecoverableError: no further attempt. */
  unrecoverable?: boolean;
  /** RetryLaterError: retry after exactly this delay (still counts as an attempt). */
  retryInMs?: number;
}

/**
 * Where a failed attempt takes the task: `retrying` with the backoff delay while attempts remain
 * (attempts ≤ max_retries, so max_retries = N gives N+1 attempts), else `failed`.
 */
export function afterFailure(
  task: TaskRecord,
  report: FailureReport,
  random: () => number = Math.random,
): { to: TaskState; set: TaskPatch } {
  const error = { ...report.error };
  if (report.unrecoverable || task.attempts > task.max_retries) return { to: 'failed', set: { error } };
  const delay = report.retryInMs ?? retryDelay(task.retry, task.attempts, random);
  return { to: 'retrying', set: { error, eta_in_ms: delay } };
}

/** A thrown value as the error a task record keeps (stack included, bounded). */
export function errorOf(err: unknown): { name: string; message: string; stack?: string } {
  if (err instanceof Error) {
    const out: { name: string; message: string; stack?: string } = {
      name: err.name || 'Error',
      message: String(err.message).slice(0, 8192),
    };
    if (err.stack) out.stack = err.stack.slice(0, 16_384);
    return out;
  }
  return { name: 'Error', message: String(err).slice(0, 8192) };
}
