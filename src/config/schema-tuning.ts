/**
 * The tuning fragments of the deployment guide. Several of them were written for a native server; the
 * keys that cannot mean anything in Node.js are still accepted (operators copy the guide) but carry a
 * `nodeMeaningless` reason that is reported as a warning whenever the key is set.
 */
import { availableParallelism } from 'node:os';
import { LOG_LEVELS } from './schema-main.ts';
import { bool, group, indexed, int, mapOf, oneOf, range, section, str } from './define.ts';

const NO_AFFINITY = 'Node.js cannot pin threads to CPU cores; use taskset or a container CPU set instead.';
const NO_ARENA =
  'V8 manages the heap and has no arena allocator; cap the heap with node --max-old-space-size instead.';
const NO_GC_CONTROL =
  'V8 decides when to collect garbage; cap the heap with node --max-old-space-size instead.';

export const thread_pool = section(
  'Concurrency of messaging_worker and its realtime/batch/background pools.',
  {
    worker_threads: int(
      availableParallelism(),
      'Handlers a worker runs at once by default (WORKER_THREADS sets it too).',
      { min: 1, max: 4096, docDefault: '[message_bus] worker_threads' },
    ),
    realtime_threads: int(4, 'Concurrency of the realtime pool (latency-sensitive tasks).', { min: 0 }),
    batch_threads: int(8, 'Concurrency of the batch pool.', { min: 0 }),
    background_threads: int(2, 'Concurrency of the background pool (housekeeping, low priority).', {
      min: 0,
    }),
    enable_cpu_affinity: bool(false, 'Pin threads to CPU cores.', { nodeMeaningless: NO_AFFINITY }),
    cpu_affinity_mask: str('', 'Cores threads may run on, as a hex mask.', { nodeMeaningless: NO_AFFINITY }),
  },
);

export const memory = section('Allocator tuning of the native server; none of it applies to Node.js.', {
  message_pool_size: int(10000, 'Preallocated message objects.', {
    nodeMeaningless: 'V8 allocates and collects message objects; there is no object pool to size.',
  }),
  buffer_pool_size: int(1000, 'Preallocated I/O buffers.', {
    nodeMeaningless: 'Node.js pools small Buffers internally and does not let the pool be sized.',
  }),
  connection_pool_size: int(100, 'Preallocated connection objects.', {
    nodeMeaningless:
      'connections are ordinary garbage-collected objects in Node.js; there is no pool to size.',
  }),
  arena_size_mb: int(128, 'Size of each allocator arena.', { nodeMeaningless: NO_ARENA }),
  arena_count: int(4, 'Number of allocator arenas.', { nodeMeaningless: NO_ARENA }),
  gc_interval_seconds: int(60, 'Interval of forced garbage collection.', { nodeMeaningless: NO_GC_CONTROL }),
  gc_threshold_mb: int(1024, 'Memory use that triggers garbage collection.', {
    nodeMeaningless: NO_GC_CONTROL,
  }),
});

export const network_optimization = section('Socket options and write batching of client connections.', {
  tcp_nodelay: bool(true, 'Disable Nagle’s algorithm on client sockets (writes are batched by the server).'),
  tcp_quickack: bool(false, 'Acknowledge TCP segments immediately.', {
    nodeMeaningless: 'Node.js exposes no TCP_QUICKACK socket option.',
  }),
  socket_buffer_size: int(
    65536,
    'Stream buffer (highWaterMark) of each connection in bytes; Node.js cannot set the kernel SO_SNDBUF/SO_RCVBUF of TCP sockets.',
    { min: 1024 },
  ),
  connection_pool_size: int(100, 'Pooled outbound connections.', {
    nodeMeaningless:
      'this server opens no pooled outbound connections besides PostgreSQL ([database_pool]) and Redis.',
  }),
  connection_idle_timeout_s: int(
    0,
    'Close client connections that carried no messages this long; 0 never does.',
  ),
  connection_max_age_s: int(
    0,
    'Close client connections older than this so clients rebalance; 0 never does.',
  ),
  enable_batching: bool(true, 'Coalesce outbound frames into fewer socket writes.'),
  batch_size: int(100, 'Most frames coalesced into one socket write.', { min: 1 }),
  batch_timeout_ms: int(
    0,
    'Longest a frame waits for its batch to fill; 0 flushes at the end of the current event-loop turn.',
  ),
});

export const database_pool = section(
  'PostgreSQL connection pool (detailed form of the [database] pool keys).',
  {
    min_connections: int(10, 'Connections kept open; the same setting as [database] pool_size.'),
    max_connections: int(20, 'Most connections opened; the same setting as [database] max_pool_size.', {
      min: 1,
    }),
    connection_timeout_ms: int(
      3000,
      'Time to wait for a connection; the same as [database] connection_timeout_ms.',
      {
        min: 1,
      },
    ),
    idle_timeout_s: int(300, 'Close connections idle this long; the same as [database] idle_timeout_s.'),
    validation_query: str('SELECT 1', 'Query that checks a pooled connection is alive.', { nonEmpty: true }),
    validation_interval_s: int(30, 'How often idle connections are checked; 0 never checks.'),
  },
);

export const logging = section('Structured logs: format, per-module levels and destinations.', {
  format: oneOf(['json', 'text'], 'json', 'json (one object per line) or text (human-readable).'),
  level: oneOf(LOG_LEVELS, 'info', 'Default level of every module.', { docDefault: '[system] log_level' }),
  levels: mapOf('<module>', oneOf(LOG_LEVELS, 'info', 'Level of one module, e.g. levels.network = debug.')),
  console: group({
    enabled: bool(true, 'Write logs to standard output.'),
  }),
  file: group({
    enabled: bool(false, 'Write logs to file.path.'),
    path: str('./logs/messaging.log', 'Path of the log file written when file.enabled = true.', {
      type: 'path',
      nonEmpty: true,
    }),
    rotate_size_mb: int(100, 'Rotate the log file when it reaches this size.', { min: 1 }),
    rotate_count: int(10, 'Rotated files kept.', { min: 1 }),
  }),
  syslog: group({
    enabled: bool(false, 'Send logs to a syslog server.'),
    address: str('localhost:514', 'host:port of the syslog server.', { type: 'host', nonEmpty: true }),
    protocol: oneOf(['udp', 'tcp'], 'udp', 'Transport to the syslog server.'),
  }),
});

export const database_replicas = section(
  'PostgreSQL read replicas; reads go to replicas, writes to master.',
  {
    master: group({
      host: str('localhost', 'Primary database host; the same setting as [database] host.', {
        type: 'host',
        docDefault: '[database] host',
      }),
      port: int(5432, 'Primary database port; the same setting as [database] port.', {
        min: 1,
        max: 65535,
        docDefault: '[database] port',
      }),
    }),
    replicas: indexed('replica', {
      host: str('', 'Host of read replica N.', { type: 'host', required: true }),
      port: int(5432, 'Port of read replica N.', { min: 1, max: 65535, docDefault: '[database] port' }),
      weight: int(1, 'Share of reads replica N receives, relative to the other replicas.', { min: 1 }),
    }),
    read_preference: oneOf(['master', 'replica'], 'master', 'Where reads go when replicas are configured.'),
    failover_to_master: bool(true, 'Send reads to master when no replica is reachable.'),
  },
);

export const database_sharding = section('Spreading durable state over several PostgreSQL databases.', {
  enable: bool(false, 'Shard durable state across the shardN databases.'),
  shard_count: int(1, 'Number of shards; must match the shardN entries.', { min: 1 }),
  shard_key: str('queue', 'What is hashed to choose a shard (e.g. the queue or stream name).', {
    nonEmpty: true,
  }),
  distribution: oneOf(['consistent_hash', 'range'], 'consistent_hash', 'How a key maps to a shard range.'),
  shards: indexed('shard', {
    range: range('Inclusive slice of the 0–100 key space shard N owns.', { required: true }),
    host: str('', 'Database host of shard N.', { type: 'host', required: true }),
    port: int(5432, '(ours) Database port of shard N.', {
      min: 1,
      max: 65535,
      docDefault: '[database] port',
    }),
  }),
});
