import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import {
  createMetrics,
  threadpoolSizeFromEnv,
  type QueueSizeSample,
} from '../../src/observability/metrics.ts';
import { BatchedHistogram, LabelValueCap, OTHER_LABEL_VALUE } from '../../src/observability/batched.ts';
import { metricTypes, parseSamples, sampleValue } from './prom-text.ts';

test('batched counters reach the registry at scrape time and keep counting across scrapes', async () => {
  const m = createMetrics();
  m.messagesProcessed.inc({ kind: 'pubsub' });
  m.messagesProcessed.inc({ kind: 'pubsub' }, 4);
  m.messagesProcessed.inc({ kind: 'queue', queue: 'orders' });
  m.bytesSent.inc(100);
  m.bytesReceived.inc(7);
  m.routeCacheHits.inc();
  m.routeCacheMisses.inc(2);
  m.deadLetters.inc({ queue: 'orders' });
  let text = await m.registry.metrics();
  assert.equal(sampleValue(text, 'messaging_messages_processed_total', { kind: 'pubsub', queue: '' }), 5);
  assert.equal(
    sampleValue(text, 'messaging_messages_processed_total', { kind: 'queue', queue: 'orders' }),
    1,
  );
  assert.equal(sampleValue(text, 'messaging_bytes_sent_total'), 100);
  assert.equal(sampleValue(text, 'messaging_bytes_received_total'), 7);
  assert.equal(sampleValue(text, 'messaging_route_cache_hits_total'), 1);
  assert.equal(sampleValue(text, 'messaging_route_cache_misses_total'), 2);
  assert.equal(sampleValue(text, 'messaging_dead_letters_total', { queue: 'orders' }), 1);

  m.bytesSent.inc(1);
  m.messagesProcessed.inc({ kind: 'queue', queue: 'orders' });
  text = await m.registry.metrics();
  assert.equal(sampleValue(text, 'messaging_bytes_sent_total'), 101);
  assert.equal(
    sampleValue(text, 'messaging_messages_processed_total', { kind: 'queue', queue: 'orders' }),
    2,
  );
  // Nothing new since the last scrape: the value stays, it is not counted twice.
  text = await m.registry.metrics();
  assert.equal(sampleValue(text, 'messaging_bytes_sent_total'), 101);
});

test('bad increments are dropped instead of failing the scrape', async () => {
  const m = createMetrics();
  m.bytesSent.inc(Number.NaN);
  m.bytesReceived.inc(-5);
  m.dbQueries.inc(Number.POSITIVE_INFINITY);
  m.messageProcessingDuration.observe({ kind: 'task' }, Number.NaN);
  m.messageProcessingDuration.observe({ kind: 'task' }, -1);
  const text = await m.registry.metrics();
  assert.equal(sampleValue(text, 'messaging_bytes_sent_total'), 0);
  assert.equal(sampleValue(text, 'messaging_bytes_received_total'), 0);
  assert.equal(sampleValue(text, 'messaging_db_queries_total'), 0);
  assert.equal(
    sampleValue(text, 'messaging_message_processing_duration_seconds_count', { kind: 'task', queue: '' }),
    0,
  );
});

test('two servers in one process have independent registries', async () => {
  const a = createMetrics();
  const b = createMetrics();
  a.bytesSent.inc(10);
  assert.notEqual(a.registry, b.registry);
  assert.equal(sampleValue(await a.registry.metrics(), 'messaging_bytes_sent_total'), 10);
  assert.equal(sampleValue(await b.registry.metrics(), 'messaging_bytes_sent_total'), 0);
});

test('the queue label is capped and later names fold into _other', async () => {
  let overflowed: string | undefined;
  const cap = new LabelValueCap(2, (v) => (overflowed = v));
  assert.equal(cap.admit('a'), 'a');
  assert.equal(cap.admit(''), '', 'the empty name takes no slot');
  assert.equal(cap.admit('b'), 'b');
  assert.equal(cap.admit('c'), OTHER_LABEL_VALUE);
  assert.equal(cap.admit('a'), 'a', 'admitted names keep their slot');
  assert.equal(overflowed, 'c');
  assert.equal(cap.size, 2);

  const m = createMetrics({ maxQueueLabelValues: 3 });
  for (let i = 0; i < 10; i++) m.messagesProcessed.inc({ kind: 'queue', queue: `q${i}` });
  const text = await m.registry.metrics();
  const queues = parseSamples(text)
    .filter((s) => s.name === 'messaging_messages_processed_total' && s.labels.kind === 'queue')
    .map((s) => s.labels.queue);
  assert.deepEqual(queues.sort(), ['_other', 'q0', 'q1', 'q2']);
  assert.equal(
    sampleValue(text, 'messaging_messages_processed_total', { kind: 'queue', queue: '_other' }),
    7,
  );
});

test('queue sizes are read from sources at scrape time; removed queues disappear', async () => {
  const m = createMetrics({ maxQueueLabelValues: 2 });
  let samples: QueueSizeSample[] = [
    { kind: 'queue', queue: 'orders', size: 5 },
    { kind: 'task', queue: 'emails', size: 2 },
    { kind: 'queue', queue: 'x', size: 1 },
    { kind: 'queue', queue: 'y', size: 3 },
  ];
  const remove = m.addQueueSizeSource(() => samples);
  m.addQueueSizeSource(() => {
    throw new Error('broken source');
  });
  let text = await m.registry.metrics();
  assert.equal(sampleValue(text, 'messaging_message_queue_size', { kind: 'queue', queue: 'orders' }), 5);
  assert.equal(sampleValue(text, 'messaging_message_queue_size', { kind: 'task', queue: 'emails' }), 2);
  assert.equal(sampleValue(text, 'messaging_message_queue_size', { kind: 'queue', queue: '_other' }), 4);

  samples = [{ kind: 'task', queue: 'emails', size: 0 }];
  text = await m.registry.metrics();
  assert.equal(
    sampleValue(text, 'messaging_message_queue_size', { kind: 'queue', queue: 'orders' }),
    undefined,
  );
  assert.equal(sampleValue(text, 'messaging_message_queue_size', { kind: 'task', queue: 'emails' }), 0);
  remove();
  text = await m.registry.metrics();
  assert.equal(
    parseSamples(text).filter((s) => s.name === 'messaging_message_queue_size').length,
    0,
    'no source, no series',
  );
});

test('connections: opened/closed keep active, total and closed-by-reason consistent', async () => {
  const m = createMetrics();
  m.connectionOpened('tcp');
  m.connectionOpened('tcp');
  m.connectionOpened('websocket');
  m.connectionClosed('tcp', 'slow_consumer');
  m.connectionClosed('websocket', 'client_closed');
  m.connectionClosed('websocket', 'client_closed'); // a double close must not go negative
  assert.deepEqual(m.activeConnections(), { tcp: 1, websocket: 0, http: 0 });
  const text = await m.registry.metrics();
  assert.equal(sampleValue(text, 'messaging_connections_active', { transport: 'tcp' }), 1);
  assert.equal(sampleValue(text, 'messaging_connections_active', { transport: 'websocket' }), 0);
  assert.equal(sampleValue(text, 'messaging_connections_total', { transport: 'tcp' }), 2);
  assert.equal(sampleValue(text, 'messaging_connections_total', { transport: 'http' }), 0);
  assert.equal(sampleValue(text, 'messaging_connections_closed_total', { reason: 'slow_consumer' }), 1);
  assert.equal(sampleValue(text, 'messaging_connections_closed_total', { reason: 'client_closed' }), 2);
  assert.equal(sampleValue(text, 'messaging_connections_closed_total', { reason: 'server_shutdown' }), 0);
});

test('histograms export cumulative buckets, +Inf, _sum and _count', async () => {
  const registry = new Registry();
  const h = new BatchedHistogram<{ kind: string }>(registry, 'h_seconds', 'test', ['kind'], [0.1, 1, 10]);
  for (const v of [0.05, 0.1, 0.5, 5, 50]) h.observe({ kind: 'a' }, v);
  const text = await registry.metrics();
  const bucket = (le: string) => sampleValue(text, 'h_seconds_bucket', { kind: 'a', le });
  assert.equal(bucket('0.1'), 2, 'a value equal to a bound falls in that bucket');
  assert.equal(bucket('1'), 3);
  assert.equal(bucket('10'), 4);
  assert.equal(bucket('+Inf'), 5);
  assert.equal(sampleValue(text, 'h_seconds_count', { kind: 'a' }), 5);
  assert.ok(Math.abs(sampleValue(text, 'h_seconds_sum', { kind: 'a' })! - 55.65) < 1e-9);
  assert.equal(metricTypes(text).get('h_seconds'), 'histogram');

  const stop = h.startTimer({ kind: 'b' });
  const seconds = stop();
  assert.ok(seconds >= 0 && seconds < 1);
  assert.equal(sampleValue(await registry.metrics(), 'h_seconds_count', { kind: 'b' }), 1);

  registry.resetMetrics();
  assert.equal(sampleValue(await registry.metrics(), 'h_seconds_count', { kind: 'a' }), 0);
  assert.throws(() => new BatchedHistogram(new Registry(), 'bad', 'bad', [], [1, 1]), RangeError);
});

test('database metrics exist at zero before the PostgreSQL engine feeds them', async () => {
  const m = createMetrics();
  let text = await m.registry.metrics();
  assert.equal(sampleValue(text, 'messaging_db_connections_active'), 0);
  assert.equal(sampleValue(text, 'messaging_db_queries_total'), 0);
  assert.equal(sampleValue(text, 'messaging_db_errors_total'), 0);
  assert.equal(sampleValue(text, 'messaging_db_query_duration_seconds_count'), 0);
  assert.equal(sampleValue(text, 'messaging_db_query_duration_seconds_bucket', { le: '+Inf' }), 0);
  m.dbConnectionsActive.set(3);
  m.dbQueries.inc();
  m.dbQueryDuration.observe(0.002);
  text = await m.registry.metrics();
  assert.equal(sampleValue(text, 'messaging_db_connections_active'), 3);
  assert.equal(sampleValue(text, 'messaging_db_queries_total'), 1);
  assert.equal(sampleValue(text, 'messaging_db_query_duration_seconds_bucket', { le: '0.0025' }), 1);
});

test('thread count is 1 main + threadpool + worker threads', async () => {
  assert.equal(threadpoolSizeFromEnv({}), 4);
  assert.equal(threadpoolSizeFromEnv({ UV_THREADPOOL_SIZE: '16' }), 16);
  assert.equal(threadpoolSizeFromEnv({ UV_THREADPOOL_SIZE: '0' }), 1);
  assert.equal(threadpoolSizeFromEnv({ UV_THREADPOOL_SIZE: 'lots' }), 4);
  const m = createMetrics({ threadpoolSize: 8 });
  assert.equal(sampleValue(await m.registry.metrics(), 'messaging_system_thread_count'), 9);
  m.setWorkerThreads(3);
  assert.equal(sampleValue(await m.registry.metrics(), 'messaging_system_thread_count'), 12);
});

test('system gauges: uptime from startedAt, memory by type', async () => {
  const m = createMetrics({ startedAt: Date.now() - 90_000 });
  const text = await m.registry.metrics();
  const uptime = sampleValue(text, 'messaging_system_uptime_seconds')!;
  assert.ok(uptime >= 90 && uptime < 100, `uptime ${uptime}`);
  for (const type of ['rss', 'heap_total', 'heap_used', 'external', 'array_buffers']) {
    assert.ok(sampleValue(text, 'messaging_system_memory_usage_bytes', { type })! > 0, type);
  }
});

test('bindTraffic counts the increase of running totals kept elsewhere', async () => {
  const m = createMetrics();
  const totals = {
    bytesSent: 100,
    bytesReceived: 50,
    messagesProcessed: 10,
    routeCacheHits: 7,
    routeCacheMisses: 1,
  };
  const unbind = m.bindTraffic(() => totals);
  m.bytesSent.inc(5); // direct increments still add up
  let text = await m.registry.metrics();
  assert.equal(sampleValue(text, 'messaging_bytes_sent_total'), 105);
  assert.equal(sampleValue(text, 'messaging_bytes_received_total'), 50);
  assert.equal(sampleValue(text, 'messaging_messages_processed_total', { kind: 'pubsub', queue: '' }), 10);
  assert.equal(sampleValue(text, 'messaging_messages_failed_total', { kind: 'pubsub', queue: '' }), 0);
  assert.equal(sampleValue(text, 'messaging_route_cache_hits_total'), 7);
  assert.equal(sampleValue(text, 'messaging_route_cache_misses_total'), 1);

  totals.bytesSent = 130;
  totals.messagesProcessed = 3; // the owner started over: the new total is all increase
  text = await m.registry.metrics();
  assert.equal(sampleValue(text, 'messaging_bytes_sent_total'), 135);
  assert.equal(sampleValue(text, 'messaging_messages_processed_total', { kind: 'pubsub', queue: '' }), 13);

  unbind();
  totals.bytesSent = 1000;
  text = await m.registry.metrics();
  assert.equal(sampleValue(text, 'messaging_bytes_sent_total'), 135, 'unbound totals are no longer read');
});
