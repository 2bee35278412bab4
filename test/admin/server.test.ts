import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startAdminServer, type AdminServer, type AdminServerOptions } from '../../src/admin/server.ts';
import type { ComponentHealth, HealthSource } from '../../src/admin/health.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createMetrics, type Metrics } from '../../src/observability/metrics.ts';
import { metricTypes, sampleValue } from '../observability/prom-text.ts';

/** Every metric name in the deployment guide, "Monitoring Setup" → "Metrics Exposed". */
const GUIDE_METRICS = [
  'messaging_system_uptime_seconds',
  'messaging_system_cpu_usage_percent',
  'messaging_system_memory_usage_bytes',
  'messaging_system_thread_count',
  'messaging_messages_processed_total',
  'messaging_messages_failed_total',
  'messaging_message_processing_duration_seconds',
  'messaging_message_queue_size',
  'messaging_connections_active',
  'messaging_connections_total',
  'messaging_bytes_sent_total',
  'messaging_bytes_received_total',
  'messaging_db_connections_active',
  'messaging_db_queries_total',
  'messaging_db_query_duration_seconds',
  'messaging_db_errors_total',
];
const OUR_METRICS = [
  'messaging_connections_closed_total',
  'messaging_dead_letters_total',
  'messaging_route_cache_hits_total',
  'messaging_route_cache_misses_total',
];

/** A test double of the server's side of the `HealthSource` interface, with settable state. */
class FakeHealth implements HealthSource {
  readonly instanceId = 'test-node-1';
  readonly startedAt = Date.now() - 3_600_000;
  readiness: { ready: boolean; reason?: string } = { ready: true };
  state: Record<string, ComponentHealth> = {
    database: { status: 'healthy', reason: 'embedded file store' },
    queue: { status: 'healthy', engine: 'file', state: 'open' },
    cache: { status: 'healthy', reason: 'not configured' },
    cluster: { status: 'healthy', reason: 'disabled' },
  };
  ready() {
    return this.readiness;
  }
  components() {
    return this.state;
  }
  connections() {
    return { tcp: 3, websocket: 1, http: 0 };
  }
  extra() {
    return { storage_engine: 'file', status: 'extra must not override' };
  }
}

interface Harness {
  admin: AdminServer;
  health: FakeHealth;
  metrics: Metrics;
  url: (path: string) => string;
}

async function start(t: TestContext, overrides: Partial<AdminServerOptions> = {}): Promise<Harness> {
  const health = new FakeHealth();
  const metrics = createMetrics({ startedAt: health.startedAt });
  const admin = await startAdminServer({
    host: '127.0.0.1',
    port: 0,
    registry: metrics.registry,
    health,
    logger: createLogger({ instanceId: health.instanceId, level: 'silent' }),
    version: '1.0.0',
    ...overrides,
  });
  t.after(() => admin.close());
  return { admin, health, metrics, url: (path) => `http://127.0.0.1:${admin.port}${path}` };
}

async function getJson(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function scrape(h: Harness, path = '/metrics'): Promise<string> {
  const res = await fetch(h.url(path), { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return res.text();
}

test('/health has the guide’s shape: status, uptime, version, components.database/queue/cache', async (t) => {
  const h = await start(t);
  const { status, body } = await getJson(h.url('/health'));
  assert.equal(status, 200);
  assert.equal(body.status, 'healthy');
  assert.equal(body.version, '1.0.0');
  assert.equal(body.instance_id, 'test-node-1');
  assert.ok(
    Number.isInteger(body.uptime) && (body.uptime as number) >= 3600,
    `uptime ${String(body.uptime)}`,
  );
  const components = body.components as Record<string, unknown>;
  for (const name of ['database', 'queue', 'cache']) assert.equal(components[name], 'healthy', name);
  assert.deepEqual(Object.keys(body).sort(), ['components', 'instance_id', 'status', 'uptime', 'version']);
});

test('/health: degraded stays 200 (liveness must not restart for a dependency); unhealthy is 503', async (t) => {
  const h = await start(t);
  h.health.state.cache = { status: 'degraded', reason: 'redis unreachable' };
  let res = await getJson(h.url('/health'));
  assert.equal(res.status, 200);
  assert.equal(res.body.status, 'degraded');
  assert.equal((res.body.components as Record<string, unknown>).cache, 'degraded');

  h.health.state.queue = { status: 'unhealthy', reason: 'storage engine closed after an I/O error' };
  res = await getJson(h.url('/health'));
  assert.equal(res.status, 503);
  assert.equal(res.body.status, 'unhealthy', 'overall status is the worst component');

  h.health.components = () => {
    throw new Error('boom');
  };
  res = await getJson(h.url('/health'));
  assert.equal(res.status, 503, 'a health source that throws is unhealthy');
});

test('/health/detailed adds per-component details, readiness, connections, memory and event-loop delay', async (t) => {
  const h = await start(t);
  h.health.state.cache = { status: 'degraded', reason: 'redis unreachable' };
  const { status, body } = await getJson(h.url('/health/detailed'));
  assert.equal(status, 200);
  assert.equal(body.status, 'degraded', 'standard keys win over extra()');
  assert.equal(body.version, '1.0.0');
  assert.equal((body.components as Record<string, unknown>).database, 'healthy');
  const details = body.details as Record<string, ComponentHealth>;
  assert.deepEqual(details.database, { status: 'healthy', reason: 'embedded file store' });
  assert.deepEqual(details.cache, { status: 'degraded', reason: 'redis unreachable' });
  assert.equal(details.cluster?.reason, 'disabled');
  assert.equal(details.queue?.engine, 'file');
  assert.deepEqual(body.ready, { ready: true });
  assert.deepEqual(body.connections, { tcp: 3, websocket: 1, http: 0 });
  assert.ok(((body.memory as Record<string, number>).rss_bytes ?? 0) > 0);
  const loop = body.event_loop_delay as Record<string, number>;
  for (const k of ['mean_ms', 'p50_ms', 'p99_ms', 'max_ms', 'window_s'])
    assert.equal(typeof loop[k], 'number', k);
  assert.equal(body.storage_engine, 'file');
});

test('/ready: 200 when ready, 503 with a reason during start-up or drain', async (t) => {
  const h = await start(t);
  h.health.readiness = { ready: false, reason: 'starting' };
  let res = await getJson(h.url('/ready'));
  assert.equal(res.status, 503);
  assert.deepEqual(res.body, { ready: false, reason: 'starting' });

  h.health.readiness = { ready: true };
  res = await getJson(h.url('/ready'));
  assert.equal(res.status, 200);
  assert.deepEqual(res.body, { ready: true });

  h.health.readiness = { ready: false, reason: 'draining' };
  res = await getJson(h.url('/ready'));
  assert.equal(res.status, 503);
  assert.equal(res.body.reason, 'draining');
  // Readiness does not affect liveness: a draining server is still alive.
  assert.equal((await getJson(h.url('/health'))).status, 200);
});

test('/metrics serves every guide metric name plus ours in Prometheus text format', async (t) => {
  const h = await start(t);
  h.metrics.messagesProcessed.inc({ kind: 'queue', queue: 'orders' });
  h.metrics.addQueueSizeSource(() => [{ kind: 'queue', queue: 'orders', size: 4 }]);
  const text = await scrape(h);
  const types = metricTypes(text);
  for (const name of [...GUIDE_METRICS, ...OUR_METRICS]) assert.ok(types.has(name), `missing ${name}`);
  assert.equal(types.get('messaging_message_processing_duration_seconds'), 'histogram');
  assert.equal(types.get('messaging_messages_processed_total'), 'counter');
  assert.equal(types.get('messaging_connections_active'), 'gauge');
  assert.equal(sampleValue(text, 'messaging_message_queue_size', { kind: 'queue', queue: 'orders' }), 4);
  const uptime = sampleValue(text, 'messaging_system_uptime_seconds')!;
  assert.ok(uptime >= 3600, `uptime ${uptime}`);
});

test('/metrics honours metrics_path', async (t) => {
  const h = await start(t, { metricsPath: '/prom' });
  assert.ok(metricTypes(await scrape(h, '/prom')).has('messaging_system_uptime_seconds'));
  assert.equal((await getJson(h.url('/metrics'))).status, 404);
  await assert.rejects(
    startAdminServer({
      port: 0,
      metricsPath: '/health',
      registry: h.metrics.registry,
      health: h.health,
      logger: createLogger({ instanceId: 'x', level: 'silent' }),
      version: '1.0.0',
    }),
    RangeError,
  );
});

test('messaging_system_cpu_usage_percent follows real CPU use (not a constant)', async (t) => {
  const h = await start(t);
  const cpu = async () => sampleValue(await scrape(h), 'messaging_system_cpu_usage_percent')!;
  await new Promise((r) => setTimeout(r, 150));
  await cpu(); // starts a fresh window
  // Burn ~250 ms of CPU time (not wall time): on a loaded machine a wall-clock loop may get little CPU.
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const until = cpuMs() + 250;
  let x = 0;
  while (cpuMs() < until) for (let i = 0; i < 10_000; i++) x += Math.sqrt(i + x);
  assert.ok(x > 0);
  const busy = await cpu();
  await new Promise((r) => setTimeout(r, 400));
  const idle = await cpu();
  assert.ok(busy > 10, `busy window reads ${busy}%`);
  assert.ok(idle < busy, `idle window (${idle}%) reads below the busy one (${busy}%)`);
});

test('promtool check metrics accepts what /metrics serves', async (t) => {
  const probe = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    t.skip('promtool not installed: apt-get install prometheus');
    return;
  }
  const h = await start(t);
  h.metrics.messagesProcessed.inc({ kind: 'queue', queue: 'orders' });
  h.metrics.messageProcessingDuration.observe({ kind: 'queue' }, 0.003);
  h.metrics.connectionOpened('tcp');
  h.metrics.addQueueSizeSource(() => [{ kind: 'stream', queue: 'events', size: 10 }]);
  const text = await scrape(h);
  const check = spawnSync('promtool', ['check', 'metrics'], {
    input: text,
    encoding: 'utf8',
    timeout: 30_000,
  });
  const output = `${check.stdout}${check.stderr}`;
  // Exit 1 is a format error, exit 3 lint findings (one per line): both fail. The guide's gauge
  // `messaging_system_thread_count` is served untyped, because promtool reserves `_count` for typed
  // histograms and summaries.
  assert.equal(check.status, 0, `promtool exit ${check.status}: ${output}`);
  assert.match(text, /# TYPE messaging_system_thread_count untyped\nmessaging_system_thread_count \d+/);
});

test('unknown paths are 404 and wrong methods 405, both as JSON errors', async (t) => {
  const h = await start(t);
  let res = await getJson(h.url('/nope'));
  assert.equal(res.status, 404);
  assert.equal(res.body.code, 'NOT_FOUND');
  assert.equal(typeof res.body.message, 'string');

  const post = await fetch(h.url('/health'), {
    method: 'POST',
    body: 'x',
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  assert.equal(((await post.json()) as Record<string, unknown>).code, 'BAD_REQUEST');

  const head = await fetch(h.url('/ready'), { method: 'HEAD', signal: AbortSignal.timeout(5000) });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), '');

  res = await getJson(h.url('/health?verbose=1'));
  assert.equal(res.status, 200, 'a query string does not change the route');
});

test('the handle hook serves routes the server does not own, and its errors become 500', async (t) => {
  const h = await start(t, {
    handle: async (req, res, url) => {
      if (url.pathname === '/v1/info') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ method: req.method, q: url.searchParams.get('q') }));
        return true;
      }
      if (url.pathname === '/v1/crash') throw new Error('handler bug');
      return false;
    },
  });
  let res = await getJson(h.url('/v1/info?q=1'));
  assert.deepEqual(res.body, { method: 'GET', q: '1' });
  res = await getJson(h.url('/v1/crash'));
  assert.equal(res.status, 500);
  assert.equal(res.body.code, 'INTERNAL');
  res = await getJson(h.url('/v1/other'));
  assert.equal(res.status, 404);
  // Built-in routes cannot be shadowed by the hook.
  assert.equal((await getJson(h.url('/ready'))).status, 200);
});

test('close() ends idle keep-alive connections promptly and is idempotent', async (t) => {
  const h = await start(t);
  await (await fetch(h.url('/health'))).text(); // leaves a keep-alive socket in the pool
  const started = performance.now();
  await Promise.all([h.admin.close(), h.admin.close()]);
  assert.ok(performance.now() - started < 900, 'did not wait for keepAliveTimeout');
  await assert.rejects(fetch(h.url('/health'), { signal: AbortSignal.timeout(2000) }));
});

test('a busy port is reported, not swallowed', async (t) => {
  const h = await start(t);
  await assert.rejects(
    startAdminServer({
      host: '127.0.0.1',
      port: h.admin.port,
      registry: h.metrics.registry,
      health: h.health,
      logger: createLogger({ instanceId: 'x', level: 'silent' }),
      version: '1.0.0',
    }),
    /EADDRINUSE/,
  );
});
