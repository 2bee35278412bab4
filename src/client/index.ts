/**
 * The messaging-system client SDK — the public surface, listed explicitly. Depends only on
 * `src/protocol/`; runs in Node (TCP, TLS, WebSocket) and in browsers (WebSocket).
 *
 * ```ts
 * const nc = await connect({ servers: 'tcp://127.0.0.1:8080' });
 * const sub = nc.subscribe('orders.*');
 * nc.publish('orders.created', JSON.stringify({ id: 1 }));
 * for await (const m of sub) console.log(m.topic, m.json());
 *
 * await nc.queues.declare({ name: 'orders', bindings: ['orders.#'] });
 * await nc.publish('orders.created', '{"id":1}', { confirm: true }); // stored in 'orders'
 * for await (const m of nc.queues.consume('orders', { prefetch: 50 })) await m.ack();
 * ```
 */
export {
  connect,
  Connection,
  type CommandOptions,
  type CommandResult,
  type ConnectionEvents,
  type RequestOptions,
} from './connection.ts';
export { type ServerInfo } from './link.ts';
export { type BackoffOptions, type ConnectOptions, DEFAULT_SERVER, type TokenProvider } from './options.ts';
export { Subscription, type SubscribeOptions } from './subscription.ts';
export {
  Message,
  PRIORITIES,
  type MessageOptions,
  type Payload,
  type PriorityName,
  type PublishAck,
  type PublishOptions,
} from './message.ts';
export { QueueMessage, StreamMessage, type NackOptions } from './durable-message.ts';
export {
  QueueConsumer,
  Queues,
  type ConsumeOptions,
  type DeadLetter,
  type DeadLetterReason,
  type OverflowPolicy,
  type PullOptions,
  type QueueDeclareOptions,
  type QueueInfo,
  type QueuePublishAck,
  type QueuePublishOptions,
  type QueueSpec,
  type QueueStats,
} from './queues.ts';
export {
  StreamSubscription,
  Streams,
  type StreamDeclareOptions,
  type StreamFrom,
  type StreamInfo,
  type StreamReadOptions,
  type StreamReadResult,
  type StreamSpec,
  type StreamSubscribeOptions,
} from './streams.ts';
export {
  Schedules,
  TaskFailedError,
  TaskHandle,
  Tasks,
  type ScheduleInfo,
  type ScheduleOptions,
  type SubmitOptions,
  type TaskAssignment,
  type TaskInfo,
  type TaskListFilter,
  type TaskReceipt,
  type TaskSignature,
  type TaskState,
} from './tasks.ts';
export { type Listener } from './events.ts';
export {
  createMemoryPair,
  type MemoryTransport,
  type TlsOptions,
  type Transport,
  type TransportFactory,
  type TransportOptions,
  type WebSocketConstructor,
  type WebSocketLike,
} from './transport.ts';
export {
  AuthError,
  ConnectionClosedError,
  ERROR_CATALOGUE,
  MessagingError,
  NoRespondersError,
  NotFoundError,
  PermissionError,
  ProtocolError,
  RateLimitedError,
  TimeoutError,
  errorFromWire,
  isErrorCode,
  type ErrorCode,
  type MessageMeta,
  type WireError,
} from '../protocol/index.ts';
