/**
 * Environment variables: the overrides named by the deployment guide (plus a few of ours), and `${VAR}`
 * substitution inside config values.
 */

export interface EnvVarSpec {
  readonly name: string;
  /** Settings the variable sets, as `section.key` ids (the same names `overrides` uses). */
  readonly keys: readonly string[];
  readonly description: string;
  /** False for variables that are our additions rather than the guide's. */
  readonly guide: boolean;
}

/**
 * A variable set to the empty string is treated as unset: container tooling often defines every
 * variable of a template, and an empty `MESSAGING_PORT` must not mean "port ''".
 */
export const ENV_VARS: readonly EnvVarSpec[] = [
  { name: 'MESSAGING_INSTANCE_ID', keys: ['system.instance_id'], description: 'Instance name.', guide: true },
  {
    name: 'MESSAGING_ENVIRONMENT',
    keys: ['system.environment'],
    description: 'Environment label.',
    guide: true,
  },
  // [logging] level follows [system] log_level unless set at a higher precedence (see derive.ts).
  { name: 'MESSAGING_LOG_LEVEL', keys: ['system.log_level'], description: 'Default log level.', guide: true },
  { name: 'MESSAGING_PORT', keys: ['network.listen_port'], description: 'Messaging port.', guide: true },
  {
    name: 'MESSAGING_SSL_CERT',
    keys: ['network.ssl_cert_file'],
    description: 'TLS certificate file (also [security.ssl] cert_file).',
    guide: true,
  },
  {
    name: 'MESSAGING_SSL_KEY',
    keys: ['network.ssl_key_file'],
    description: 'TLS private key file (also [security.ssl] key_file).',
    guide: true,
  },
  { name: 'DB_HOST', keys: ['database.host'], description: 'PostgreSQL host.', guide: true },
  { name: 'DB_PORT', keys: ['database.port'], description: 'PostgreSQL port.', guide: true },
  { name: 'DB_NAME', keys: ['database.database'], description: 'PostgreSQL database name.', guide: true },
  { name: 'DB_USER', keys: ['database.username'], description: 'PostgreSQL user.', guide: true },
  { name: 'DB_PASSWORD', keys: ['database.password'], description: 'PostgreSQL password.', guide: true },
  { name: 'JWT_SECRET', keys: ['security.jwt_secret'], description: 'HS256 JWT secret.', guide: true },
  { name: 'API_KEY', keys: ['security.api_key'], description: 'Admin API key.', guide: true },
  {
    name: 'WORKER_THREADS',
    keys: ['message_bus.worker_threads', 'thread_pool.worker_threads'],
    description: 'CPU-bound threads of the server and default concurrency of messaging_worker.',
    guide: true,
  },
  {
    name: 'MAX_CONNECTIONS',
    keys: ['network.max_connections'],
    description: 'Connection limit.',
    guide: true,
  },
  { name: 'QUEUE_SIZE', keys: ['message_bus.queue_size'], description: 'Default queue length.', guide: true },
  { name: 'REDIS_HOST', keys: ['redis.host'], description: 'Redis host (enables Redis).', guide: true },
  { name: 'REDIS_PORT', keys: ['redis.port'], description: 'Redis port.', guide: true },
  {
    name: 'MESSAGING_METRICS_PORT',
    keys: ['monitoring.metrics_port'],
    description: 'Admin port.',
    guide: false,
  },
  {
    name: 'MESSAGING_PERSISTENCE_PATH',
    keys: ['message_bus.persistence_path'],
    description: 'Directory of the embedded file store.',
    guide: false,
  },
  {
    name: 'MESSAGING_STORAGE',
    keys: ['message_bus.storage'],
    description: 'memory | file | postgres.',
    guide: false,
  },
  {
    name: 'MESSAGING_FSYNC',
    keys: ['message_bus.fsync'],
    description: 'always | batch | none.',
    guide: false,
  },
  {
    name: 'MESSAGING_CACHE_MB',
    keys: ['message_bus.cache_mb'],
    description: 'RAM for message bodies in the file engine, in MiB.',
    guide: false,
  },
];

export type Env = Readonly<Record<string, string | undefined>>;

export interface Substituted {
  readonly value: string;
  /** Variables referenced without a default that are not set (they were replaced by ''). */
  readonly unset: readonly string[];
}

const REF_RE = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in a config value; `$${` writes a literal `${`.
 *
 * Rule for an unset variable without a default: it becomes the empty string and is returned in
 * `unset` so the loader reports a WARNING naming the variable, file and line. It is not an error by
 * itself, so `--validate-config` of the guide's example (`password = ${DB_PASSWORD}`) passes when the
 * database is not in use; it becomes an ERROR only where a later check needs the value for an enabled
 * feature (e.g. `jwt_secret` with JWT auth on), and that error names the variable too.
 * Like the shell, `:-` uses the default when the variable is unset or empty. No nesting.
 */
export function substitute(text: string, env: Env): Substituted {
  const unset: string[] = [];
  const value = text.replace(REF_RE, (match: string, name?: string, fallback?: string) => {
    if (match === '$${') return '${';
    const found = name === undefined ? undefined : env[name];
    if (fallback !== undefined) return found === undefined || found === '' ? fallback : found;
    if (found === undefined) {
      if (name !== undefined) unset.push(name);
      return '';
    }
    return found;
  });
  return { value, unset };
}

/** Escapes text so that `substitute` gives it back unchanged (used when printing a config). */
export function escapeSubstitution(text: string): string {
  // A function replacement: in a replacement string `$$` would itself collapse to `$`.
  return text.replaceAll('${', () => '$${');
}
