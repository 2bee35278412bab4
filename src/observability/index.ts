/** Logs and metrics: the public surface of `observability/`. */
export {
  createLogger,
  parseLogLevel,
  setLogLevel,
  type Logger,
  type LoggerOptions,
  type LogLevel,
} from './logger.ts';
export {
  createMetrics,
  CONNECTION_CLOSE_REASONS,
  MESSAGE_KINDS,
  TRANSPORTS,
  type ConnectionCloseReason,
  type MessageKind,
  type MessageLabels,
  type Metrics,
  type MetricsOptions,
  type QueueSizeSample,
  type Timing,
  type TrafficTotals,
  type Transport,
} from './metrics.ts';
export {
  BatchedCounter,
  BatchedHistogram,
  BatchedLabeledCounter,
  LabelValueCap,
  OTHER_LABEL_VALUE,
  type LabelValues,
} from './batched.ts';
