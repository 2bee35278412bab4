/**
 * Composition root of `messaging_server`: builds the broker, storage, listeners, admin port and
 * observability from one effective config, and tears them down in the right order.
 */
import type { Logger } from 'pino';
import type { ServerConfig } from '../config/index.ts';
import { Broker } from '../core/broker.ts';
import { DurableMessaging } from '../core/durable.ts';
import { createStorage } from '../storage/index.ts';
import { registerDurableCommands } from './durable-commands.ts';
import { registerDurableRoutes } from './durable-routes.ts';
import { registerTaskService } from '../tasks/index.ts';
import { FRAME_OVERHEAD_ALLOWANCE } from '../protocol/index.ts';
import { startAdminServer, type AdminServer } from '../admin/server.ts';
import { createLogger } from '../observability/logger.ts';
import { createMetrics, type Metrics } from '../observability/metrics.ts';
import { createTracing } from '../observability/tracing.ts';
import { HttpApi, registerPubSubRoutes } from './http-api.ts';
import { MessagingListener } from './listener.ts';
import { Security } from '../security/security.ts';
import type { CommandHandler, TrafficCounters } from './session.ts';
import { VERSION } from './version.ts';

export interface RunningServer {
  readonly config: ServerConfig;
  readonly port: number;
  readonly adminPort: number;
  readonly broker: Broker;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Graceful shutdown: stop accepting, drain connections, flush storage. */
  close(options?: { deadlineMs?: number }): Promise<void>;
}

export interface StartOptions {
  /** Use this logger instead of one built from `[system] log_level` (tests pass a silent one). */
  logger?: Logger;
}

export async function startServer(config: ServerConfig, options: StartOptions = {}): Promise<RunningServer> {
  const instanceId = config.system.instance_id;
  const logger = options.logger ?? createLogger({ level: config.system.log_level, instanceId });
  const log = logger.child({ module: 'server' });
  const startedAt = Date.now();
  let ready = false;
  let draining = false;

  const maxPayloadBytes = config.message_bus.max_payload_bytes;
  const broker = new Broker({ maxPayloadBytes, routeCacheSize: config.network.route_cache_size });
  const tracing = createTracing({
    enabled: config.monitoring.enable_tracing,
    endpoint: config.monitoring.jaeger_endpoint,
    serviceName: 'messaging_server',
    instanceId,
    warn: (message) => log.warn(message),
  });
  broker.tracer = tracing;
  const counters: TrafficCounters = { bytesReceived: 0, bytesSent: 0 };
  const commands = new Map<string, CommandHandler>();

  // TLS files, keys and the audit file are opened first: a bad one stops the start before anything listens.
  const security = new Security(config, logger);
  await security.connectStores();

  const metrics = createMetrics({ startedAt, logger: logger.child({ module: 'metrics' }) });
  metrics.bindTraffic(() => ({
    bytesReceived: counters.bytesReceived,
    bytesSent: counters.bytesSent,
    messagesProcessed: broker.counters.published,
    routeCacheHits: broker.pubsub.cacheHits,
    routeCacheMisses: broker.pubsub.cacheMisses,
  }));

  const durable = await openDurable(config, logger, metrics, security);
  broker.durable = durable;
  registerDurableCommands(commands, durable);
  metrics.addQueueSizeSource(() => durable.queueSizes());

  const api = new HttpApi(maxPayloadBytes * 2 + FRAME_OVERHEAD_ALLOWANCE);
  registerPubSubRoutes(api, broker);
  registerDurableRoutes(api, broker, durable);
  api.route('POST', '/v1/auth/token', (req) => security.http.issueToken(req));
  api.guard = security.http;
  const tasks = await registerTaskService({
    commands,
    api,
    broker,
    storage: durable.storage,
    metrics,
    logger: logger.child({ module: 'tasks' }),
  });

  const listener = new MessagingListener(
    {
      host: config.network.bind_address,
      port: config.network.listen_port,
      maxConnections: config.network.max_connections,
      tcpNoDelay: config.network_optimization.tcp_nodelay,
      httpEnabled: config.network.http_enabled,
      webSocketEnabled: config.network.websocket_enabled,
      httpIdleTimeoutMs: config.network_optimization.connection_idle_timeout_s * 1000,
      ...(security.tls ? { tls: security.tls } : {}),
    },
    {
      broker,
      logger: logger.child({ module: 'network' }),
      limits: {
        maxPayloadBytes,
        maxFrameBytes: maxPayloadBytes + FRAME_OVERHEAD_ALLOWANCE,
        maxPendingBytes: config.network.max_pending_bytes,
        handshakeTimeoutMs: config.network.connection_timeout_ms,
        heartbeatMs: config.network.keepalive_interval_s * 1000,
      },
      counters,
      instanceId,
      serverVersion: VERSION,
      commands,
      security,
    },
    api,
    {
      opened: (kind) => metrics.connectionOpened(kind),
      closed: (kind, reason) => metrics.connectionClosed(kind, reason),
    },
    logger.child({ module: 'network' }),
  );

  const port = await listener.listen();
  let admin: AdminServer | undefined;
  if (config.monitoring.enable) {
    admin = await startAdminServer({
      host: config.network.bind_address,
      port: config.monitoring.metrics_port,
      metricsPath: config.monitoring.metrics_path,
      registry: metrics.registry,
      logger: logger.child({ module: 'admin' }),
      version: VERSION,
      guard: security.http.admin,
      health: {
        instanceId,
        startedAt,
        ready: () =>
          draining
            ? { ready: false, reason: 'draining for shutdown' }
            : ready
              ? { ready: true }
              : { ready: false, reason: 'starting' },
        components: () => ({
          database: { status: 'healthy', reason: 'not configured: the embedded store needs no database' },
          queue: durable.health(),
          cache: { status: 'healthy', reason: 'not configured: single node' },
          cluster: { status: 'healthy', reason: 'clustering disabled' },
        }),
        connections: () => ({ ...metrics.activeConnections() }),
      },
    });
  }
  ready = true;
  security.started(port);
  log.info(
    { port, admin_port: admin?.port, version: VERSION, pid: process.pid },
    `messaging_server ${VERSION} listening on ${config.network.bind_address}:${port}`,
  );

  let closing: Promise<void> | undefined;
  return {
    config,
    port,
    adminPort: admin?.port ?? 0,
    broker,
    logger,
    metrics,
    close(closeOptions = {}) {
      closing ??= (async () => {
        draining = true;
        log.info('shutting down: no new connections, draining existing ones');
        const deadlineMs = closeOptions.deadlineMs ?? 5000;
        const stopped = listener.stopAccepting();
        await listener.closeAll(deadlineMs);
        await stopped;
        await admin?.close();
        tasks.close();
        await durable.close();
        await tracing.shutdown().catch(() => undefined);
        await security.close();
        log.info('shutdown complete');
      })();
      return closing;
    },
  };
}

/**
 * Opens the configured storage engine and the durable layer on top of it (recovering a file store;
 * connecting to PostgreSQL and creating its tables for `storage = postgres`).
 */
async function openDurable(
  config: ServerConfig,
  logger: Logger,
  metrics: Metrics,
  security: Security,
): Promise<DurableMessaging> {
  const bus = config.message_bus;
  const log = logger.child({ module: 'storage' });
  const db = config.database;
  const startedAt = Date.now();
  // [database_pool] keys are the same settings as the [database] ones (reconciled by the config loader).
  const engine = await createStorage({
    engine: bus.storage,
    path: bus.persistence_path,
    fsync: bus.fsync,
    cacheBytes: bus.cache_mb * 1024 * 1024,
    batchSize: bus.batch_size,
    batchTimeoutMs: config.network_optimization.batch_timeout_ms,
    logger: log,
    ...(bus.storage === 'postgres'
      ? {
          postgres: {
            host: db.host,
            port: db.port,
            database: db.database,
            user: db.username,
            password: db.password,
            poolMin: db.pool_size,
            poolMax: db.max_pool_size,
            connectionTimeoutMs: db.connection_timeout_ms,
            idleTimeoutMs: db.idle_timeout_s * 1000,
            observer: {
              query: (seconds: number, ok: boolean) => {
                metrics.dbQueries.inc();
                metrics.dbQueryDuration.observe(seconds);
                if (!ok) metrics.dbErrors.inc();
              },
              connections: (active: number) => metrics.dbConnectionsActive.set(active),
            },
          },
        }
      : {}),
  });
  // Encryption at rest wraps whichever engine was opened (a missing or wrong key stops the start here).
  let storage;
  try {
    storage = await security.protectStorage(
      engine,
      bus.storage === 'file' ? bus.persistence_path : undefined,
    );
  } catch (err) {
    await engine.close();
    throw err;
  }
  const durable = await DurableMessaging.open(storage, {
    routeCacheSize: config.network.route_cache_size,
    onError: (err, what) => log.error({ err }, `background storage work failed: ${what}`),
    onSettled: (queue, outcome, heldMs) => {
      const labels = { kind: 'queue' as const, queue };
      if (outcome === 'acked') metrics.messagesProcessed.inc(labels);
      else metrics.messagesFailed.inc(labels);
      metrics.messageProcessingDuration.observe(labels, heldMs / 1000);
    },
    onDeadLettered: (queue, count) => metrics.deadLetters.inc({ queue }, count),
  });
  log.info(
    {
      engine: bus.storage,
      path: bus.storage === 'file' ? bus.persistence_path : undefined,
      fsync: bus.storage === 'file' ? bus.fsync : undefined,
      database: bus.storage === 'postgres' ? `${db.host}:${db.port}/${db.database}` : undefined,
      ms: Date.now() - startedAt,
    },
    `storage open (${bus.storage})`,
  );
  return durable;
}
