// ${VAR} substitution, environment overrides and the precedence chain flag > env > file > default.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { ENV_VARS, loadConfig } from '../../src/config/index.ts';
import { errors, warnings, writeConfig } from './tmp.ts';

test('${VAR} and ${VAR:-default} are replaced from the given environment', () => {
  const path = writeConfig(
    [
      '[database]',
      'host = ${DBH}',
      'username = ${NOPE:-fallback}',
      'database = pre_${DBN:-x}_post',
      'password = ${EMPTY:-used-when-empty}',
      '[system]',
      'datacenter = $${LITERAL}',
    ].join('\n'),
  );
  const { config, problems } = loadConfig({ path, env: { DBH: 'db.example', DBN: 'main', EMPTY: '' } });
  assert.deepEqual(problems, []);
  assert.equal(config.database.host, 'db.example');
  assert.equal(config.database.username, 'fallback');
  assert.equal(config.database.database, 'pre_main_post');
  assert.equal(config.database.password, 'used-when-empty');
  assert.equal(config.system.datacenter, '${LITERAL}');
});

test('an unset ${VAR} without default becomes empty with a warning naming variable, file and line', () => {
  const path = writeConfig('[system]\n\ndatacenter = ${MISSING_DC}\n');
  const { config, problems } = loadConfig({ path, env: {} });
  assert.equal(config.system.datacenter, '');
  assert.deepEqual(errors(problems), []);
  const [w] = warnings(problems);
  assert.equal(w!.file, path);
  assert.equal(w!.line, 3);
  assert.equal(w!.key, 'system.datacenter');
  assert.match(w!.message, /MISSING_DC/);
});

test('an unset ${VAR} is an error when an enabled feature needs the value', () => {
  const path = writeConfig('[security]\nenable_auth = true\nauth_type = api_key\napi_key = ${ADMIN_KEY}\n');
  const { problems } = loadConfig({ path, env: {} });
  const errs = errors(problems);
  assert.equal(errs.length, 1);
  assert.equal(errs[0]!.line, 4);
  assert.match(errs[0]!.message, /ADMIN_KEY/);
});

test('substitution works inside multi-line array elements', () => {
  const path = writeConfig('[clustering]\npeers = [\n  "${P1}:8080",\n  "b:8080"\n]\n');
  const { config } = loadConfig({ path, env: { P1: 'a' } });
  assert.deepEqual(config.clustering.peers, ['a:8080', 'b:8080']);
});

test('every environment variable of the guide sets its key', () => {
  const env = {
    MESSAGING_INSTANCE_ID: 'prod-01',
    MESSAGING_ENVIRONMENT: 'production',
    MESSAGING_LOG_LEVEL: 'warn',
    MESSAGING_PORT: '18080',
    MESSAGING_SSL_CERT: '/c.crt',
    MESSAGING_SSL_KEY: '/c.key',
    DB_HOST: 'pg',
    DB_PORT: '6543',
    DB_NAME: 'mdb',
    DB_USER: 'mu',
    DB_PASSWORD: 'mp',
    JWT_SECRET: 'js',
    API_KEY: 'ak',
    WORKER_THREADS: '8',
    MAX_CONNECTIONS: '500',
    QUEUE_SIZE: '777',
    REDIS_HOST: 'redis',
    REDIS_PORT: '6380',
    MESSAGING_METRICS_PORT: '19090',
    MESSAGING_PERSISTENCE_PATH: '/tmp/q',
    MESSAGING_STORAGE: 'postgres',
    MESSAGING_FSYNC: 'always',
    MESSAGING_CACHE_MB: '12',
  };
  const { config, problems } = loadConfig({ env });
  assert.deepEqual(errors(problems), []);
  assert.equal(config.system.instance_id, 'prod-01');
  assert.equal(config.system.environment, 'production');
  assert.equal(config.system.log_level, 'warn');
  assert.equal(config.logging.level, 'warn');
  assert.equal(config.network.listen_port, 18080);
  assert.equal(config.network.ssl_cert_file, '/c.crt');
  assert.equal(config.security.ssl.cert_file, '/c.crt');
  assert.equal(config.security.ssl.key_file, '/c.key');
  assert.deepEqual(
    [config.database.host, config.database.port, config.database.database, config.database.username],
    ['pg', 6543, 'mdb', 'mu'],
  );
  assert.equal(config.database.password, 'mp');
  assert.equal(config.security.jwt_secret, 'js');
  assert.equal(config.security.api_key, 'ak');
  assert.equal(config.message_bus.worker_threads, 8);
  assert.equal(config.thread_pool.worker_threads, 8);
  assert.equal(config.network.max_connections, 500);
  assert.equal(config.message_bus.queue_size, 777);
  assert.equal(config.redis.host, 'redis');
  assert.equal(config.redis.port, 6380);
  assert.equal(config.monitoring.metrics_port, 19090);
  assert.equal(config.message_bus.persistence_path, '/tmp/q');
  assert.equal(config.message_bus.storage, 'postgres');
  assert.equal(config.message_bus.fsync, 'always');
  assert.equal(config.message_bus.cache_mb, 12);
  // The test covers the whole table.
  assert.deepEqual(Object.keys(env).sort(), ENV_VARS.map((v) => v.name).sort());
});

test('empty environment variables are ignored; bad ones are errors naming the variable', () => {
  const { config, problems } = loadConfig({ env: { MESSAGING_PORT: '', MAX_CONNECTIONS: 'lots' } });
  assert.equal(config.network.listen_port, 8080);
  const [e] = errors(problems);
  assert.equal(e!.key, 'network.max_connections');
  assert.match(e!.message, /MAX_CONNECTIONS/);
  assert.match(e!.message, /whole number/);
});

test('precedence: flag > environment > file > default', () => {
  const path = writeConfig(
    '[network]\nlisten_port = 1111\nmax_connections = 50\n[system]\nlog_level = debug\n',
  );
  const env = { MESSAGING_PORT: '2222', MAX_CONNECTIONS: '60' };
  const fileOnly = loadConfig({ path, env: {} }).config;
  assert.equal(fileOnly.network.listen_port, 1111);
  assert.equal(fileOnly.network.keepalive_interval_s, 30); // default
  const withEnv = loadConfig({ path, env });
  assert.equal(withEnv.config.network.listen_port, 2222);
  assert.equal(withEnv.config.network.max_connections, 60);
  assert.equal(withEnv.sources.get('network.listen_port')?.env, 'MESSAGING_PORT');
  const withFlag = loadConfig({
    path,
    env,
    overrides: {
      'network.listen_port': 0,
      'system.log_level': 'error',
      'network.max_connections': undefined,
    },
  });
  assert.deepEqual(errors(withFlag.problems), []);
  assert.equal(withFlag.config.network.listen_port, 0);
  assert.equal(withFlag.config.network.max_connections, 60);
  assert.equal(withFlag.config.system.log_level, 'error');
  assert.equal(withFlag.config.logging.level, 'error');
  assert.equal(withFlag.sources.get('network.listen_port')?.layer, 'override');
});

test('a detailed-section key in the file still loses to the environment variable of its short form', () => {
  const path = writeConfig('[logging]\nlevel = info\n');
  const { config, problems } = loadConfig({ path, env: { MESSAGING_LOG_LEVEL: 'debug' } });
  assert.deepEqual(problems, []);
  assert.equal(config.logging.level, 'debug');
});

test('both forms of one setting in the file: the detailed one wins, with a warning', () => {
  const path = writeConfig('[system]\nlog_level = info\n\n[logging]\nlevel = debug\n');
  const { config, problems } = loadConfig({ path, env: {} });
  assert.equal(config.logging.level, 'debug');
  assert.equal(config.system.log_level, 'debug');
  const [w] = warnings(problems);
  assert.equal(w!.line, 5);
  assert.match(w!.message, /same setting/);
});

test('overrides take typed values and dotted ids of nested sections and patterned keys', () => {
  const { config, problems } = loadConfig({
    env: {},
    overrides: {
      'security.ssl.min_version': 'tlsv1.2',
      'logging.levels.storage': 'trace',
      'database_replicas.replica3.host': 'r3',
      'clustering.peers': ['a:1', 'b:2'],
      'network.http_enabled': false,
    },
  });
  assert.deepEqual(errors(problems), []);
  assert.equal(config.security.ssl.min_version, 'TLSv1.2');
  assert.equal(config.logging.levels['storage'], 'trace');
  assert.equal(config.database_replicas.replicas[0]?.host, 'r3');
  assert.equal(config.database_replicas.replicas[0]?.name, 'replica3');
  assert.deepEqual(config.clustering.peers, ['a:1', 'b:2']);
  assert.equal(config.network.http_enabled, false);
});

test('defaults of a single-node embedded server', () => {
  const { config, problems } = loadConfig({ env: {} });
  assert.deepEqual(problems, []);
  assert.equal(config.system.instance_id, hostname());
  assert.equal(config.system.log_level, 'info');
  assert.equal(config.network.bind_address, '0.0.0.0');
  assert.equal(config.network.listen_port, 8080);
  assert.equal(config.network.max_connections, 10000);
  assert.equal(config.network.connection_timeout_ms, 5000);
  assert.equal(config.network.keepalive_interval_s, 30);
  assert.equal(config.network.enable_ssl, false);
  assert.equal(config.network.max_pending_bytes, 8 * 1024 * 1024);
  assert.equal(config.network.http_enabled, true);
  assert.equal(config.network.websocket_enabled, true);
  assert.equal(config.network.route_cache_size, 4096);
  assert.equal(config.monitoring.metrics_port, 9090);
  assert.equal(config.monitoring.metrics_path, '/metrics');
  assert.equal(config.monitoring.enable_tracing, false);
  assert.equal(config.message_bus.persistence_path, './data');
  assert.equal(config.message_bus.storage, 'file');
  assert.equal(config.message_bus.fsync, 'batch');
  assert.equal(config.message_bus.max_payload_bytes, 1048576);
  assert.equal(config.security.enable_auth, false);
  assert.equal(config.security.ssl.enabled, false);
  assert.equal(config.security.rate_limit.enabled, false);
  assert.equal(config.security.encryption.data_at_rest, false);
  assert.equal(config.audit.enabled, false);
  assert.equal(config.clustering.enable, false);
  assert.equal(config.redis.host, '');
});

test('enable_persistence = false makes the default storage memory', () => {
  const path = writeConfig('[message_bus]\nenable_persistence = false\n');
  assert.equal(loadConfig({ path, env: {} }).config.message_bus.storage, 'memory');
  const both = writeConfig('[message_bus]\nenable_persistence = false\nstorage = postgres\n');
  const r = loadConfig({ path: both, env: {} });
  assert.equal(r.config.message_bus.storage, 'postgres');
  assert.equal(r.config.message_bus.enable_persistence, true);
  assert.equal(warnings(r.problems).length, 1);
});
