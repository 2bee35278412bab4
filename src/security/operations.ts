/**
 * Which permission each operation needs and which audit event it is — one table for both front doors:
 * CMD operations by name, and REST routes mapped onto the same operations, so the native protocol and
 * REST can never disagree about what a token allows.
 *
 * Task operations other than submit name their resource through a task or schedule id, so the tasks
 * module checks them after reading the record (src/tasks/access.ts; docs/security.md, "Tasks").
 */
import type { AuditEventKind } from './audit.ts';
import type { ResourceKind } from './permissions.ts';

export interface OperationRule {
  /** The permission category and the argument naming the resource. */
  kind?: ResourceKind;
  arg?: string;
  /** Bindings (topic patterns) a declare would route into the resource: each must be subscribable. */
  bindings?: boolean;
  /** A topic to publish to, from this argument. */
  publishArg?: string;
  /** A list operation: the result's array under this key is filtered to permitted names. */
  list?: ResourceKind;
  audit?: Extract<AuditEventKind, 'data_access' | 'data_modification'>;
}

export const COMMAND_RULES: Readonly<Record<string, OperationRule>> = {
  'queue.declare': { kind: 'queues', arg: 'name', bindings: true, audit: 'data_modification' },
  'queue.delete': { kind: 'queues', arg: 'name', audit: 'data_modification' },
  'queue.list': { list: 'queues' },
  'queue.info': { kind: 'queues', arg: 'name' },
  'queue.purge': { kind: 'queues', arg: 'name', audit: 'data_modification' },
  'queue.consume': { kind: 'queues', arg: 'queue', audit: 'data_access' },
  'queue.pull': { kind: 'queues', arg: 'queue', audit: 'data_access' },
  'queue.ack': { kind: 'queues', arg: 'queue' },
  'queue.nack': { kind: 'queues', arg: 'queue' },
  'queue.publish': { kind: 'queues', arg: 'queue' },
  'dlq.list': { kind: 'queues', arg: 'queue', audit: 'data_access' },
  'dlq.replay': { kind: 'queues', arg: 'queue', audit: 'data_modification' },
  'dlq.purge': { kind: 'queues', arg: 'queue', audit: 'data_modification' },
  'stream.declare': { kind: 'streams', arg: 'name', bindings: true, audit: 'data_modification' },
  'stream.delete': { kind: 'streams', arg: 'name', audit: 'data_modification' },
  'stream.list': { list: 'streams' },
  'stream.info': { kind: 'streams', arg: 'name' },
  'stream.read': { kind: 'streams', arg: 'stream', audit: 'data_access' },
  'stream.subscribe': { kind: 'streams', arg: 'stream', audit: 'data_access' },
  'stream.commit': { kind: 'streams', arg: 'stream' },
  publish: { publishArg: 'topic' },
  // A safety net for the simplest task operation; the tasks module checks the rest itself (by task id).
  'task.submit': { kind: 'tasks', arg: 'name' },
};

/**
 * REST routes (`METHOD /template`) as operations: the operation name and how to build its arguments
 * from the path parameters and the body.
 */
export const ROUTE_OPERATIONS: Readonly<
  Record<
    string,
    {
      op: string;
      args: (params: Record<string, string>, body: Record<string, unknown>) => Record<string, unknown>;
    }
  >
> = {
  'POST /v1/publish': { op: 'publish', args: (_p, b) => b },
  'POST /v1/request': { op: 'publish', args: (_p, b) => b },
  'POST /v1/queues': { op: 'queue.declare', args: (_p, b) => b },
  'GET /v1/queues': { op: 'queue.list', args: () => ({}) },
  'GET /v1/queues/{name}': { op: 'queue.info', args: (p) => ({ name: p.name }) },
  'DELETE /v1/queues/{name}': { op: 'queue.delete', args: (p) => ({ name: p.name }) },
  'POST /v1/queues/{name}/purge': { op: 'queue.purge', args: (p) => ({ name: p.name }) },
  'POST /v1/queues/{name}/messages': { op: 'queue.publish', args: (p) => ({ queue: p.name }) },
  'POST /v1/queues/{name}/pull': { op: 'queue.pull', args: (p) => ({ queue: p.name }) },
  'POST /v1/queues/{name}/ack': { op: 'queue.ack', args: (p) => ({ queue: p.name }) },
  'POST /v1/queues/{name}/nack': { op: 'queue.nack', args: (p) => ({ queue: p.name }) },
  'GET /v1/queues/{name}/dead-letters': { op: 'dlq.list', args: (p) => ({ queue: p.name }) },
  'POST /v1/queues/{name}/dead-letters/replay': { op: 'dlq.replay', args: (p) => ({ queue: p.name }) },
  'DELETE /v1/queues/{name}/dead-letters': { op: 'dlq.purge', args: (p) => ({ queue: p.name }) },
  'POST /v1/streams': { op: 'stream.declare', args: (_p, b) => b },
  'GET /v1/streams': { op: 'stream.list', args: () => ({}) },
  'GET /v1/streams/{name}': { op: 'stream.info', args: (p) => ({ name: p.name }) },
  'DELETE /v1/streams/{name}': { op: 'stream.delete', args: (p) => ({ name: p.name }) },
  'GET /v1/streams/{name}/messages': { op: 'stream.read', args: (p) => ({ stream: p.name }) },
  'POST /v1/tasks': { op: 'task.submit', args: (_p, b) => b },
};

/** Routes reachable without a token (they carry their own credentials). */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['POST /v1/auth/token']);
