/**
 * Sections of the deployment guide's main config.ini ([system] … [clustering]) plus the [security.*]
 * detail sections, [audit] and our [redis]. Keys the guide does not name are marked "(ours)" in their
 * description so the generated docs show which names are extensions.
 */
import { availableParallelism, hostname } from 'node:os';
import { bool, int, list, oneOf, section, str } from './define.ts';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export const AUDIT_EVENTS = [
  'authentication',
  'authorization',
  'configuration_change',
  'data_access',
  'data_modification',
  'system_start',
  'system_stop',
] as const;

const PORT = { min: 0, max: 65535 } as const;
const MIB = 1024 * 1024;

export const system = section('Identity of this server and its default log level.', {
  instance_id: str(hostname(), 'Unique name of this server, used in logs, metrics and cluster membership.', {
    docDefault: 'the host name',
  }),
  datacenter: str('', 'Datacenter or region label attached to logs and metrics.'),
  environment: str('development', 'Deployment environment label (development, staging, production, …).'),
  log_level: oneOf(LOG_LEVELS, 'info', 'Default log level; [logging] level, when set, takes precedence.'),
});

export const network = section('The messaging listener: native protocol, HTTP and WebSocket on one port.', {
  bind_address: str('0.0.0.0', 'Address the messaging and admin listeners bind to.', {
    type: 'host',
    nonEmpty: true,
  }),
  listen_port: int(8080, 'TCP port for the native protocol, HTTP and WebSocket; 0 picks a free port.', PORT),
  max_connections: int(
    10000,
    'Simultaneous client connections; more are refused with TOO_MANY_CONNECTIONS.',
    {
      min: 1,
    },
  ),
  connection_timeout_ms: int(5000, 'Time a new connection has to complete its handshake.', { min: 1 }),
  keepalive_interval_s: int(30, 'Heartbeat (PING) interval on quiet connections; 0 disables heartbeats.'),
  enable_ssl: bool(false, 'Serve TLS on listen_port; the same setting as [security.ssl] enabled.'),
  ssl_cert_file: str('', 'PEM certificate chain for TLS; the same setting as [security.ssl] cert_file.', {
    type: 'path',
  }),
  ssl_key_file: str('', 'PEM private key for TLS; the same setting as [security.ssl] key_file.', {
    type: 'path',
  }),
  max_pending_bytes: int(
    8 * MIB,
    '(ours) Cap on one connection’s unsent outbound bytes; a client that falls further behind is cut off as a slow consumer.',
    { min: 1024 },
  ),
  http_enabled: bool(true, '(ours) Accept HTTP requests (the REST API) on listen_port.'),
  websocket_enabled: bool(true, '(ours) Accept WebSocket connections on listen_port.'),
  route_cache_size: int(4096, '(ours) Entries in the topic-match cache of the router; 0 disables the cache.'),
});

export const database = section('PostgreSQL connection, used when [message_bus] storage = postgres.', {
  host: str('localhost', 'PostgreSQL host.', { type: 'host' }),
  port: int(5432, 'PostgreSQL port.', { min: 1, max: 65535 }),
  database: str('messaging', 'Database name.'),
  username: str('messaging', 'Database user.'),
  password: str('', 'Database password.', { secret: true }),
  pool_size: int(10, 'Connections kept open; the same setting as [database_pool] min_connections.'),
  max_pool_size: int(20, 'Most connections opened; the same setting as [database_pool] max_connections.', {
    min: 1,
  }),
  connection_timeout_ms: int(3000, 'Time to wait for a database connection; the same as [database_pool].', {
    min: 1,
  }),
  idle_timeout_s: int(300, 'Close pooled connections idle this long; the same setting as [database_pool].'),
});

export const message_bus = section('Queues, storage and durability.', {
  worker_threads: int(
    availableParallelism(),
    'Threads for CPU-bound work, and the default concurrency of messaging_worker ([thread_pool] worker_threads).',
    { min: 1, max: 1024, docDefault: 'the number of CPUs' },
  ),
  queue_size: int(
    100000,
    'Default maximum number of messages in one queue before its overflow policy applies.',
    {
      min: 1,
    },
  ),
  batch_size: int(100, 'Most messages dispatched or written to storage in one batch.', { min: 1 }),
  enable_persistence: bool(
    true,
    'Keep durable queues and streams in storage; false keeps them in memory only.',
  ),
  persistence_path: str('./data', 'Directory of the embedded file store.', { type: 'path' }),
  storage: oneOf(
    ['memory', 'file', 'postgres'],
    'file',
    '(ours) Storage backend for queues, streams and tasks.',
    {
      docDefault: 'file, or memory when enable_persistence = false',
    },
  ),
  fsync: oneOf(
    ['always', 'batch', 'none'],
    'batch',
    '(ours) When confirmed writes reach the disk: always (every write), batch (group commit), none (left to the OS).',
  ),
  max_payload_bytes: int(1 * MIB, '(ours) Largest message payload accepted, in bytes.', {
    min: 1,
    max: 256 * MIB,
  }),
  cache_mb: int(
    64,
    '(ours) RAM for message bodies in the file engine, in MiB: the head of every backlog is served from memory, the rest is read back from disk when its turn comes.',
    { min: 1, max: 1024 * 1024 },
  ),
});

export const monitoring = section('The admin port: health, readiness, metrics, admin API and tracing.', {
  enable: bool(true, 'Serve /health, /ready, /metrics, the admin API and the dashboard on metrics_port.'),
  metrics_port: int(9090, 'Port of the admin listener; 0 picks a free port.', PORT),
  metrics_path: str('/metrics', 'Path of the Prometheus metrics endpoint.', { nonEmpty: true }),
  enable_tracing: bool(
    false,
    'Record OpenTelemetry traces of publish → route → deliver → handle and task submit → run.',
  ),
  jaeger_endpoint: str(
    '',
    'Jaeger collector endpoint traces are exported to, e.g. http://jaeger:14268/api/traces.',
    {
      type: 'url',
    },
  ),
});

const ssl = section('TLS on the messaging port (detailed form of [network] enable_ssl).', {
  enabled: bool(false, 'Serve TLS; the same setting as [network] enable_ssl.'),
  min_version: oneOf(['TLSv1.2', 'TLSv1.3'], 'TLSv1.3', 'Oldest TLS version accepted.'),
  cert_file: str('', 'PEM certificate chain; the same setting as [network] ssl_cert_file.', { type: 'path' }),
  key_file: str('', 'PEM private key; the same setting as [network] ssl_key_file.', { type: 'path' }),
  ca_file: str('', 'PEM CA bundle that client certificates must chain to.', { type: 'path' }),
  verify_client: bool(false, 'Require and verify a client certificate (mutual TLS).'),
  cipher_suites: str('', 'Colon-separated OpenSSL cipher suites; empty uses Node.js defaults.'),
});

const auth = section('Client authentication (detailed form of [security] auth_type).', {
  type: oneOf(
    ['jwt', 'api_key'],
    'jwt',
    'How clients authenticate; the same setting as [security] auth_type.',
  ),
  algorithm: oneOf(
    ['HS256', 'RS256'],
    'HS256',
    'JWT signature algorithm: HS256 uses jwt_secret, RS256 key files.',
  ),
  public_key_file: str('', 'PEM public key that verifies RS256 tokens.', { type: 'path' }),
  private_key_file: str('', 'PEM private key that signs RS256 tokens issued by this server.', {
    type: 'path',
  }),
  token_expiry: int(
    3600,
    'Lifetime of issued tokens in seconds; from [security] token_expiry_minutes if unset.',
    {
      min: 1,
    },
  ),
  refresh_token_expiry: int(86400, 'Lifetime of refresh tokens in seconds.', { min: 1 }),
  audience: str(
    '',
    '(ours) Required "aud" claim of client tokens, and the audience of tokens this server issues; empty accepts any.',
  ),
  issuer: str(
    '',
    '(ours) Required "iss" claim of client tokens, and the issuer of tokens this server issues; empty accepts any.',
  ),
});

const rate_limit = section('Per-client rate limits (detailed form of [security] enable_rate_limiting).', {
  enabled: bool(false, 'Limit requests per client; the same setting as [security] enable_rate_limiting.'),
  window_seconds: int(60, 'Length of the rate-limit window; the same as [security] rate_limit_window_s.', {
    min: 1,
  }),
  max_requests: int(1000, 'Requests allowed per window; the same as [security] rate_limit_requests.', {
    min: 1,
  }),
  burst_size: int(100, 'Extra requests allowed in a short burst above the steady rate.'),
  blacklist_threshold: int(10, 'Limit violations after which a client is blacklisted; 0 never blacklists.'),
  blacklist_duration: int(3600, 'Seconds a blacklisted client stays refused.', { min: 1 }),
});

const encryption = section('Encryption of stored payloads.', {
  data_at_rest: bool(false, 'Encrypt message payloads before they are stored.'),
  algorithm: oneOf(['AES-256-GCM'], 'AES-256-GCM', 'Cipher for stored payloads.'),
  key_rotation_days: int(90, 'Days after which a new key id is used for new data; 0 never rotates.'),
  key_store: str('', 'Directory holding the encryption keys, one file per key id.', { type: 'path' }),
});

export const security = section('Authentication, secrets and rate limiting.', {
  enable_auth: bool(false, 'Require clients to authenticate in the handshake.'),
  auth_type: oneOf(
    ['jwt', 'api_key'],
    'jwt',
    'How clients authenticate; the same setting as [security.auth] type.',
  ),
  jwt_secret: str('', 'Shared secret for HS256 JWTs.', { secret: true }),
  token_expiry_minutes: int(
    60,
    'Lifetime of issued tokens in minutes ([security.auth] token_expiry is seconds).',
    {
      min: 1,
    },
  ),
  enable_rate_limiting: bool(false, 'Limit requests per client; the same as [security.rate_limit] enabled.'),
  rate_limit_window_s: int(60, 'Rate-limit window; the same as [security.rate_limit] window_seconds.', {
    min: 1,
  }),
  rate_limit_requests: int(1000, 'Requests per window; the same as [security.rate_limit] max_requests.', {
    min: 1,
  }),
  api_key: str('', '(ours) API key for the admin API, and for clients when auth_type = api_key.', {
    secret: true,
  }),
  ssl,
  auth,
  rate_limit,
  encryption,
});

export const clustering = section('Several servers sharing one store; one leader runs schedulers.', {
  enable: bool(false, 'Join a cluster of servers.'),
  cluster_name: str('messaging', 'Name shared by the nodes of one cluster.', { nonEmpty: true }),
  discovery_method: oneOf(
    ['static', 'dns', 'consul', 'database'],
    'static',
    'How nodes find each other: a static peer list, DNS records, Consul, or the shared database.',
  ),
  consul_endpoint: str('', 'host:port of the Consul HTTP API, for discovery_method = consul.', {
    type: 'host',
  }),
  heartbeat_interval_s: int(5, 'How often each node reports that it is alive.', { min: 1 }),
  election_timeout_s: int(10, 'A node silent this long is considered dead and loses leadership.', { min: 1 }),
  peers: list([], '(ours) host:port of the other nodes, for discovery_method = static.'),
  dns_name: str('', '(ours) DNS name whose records list the nodes, for discovery_method = dns.', {
    type: 'host',
  }),
});

export const redis = section('(ours) Redis for cross-node fan-out and the result cache.', {
  host: str('', 'Redis host; empty disables Redis.', { type: 'host' }),
  port: int(6379, 'Redis port.', { min: 1, max: 65535 }),
});

export const audit = section('Append-only audit log.', {
  enabled: bool(false, 'Record audit events.'),
  log_file: str('', 'Audit log file (JSON lines, append-only); empty writes audit records to the main log.', {
    type: 'path',
  }),
  log_format: oneOf(['json', 'text'], 'json', 'Format of audit records.'),
  log_level: oneOf(LOG_LEVELS, 'info', 'Level audit records are written at.'),
  events_to_log: list(AUDIT_EVENTS, 'Audit events to record.', { values: AUDIT_EVENTS }),
});
