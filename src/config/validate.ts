/**
 * Checks that span several keys: a feature that is switched on must have what it needs. These are the
 * only places an empty value is an error, which is how an unset `${VAR}` becomes an error only when the
 * enabled features need it (see env.ts).
 */
import type { ConfigProblem } from './problems.ts';
import { SECTIONS, type ServerConfig } from './schema.ts';
import type { Settings } from './settings.ts';

class Checker {
  constructor(
    private readonly settings: Settings,
    readonly problems: ConfigProblem[],
  ) {}

  report(severity: ConfigProblem['severity'], ids: readonly string[], message: string): void {
    // Point at the first of the involved keys that was written somewhere, else at the first key.
    const id = ids.find((i) => this.settings.where(i).file !== undefined) ?? ids[0];
    this.problems.push({
      severity,
      ...(id !== undefined ? this.settings.where(id) : {}),
      ...(id !== undefined ? { key: id } : {}),
      message,
    });
  }

  error(ids: readonly string[], message: string): void {
    this.report('error', ids, message);
  }

  warn(ids: readonly string[], message: string): void {
    this.report('warning', ids, message);
  }

  /** "(${JWT_SECRET} is not set)" when the value is empty because of an unset variable. */
  unsetNote(id: string): string {
    const unset = this.settings.get(id)?.unset ?? [];
    return unset.length ? ` (\${${unset.join('}, ${')}} ${unset.length === 1 ? 'is' : 'are'} not set)` : '';
  }
}

function checkTls(c: Checker, cfg: ServerConfig): void {
  const ssl = cfg.security.ssl;
  if (!ssl.enabled) return;
  if (ssl.cert_file === '') {
    c.error(
      ['security.ssl.cert_file', 'network.ssl_cert_file', 'network.enable_ssl', 'security.ssl.enabled'],
      `TLS is enabled but no certificate is set${c.unsetNote('network.ssl_cert_file')}: set [network] ssl_cert_file, [security.ssl] cert_file or MESSAGING_SSL_CERT`,
    );
  }
  if (ssl.key_file === '') {
    c.error(
      ['security.ssl.key_file', 'network.ssl_key_file', 'network.enable_ssl', 'security.ssl.enabled'],
      `TLS is enabled but no private key is set${c.unsetNote('network.ssl_key_file')}: set [network] ssl_key_file, [security.ssl] key_file or MESSAGING_SSL_KEY`,
    );
  }
  if (ssl.verify_client && ssl.ca_file === '') {
    c.error(
      ['security.ssl.ca_file', 'security.ssl.verify_client'],
      'verify_client = true needs [security.ssl] ca_file, the CA that client certificates must chain to',
    );
  }
}

function checkAuth(c: Checker, cfg: ServerConfig): void {
  const sec = cfg.security;
  if (!sec.enable_auth) return;
  if (sec.auth.type === 'api_key') {
    if (sec.api_key === '') {
      c.error(
        ['security.api_key', 'security.enable_auth'],
        `authentication is enabled with auth_type = api_key but no API key is set${c.unsetNote('security.api_key')}: set API_KEY or [security] api_key`,
      );
    }
    return;
  }
  if (sec.auth.algorithm === 'HS256') {
    if (sec.jwt_secret === '') {
      c.error(
        ['security.jwt_secret', 'security.enable_auth'],
        `jwt_secret is empty${c.unsetNote('security.jwt_secret')} but authentication is enabled with HS256 JWTs: set JWT_SECRET or [security] jwt_secret`,
      );
    } else if (Buffer.byteLength(sec.jwt_secret) < 32) {
      // RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits).
      c.warn(
        ['security.jwt_secret'],
        'jwt_secret is shorter than 32 bytes, too short for HS256 (RFC 7518 §3.2)',
      );
    }
  } else if (sec.auth.public_key_file === '') {
    c.error(
      ['security.auth.public_key_file', 'security.auth.algorithm'],
      `${sec.auth.algorithm} tokens need [security.auth] public_key_file to be verified`,
    );
  }
}

function checkPorts(c: Checker, cfg: ServerConfig): void {
  const mon = cfg.monitoring;
  if (!mon.metrics_path.startsWith('/')) {
    c.error(['monitoring.metrics_path'], `metrics_path must start with '/', got '${mon.metrics_path}'`);
  }
  if (mon.enable && mon.metrics_port !== 0 && mon.metrics_port === cfg.network.listen_port) {
    c.error(
      ['monitoring.metrics_port', 'network.listen_port'],
      `metrics_port and listen_port are both ${mon.metrics_port}; the admin and messaging listeners need different ports`,
    );
  }
  if (mon.enable_tracing && mon.jaeger_endpoint === '') {
    c.warn(
      ['monitoring.enable_tracing'],
      'enable_tracing = true but jaeger_endpoint is empty; traces will not be exported',
    );
  }
}

function checkStorage(c: Checker, cfg: ServerConfig): void {
  const bus = cfg.message_bus;
  if (bus.storage === 'file' && bus.persistence_path.trim() === '') {
    c.error(
      ['message_bus.persistence_path', 'message_bus.storage'],
      `storage = file needs persistence_path${c.unsetNote('message_bus.persistence_path')}`,
    );
  }
  if (bus.storage === 'postgres') {
    const db = cfg.database;
    if (db.host.trim() === '') {
      c.error(
        ['database.host', 'message_bus.storage'],
        `storage = postgres needs a database host${c.unsetNote('database.host')}: set DB_HOST or [database] host`,
      );
    }
    if (db.database.trim() === '') {
      c.error(
        ['database.database', 'message_bus.storage'],
        `storage = postgres needs a database name${c.unsetNote('database.database')}: set DB_NAME or [database] database`,
      );
    }
  }
  const pool = cfg.database_pool;
  if (pool.min_connections > pool.max_connections) {
    c.error(
      ['database_pool.min_connections', 'database.pool_size'],
      `min_connections (${pool.min_connections}) is more than max_connections (${pool.max_connections})`,
    );
  }
  const enc = cfg.security.encryption;
  if (enc.data_at_rest && enc.key_store === '') {
    c.error(
      ['security.encryption.key_store', 'security.encryption.data_at_rest'],
      'data_at_rest = true needs key_store, the directory that holds the encryption keys',
    );
  }
  const rep = cfg.database_replicas;
  if (rep.read_preference === 'replica' && rep.replicas.length === 0) {
    c.warn(
      ['database_replicas.read_preference'],
      'read_preference = replica but no replicaN.host is configured; reads go to master',
    );
  }
}

function checkCluster(c: Checker, cfg: ServerConfig): void {
  const cl = cfg.clustering;
  if (!cl.enable) return;
  if (cl.heartbeat_interval_s >= cl.election_timeout_s) {
    c.error(
      ['clustering.heartbeat_interval_s', 'clustering.election_timeout_s'],
      `heartbeat_interval_s (${cl.heartbeat_interval_s}) must be shorter than election_timeout_s (${cl.election_timeout_s}), or live nodes are declared dead`,
    );
  }
  if (cl.discovery_method === 'consul' && cl.consul_endpoint === '') {
    c.error(
      ['clustering.consul_endpoint', 'clustering.discovery_method'],
      'discovery_method = consul needs consul_endpoint',
    );
  }
  if (cl.discovery_method === 'dns' && cl.dns_name === '') {
    c.error(['clustering.dns_name', 'clustering.discovery_method'], 'discovery_method = dns needs dns_name');
  }
  if (cl.discovery_method === 'static' && cl.peers.length === 0) {
    c.warn(
      ['clustering.peers', 'clustering.enable'],
      'discovery_method = static with no peers; this node will only see itself',
    );
  }
  if (cfg.message_bus.storage !== 'postgres') {
    const sev = cl.discovery_method === 'database' ? 'error' : 'warning';
    c.report(
      sev,
      ['clustering.enable', 'message_bus.storage'],
      `clustering is enabled with storage = ${cfg.message_bus.storage}: ` +
        (sev === 'error'
          ? 'discovery_method = database needs storage = postgres'
          : 'each node keeps its own queues; set [message_bus] storage = postgres to share durable state'),
    );
  }
  if (cfg.redis.host === '') {
    c.warn(
      ['clustering.enable'],
      'clustering is enabled without Redis (REDIS_HOST); pub/sub messages will not reach other nodes',
    );
  }
}

/** replicaN / shardN items must have their required keys; shards must tile the key space. */
function checkNumbered(c: Checker, cfg: ServerConfig, settings: Settings): void {
  for (const info of SECTIONS) {
    for (const [list, member] of Object.entries(info.def.members)) {
      if (member.kind !== 'indexed') continue;
      const items = new Map<number, Set<string>>();
      for (const s of settings.all()) {
        const seg = s.key.target.find((t) => typeof t !== 'string' && t.list === list);
        if (s.key.section !== info.name || seg === undefined || typeof seg === 'string') continue;
        const keys = items.get(seg.index) ?? new Set<string>();
        keys.add(s.key.key.split('.')[1] ?? '');
        items.set(seg.index, keys);
      }
      for (const [index, keys] of items) {
        for (const [sub, def] of Object.entries(member.members)) {
          if (def.kind === 'key' && def.required && !keys.has(sub)) {
            const name = `${member.prefix}${index}`;
            const any = [...keys][0] ?? '';
            c.error(
              [`${info.name}.${name}.${any}`],
              `${name} has no ${sub}: set ${name}.${sub} in [${info.name}]`,
            );
          }
        }
      }
    }
  }
  const sh = cfg.database_sharding;
  if (!sh.enable) return;
  if (sh.shards.length !== sh.shard_count) {
    c.error(
      ['database_sharding.shard_count', 'database_sharding.enable'],
      `shard_count = ${sh.shard_count} but ${sh.shards.length} shardN entries are configured`,
    );
  }
  const ranges = sh.shards.flatMap((s) => (s.range ? [{ name: s.name, ...s.range }] : []));
  ranges.sort((a, b) => a.from - b.from);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1];
    const cur = ranges[i];
    if (!prev || !cur) continue;
    if (cur.from <= prev.to) {
      c.error(
        [`database_sharding.${cur.name}.range`],
        `${cur.name}.range ${cur.from}-${cur.to} overlaps ${prev.name}.range ${prev.from}-${prev.to}`,
      );
    } else if (cur.from > prev.to + 1) {
      c.error(
        [`database_sharding.${cur.name}.range`],
        `keys ${prev.to + 1}-${cur.from - 1} belong to no shard (between ${prev.name} and ${cur.name})`,
      );
    }
  }
}

export function validate(cfg: ServerConfig, settings: Settings, problems: ConfigProblem[]): void {
  const c = new Checker(settings, problems);
  checkTls(c, cfg);
  checkAuth(c, cfg);
  checkPorts(c, cfg);
  checkStorage(c, cfg);
  checkCluster(c, cfg);
  checkNumbered(c, cfg, settings);
}
