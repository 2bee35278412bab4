// Every INI example of the deployment guide, stored verbatim in test/fixtures/config/, loads without
// errors and gives the values the guide shows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadConfig, type ConfigProblem } from '../../src/config/index.ts';
import { errors, FIXTURES, warnings } from './tmp.ts';

const SECRET_ENV = { JWT_SECRET: 'j'.repeat(48), DB_PASSWORD: 'pg-secret-value' };

function load(name: string, env: Record<string, string> = {}) {
  return loadConfig({ path: join(FIXTURES, name), env });
}

function warnedKeys(problems: readonly ConfigProblem[]): (string | undefined)[] {
  return warnings(problems).map((p) => p.key);
}

test('main config.ini: values of the guide, no errors when its secrets are set', () => {
  const { config, problems } = load('config.ini', SECRET_ENV);
  assert.deepEqual(errors(problems), []);
  assert.equal(config.system.instance_id, 'prod-server-01');
  assert.equal(config.system.datacenter, 'us-east-1');
  assert.equal(config.system.environment, 'production');
  assert.equal(config.network.bind_address, '0.0.0.0');
  assert.equal(config.network.listen_port, 8080);
  assert.equal(config.network.max_connections, 10000);
  assert.equal(config.network.connection_timeout_ms, 5000);
  assert.equal(config.network.keepalive_interval_s, 30);
  assert.equal(config.network.enable_ssl, true);
  assert.equal(config.network.ssl_cert_file, '/etc/messaging/certs/server.crt');
  // The short [network] TLS keys and [security.ssl] are one setting.
  assert.equal(config.security.ssl.enabled, true);
  assert.equal(config.security.ssl.key_file, '/etc/messaging/certs/server.key');
  assert.equal(config.database.host, 'db.internal.example.com');
  assert.equal(config.database.password, 'pg-secret-value');
  assert.equal(config.database.pool_size, 50);
  assert.equal(config.database_pool.max_connections, 100);
  assert.equal(config.message_bus.worker_threads, 16);
  assert.equal(config.message_bus.queue_size, 100000);
  assert.equal(config.message_bus.persistence_path, '/var/lib/messaging/queue');
  assert.equal(config.message_bus.storage, 'file');
  assert.equal(config.message_bus.fsync, 'batch');
  assert.equal(config.thread_pool.worker_threads, 16);
  assert.equal(config.monitoring.metrics_port, 9090);
  assert.equal(config.monitoring.metrics_path, '/metrics');
  assert.equal(config.monitoring.enable_tracing, true);
  assert.equal(config.monitoring.jaeger_endpoint, 'http://jaeger:14268/api/traces');
  assert.equal(config.security.enable_auth, true);
  assert.equal(config.security.jwt_secret, SECRET_ENV.JWT_SECRET);
  assert.equal(config.security.auth.token_expiry, 3600);
  assert.equal(config.security.rate_limit.enabled, true);
  assert.equal(config.security.rate_limit.max_requests, 1000);
  assert.equal(config.clustering.enable, true);
  assert.equal(config.clustering.discovery_method, 'consul');
  assert.equal(config.clustering.consul_endpoint, 'consul.service.consul:8500');
  assert.equal(config.clustering.election_timeout_s, 10);
  assert.ok(
    Object.isFrozen(config) && Object.isFrozen(config.network) && Object.isFrozen(config.security.ssl),
  );
});

test('main config.ini with ${JWT_SECRET} unset: one error, naming the variable, file and line', () => {
  const { problems } = load('config.ini');
  const errs = errors(problems);
  assert.equal(errs.length, 1, JSON.stringify(errs));
  assert.equal(errs[0]!.key, 'security.jwt_secret');
  assert.equal(errs[0]!.line, 47);
  assert.match(errs[0]!.file!, /config\.ini$/);
  assert.match(errs[0]!.message, /JWT_SECRET/);
  // DB_PASSWORD is not needed while storage = file: only a warning.
  const dbWarning = warnings(problems).find((p) => p.key === 'database.password');
  assert.ok(dbWarning);
  assert.equal(dbWarning.line, 24);
  assert.match(dbWarning.message, /DB_PASSWORD/);
});

test('Kubernetes ConfigMap config.ini loads without any problem', () => {
  const { config, problems } = load('k8s_configmap.ini');
  assert.deepEqual(problems, []);
  assert.equal(config.system.environment, 'production');
  assert.equal(config.network.listen_port, 8080);
  assert.equal(config.database.host, 'postgres-service');
  assert.equal(config.database.database, 'messaging');
});

test('[thread_pool]: pools read, CPU affinity warned as meaningless on Node.js', () => {
  const { config, problems } = load('thread_pool.ini');
  assert.deepEqual(errors(problems), []);
  assert.equal(config.thread_pool.worker_threads, 32);
  assert.equal(config.thread_pool.realtime_threads, 4);
  assert.equal(config.thread_pool.batch_threads, 16);
  assert.equal(config.thread_pool.background_threads, 8);
  assert.equal(config.thread_pool.cpu_affinity_mask, '0xFFFFFFFF');
  assert.deepEqual(warnedKeys(problems), [
    'thread_pool.enable_cpu_affinity',
    'thread_pool.cpu_affinity_mask',
  ]);
  assert.deepEqual(
    warnings(problems).map((p) => p.line),
    [11, 12],
  );
  assert.match(warnings(problems)[0]!.message, /Node\.js/);
});

test('[memory]: every key accepted and warned as meaningless', () => {
  const { config, problems } = load('memory.ini');
  assert.deepEqual(errors(problems), []);
  assert.equal(config.memory.arena_size_mb, 128);
  assert.deepEqual(warnedKeys(problems), [
    'memory.message_pool_size',
    'memory.buffer_pool_size',
    'memory.connection_pool_size',
    'memory.arena_size_mb',
    'memory.arena_count',
    'memory.gc_interval_seconds',
    'memory.gc_threshold_mb',
  ]);
  for (const w of warnings(problems)) assert.match(w.message, /has no effect/);
});

test('[network_optimization]: socket and batching values; tcp_quickack warned', () => {
  const { config, problems } = load('network_optimization.ini');
  assert.deepEqual(errors(problems), []);
  const n = config.network_optimization;
  assert.equal(n.tcp_nodelay, true);
  assert.equal(n.socket_buffer_size, 1048576);
  assert.equal(n.connection_idle_timeout_s, 300);
  assert.equal(n.connection_max_age_s, 3600);
  assert.equal(n.enable_batching, true);
  assert.equal(n.batch_size, 100);
  assert.equal(n.batch_timeout_ms, 10);
  assert.deepEqual(warnedKeys(problems), [
    'network_optimization.tcp_quickack',
    'network_optimization.connection_pool_size',
  ]);
});

test('[database_pool]: values, mirrored into the [database] pool keys', () => {
  const { config, problems } = load('database_pool.ini');
  assert.deepEqual(problems, []);
  assert.equal(config.database_pool.min_connections, 10);
  assert.equal(config.database_pool.max_connections, 100);
  assert.equal(config.database_pool.validation_query, 'SELECT 1');
  assert.equal(config.database_pool.validation_interval_s, 30);
  assert.equal(config.database.max_pool_size, 100);
});

test('[logging]: per-module levels and console/file/syslog groups', () => {
  const { config, problems } = load('logging.ini');
  assert.deepEqual(problems, []);
  const l = config.logging;
  assert.equal(l.format, 'json');
  assert.equal(l.level, 'info');
  assert.deepEqual({ ...l.levels }, { network: 'debug', database: 'warn' });
  assert.equal(l.console.enabled, true);
  assert.deepEqual(
    { ...l.file },
    { enabled: true, path: '/var/log/messaging/messaging.log', rotate_size_mb: 100, rotate_count: 10 },
  );
  assert.deepEqual({ ...l.syslog }, { enabled: true, address: 'syslog.example.com:514', protocol: 'tcp' });
});

test('[database_replicas]: master, weighted replicas in order, read preference', () => {
  const { config, problems } = load('database_replicas.ini');
  assert.deepEqual(problems, []);
  const r = config.database_replicas;
  assert.equal(r.master.host, 'db-master.example.com');
  assert.equal(r.master.port, 5432);
  assert.equal(config.database.host, 'db-master.example.com');
  assert.deepEqual(
    r.replicas.map((x) => ({ ...x })),
    [
      { name: 'replica1', index: 1, host: 'db-replica1.example.com', port: 5432, weight: 1 },
      { name: 'replica2', index: 2, host: 'db-replica2.example.com', port: 5432, weight: 1 },
    ],
  );
  assert.equal(r.read_preference, 'replica');
  assert.equal(r.failover_to_master, true);
});

test('[database_sharding]: four shards tiling 0-100', () => {
  const { config, problems } = load('database_sharding.ini');
  assert.deepEqual(problems, []);
  const s = config.database_sharding;
  assert.equal(s.enable, true);
  assert.equal(s.shard_count, 4);
  assert.equal(s.shard_key, 'user_id');
  assert.equal(s.distribution, 'consistent_hash');
  assert.deepEqual(
    s.shards.map((x) => [x.name, x.range, x.host]),
    [
      ['shard1', { from: 0, to: 25 }, 'db-shard1.example.com'],
      ['shard2', { from: 26, to: 50 }, 'db-shard2.example.com'],
      ['shard3', { from: 51, to: 75 }, 'db-shard3.example.com'],
      ['shard4', { from: 76, to: 100 }, 'db-shard4.example.com'],
    ],
  );
});

test('[security.ssl]: TLS 1.3 with client verification; [network] enable_ssl follows', () => {
  const { config, problems } = load('security_ssl.ini');
  assert.deepEqual(problems, []);
  const ssl = config.security.ssl;
  assert.equal(ssl.enabled, true);
  assert.equal(ssl.min_version, 'TLSv1.3');
  assert.equal(ssl.ca_file, '/etc/messaging/certs/ca.crt');
  assert.equal(ssl.verify_client, true);
  assert.equal(ssl.cipher_suites, 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256');
  assert.equal(config.network.enable_ssl, true);
  assert.equal(config.network.ssl_cert_file, '/etc/messaging/certs/server.crt');
});

test('[security.auth]: RS256 key files and expiries', () => {
  const { config, problems } = load('security_auth.ini');
  assert.deepEqual(problems, []);
  const a = config.security.auth;
  assert.equal(a.type, 'jwt');
  assert.equal(a.algorithm, 'RS256');
  assert.equal(a.public_key_file, '/etc/messaging/keys/public.pem');
  assert.equal(a.private_key_file, '/etc/messaging/keys/private.pem');
  assert.equal(a.token_expiry, 3600);
  assert.equal(a.refresh_token_expiry, 86400);
  assert.equal(config.security.token_expiry_minutes, 60);
});

test('[security.rate_limit]: burst and blacklist', () => {
  const { config, problems } = load('security_rate_limit.ini');
  assert.deepEqual(problems, []);
  assert.deepEqual(
    { ...config.security.rate_limit },
    {
      enabled: true,
      window_seconds: 60,
      max_requests: 1000,
      burst_size: 100,
      blacklist_threshold: 10,
      blacklist_duration: 3600,
    },
  );
  assert.equal(config.security.enable_rate_limiting, true);
});

test('[audit]: the multi-line events_to_log array gives its 7 names', () => {
  const { config, problems } = load('audit.ini');
  assert.deepEqual(problems, []);
  assert.equal(config.audit.enabled, true);
  assert.equal(config.audit.log_file, '/var/log/messaging/audit.log');
  assert.equal(config.audit.log_format, 'json');
  assert.deepEqual(config.audit.events_to_log, [
    'authentication',
    'authorization',
    'configuration_change',
    'data_access',
    'data_modification',
    'system_start',
    'system_stop',
  ]);
});

test('[security.encryption]: AES-256-GCM at rest with rotation', () => {
  const { config, problems } = load('security_encryption.ini');
  assert.deepEqual(problems, []);
  assert.deepEqual(
    { ...config.security.encryption },
    {
      data_at_rest: true,
      algorithm: 'AES-256-GCM',
      key_rotation_days: 90,
      key_store: '/etc/messaging/keys/',
    },
  );
});

test('the main file and every fragment loaded together: no errors', () => {
  const fragments = [
    'config.ini',
    'thread_pool.ini',
    'memory.ini',
    'network_optimization.ini',
    'database_pool.ini',
    'logging.ini',
    'database_replicas.ini',
    'database_sharding.ini',
    'security_ssl.ini',
    'security_auth.ini',
    'security_rate_limit.ini',
    'audit.ini',
    'security_encryption.ini',
  ];
  const { config, problems } = loadConfig({ path: fragments.map((f) => join(FIXTURES, f)), env: SECRET_ENV });
  assert.deepEqual(errors(problems), []);
  assert.equal(config.network.listen_port, 8080);
  assert.equal(config.thread_pool.worker_threads, 32);
  assert.equal(config.message_bus.worker_threads, 16);
  assert.equal(config.logging.levels['network'], 'debug');
  assert.equal(config.audit.events_to_log.length, 7);
  assert.deepEqual(
    config.database_replicas.replicas.map((r) => r.weight),
    [1, 1],
  );
});
