/**
 * Settings the guide spells twice (a short form in the main file, a detailed form in a tuning section),
 * and defaults computed from other settings. Both names always end up with the same value so that
 * code may read either; the detailed form is the one documented for code to read.
 *
 * Which value wins follows precedence: the copy from the higher layer (flag > environment > file >
 * default) wins, so `MESSAGING_LOG_LEVEL` beats `[logging] level` from the file. When both were set in
 * the same layer and disagree, the detailed form wins and a warning says so.
 */
import type { ConfigProblem } from './problems.ts';
import { resolveKey } from './schema.ts';
import { RANK, type Setting, type Settings } from './settings.ts';

interface Alias {
  readonly short: string;
  readonly detailed: string;
  readonly toDetailed?: (v: unknown) => unknown;
  readonly toShort?: (v: unknown) => unknown;
}

const ALIASES: readonly Alias[] = [
  { short: 'system.log_level', detailed: 'logging.level' },
  { short: 'network.enable_ssl', detailed: 'security.ssl.enabled' },
  { short: 'network.ssl_cert_file', detailed: 'security.ssl.cert_file' },
  { short: 'network.ssl_key_file', detailed: 'security.ssl.key_file' },
  { short: 'security.auth_type', detailed: 'security.auth.type' },
  {
    short: 'security.token_expiry_minutes',
    detailed: 'security.auth.token_expiry',
    toDetailed: (v) => (typeof v === 'number' ? v * 60 : v),
    // Round up: a token must never expire sooner than the seconds-precise setting says.
    toShort: (v) => (typeof v === 'number' ? Math.ceil(v / 60) : v),
  },
  { short: 'security.enable_rate_limiting', detailed: 'security.rate_limit.enabled' },
  { short: 'security.rate_limit_window_s', detailed: 'security.rate_limit.window_seconds' },
  { short: 'security.rate_limit_requests', detailed: 'security.rate_limit.max_requests' },
  { short: 'database.pool_size', detailed: 'database_pool.min_connections' },
  { short: 'database.max_pool_size', detailed: 'database_pool.max_connections' },
  { short: 'database.connection_timeout_ms', detailed: 'database_pool.connection_timeout_ms' },
  { short: 'database.idle_timeout_s', detailed: 'database_pool.idle_timeout_s' },
  { short: 'database.host', detailed: 'database_replicas.master.host' },
  { short: 'database.port', detailed: 'database_replicas.master.port' },
];

/** `to` takes `from`'s value unless `to` was set at the same or a higher precedence. */
const DEFAULTS_FROM: readonly (readonly [from: string, to: string])[] = [
  ['message_bus.worker_threads', 'thread_pool.worker_threads'],
];

function label(s: Setting): string {
  return `[${s.key.section}] ${s.key.key}`;
}

function show(v: unknown): string {
  return Array.isArray(v) ? v.join(', ') : String(v);
}

function reconcile(settings: Settings, alias: Alias, problems: ConfigProblem[]): void {
  const short = settings.get(alias.short);
  const detailed = settings.get(alias.detailed);
  if (!short || !detailed) return;
  const toDetailed = alias.toDetailed ?? ((v: unknown) => v);
  const toShort = alias.toShort ?? ((v: unknown) => v);
  if (short.rank > detailed.rank) {
    settings.copy(short, detailed, toDetailed);
  } else if (detailed.rank > short.rank) {
    settings.copy(detailed, short, toShort);
  } else if (short.rank !== RANK.default && toDetailed(short.value) !== detailed.value) {
    problems.push({
      severity: 'warning',
      ...settings.where(alias.detailed),
      key: alias.detailed,
      message:
        `${label(detailed)} = ${show(detailed.value)} and ${label(short)} = ` +
        `${show(short.value)} are the same setting; using ${label(detailed)}`,
    });
    settings.copy(detailed, short, toShort);
  }
}

/** Persistence and storage are one decision: `storage = memory` is "no persistence". */
function reconcileStorage(settings: Settings, problems: ConfigProblem[]): void {
  const persist = settings.get('message_bus.enable_persistence');
  const storage = settings.get('message_bus.storage');
  if (!persist || !storage) return;
  if (storage.rank === RANK.default) {
    settings.copy(persist, storage, (v) => (v === false ? 'memory' : 'file'));
    return;
  }
  const persistent = storage.value !== 'memory';
  if (persist.rank !== RANK.default && persist.value !== persistent) {
    problems.push({
      severity: 'warning',
      ...settings.where('message_bus.enable_persistence'),
      key: 'message_bus.enable_persistence',
      message: `enable_persistence = ${show(persist.value)} contradicts storage = ${show(storage.value)}; storage wins`,
    });
  }
  settings.copy(storage, persist, () => persistent);
}

/** Replica and shard ports default to [database] port. */
function numberedPorts(settings: Settings): void {
  const dbPort = settings.get('database.port');
  if (!dbPort) return;
  const hosts = [...settings.all()].filter((s) => /^(replica|shard)[1-9]\d*\.host$/.test(s.key.key));
  for (const host of hosts) {
    const key = resolveKey(host.key.section, host.key.key.replace(/\.host$/, '.port'));
    const port = key && settings.get(key.id);
    // A port written for the replica itself is never replaced, not even by DB_PORT (that is the primary's).
    if (!key || (port && port.rank > RANK.default)) continue;
    settings.set({
      key,
      value: dbPort.value,
      rank: dbPort.rank,
      source: { ...dbPort.source, derivedFrom: dbPort.key.id },
      unset: [],
    });
  }
}

export function derive(settings: Settings, problems: ConfigProblem[]): void {
  for (const alias of ALIASES) reconcile(settings, alias, problems);
  for (const [from, to] of DEFAULTS_FROM) {
    const source = settings.get(from);
    const target = settings.get(to);
    if (source && target && target.rank < source.rank) settings.copy(source, target);
  }
  reconcileStorage(settings, problems);
  numberedPorts(settings);
}
