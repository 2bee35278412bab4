// --print-config output: INI that reads back to the same values, with every secret redacted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { formatConfig, loadConfig, REDACTED } from '../../src/config/index.ts';
import { errors, FIXTURES, writeConfig } from './tmp.ts';

const SECRETS = {
  DB_PASSWORD: 'pg-pass-6f1c2e',
  JWT_SECRET: 'jwt-secret-0123456789abcdef0123456789',
  API_KEY: 'api-key-9d8e7f',
};

test('secrets are redacted and appear nowhere in the output', () => {
  const { config } = loadConfig({ path: join(FIXTURES, 'config.ini'), env: SECRETS });
  assert.equal(config.database.password, SECRETS.DB_PASSWORD);
  const out = formatConfig(config);
  for (const secret of Object.values(SECRETS)) assert.ok(!out.includes(secret), `${secret} leaked`);
  assert.match(out, /^password = \*{8}$/m);
  assert.match(out, /^jwt_secret = \*{8}$/m);
  assert.match(out, /^api_key = \*{8}$/m);
  // Key file paths are not secrets.
  assert.match(out, /^ssl_key_file = \/etc\/messaging\/certs\/server\.key$/m);
  assert.equal(REDACTED, '********');
});

test('an empty secret prints as empty, so an operator can see it is unset', () => {
  const out = formatConfig(loadConfig({ env: {} }).config);
  assert.match(out, /^password =$/m);
});

test('printed config reads back to the same config (secrets aside)', () => {
  const files = ['config.ini', 'logging.ini', 'database_replicas.ini', 'database_sharding.ini', 'audit.ini'];
  const first = loadConfig({ path: files.map((f) => join(FIXTURES, f)), env: SECRETS });
  const printed = formatConfig(first.config);
  const second = loadConfig({ path: writeConfig(printed), env: {} });
  assert.deepEqual(errors(second.problems), []);
  const strip = (c: typeof first.config) => ({
    ...c,
    database: { ...c.database, password: '' },
    security: { ...c.security, jwt_secret: '', api_key: '' },
  });
  assert.deepEqual(strip(second.config), strip(first.config));
  assert.equal(formatConfig(second.config), printed);
});

test('values that need quoting or escaping survive a round trip', () => {
  const { config } = loadConfig({
    env: {},
    overrides: {
      'system.datacenter': 'dc ; with # comment chars',
      'system.environment': '  padded  ',
      'network.bind_address': '[::]',
      'monitoring.jaeger_endpoint': 'http://x/${NOT_A_VAR}',
      'clustering.peers': ['a, b', 'c"d'],
    },
  });
  const again = loadConfig({ path: writeConfig(formatConfig(config)), env: {} }).config;
  assert.equal(again.system.datacenter, 'dc ; with # comment chars');
  assert.equal(again.system.environment, '  padded  ');
  assert.equal(again.network.bind_address, '[::]');
  assert.equal(again.monitoring.jaeger_endpoint, 'http://x/${NOT_A_VAR}');
  assert.deepEqual(again.clustering.peers, ['a, b', 'c"d']);
});

test('sections print in the guide order with nested and patterned keys', () => {
  const out = formatConfig(loadConfig({ path: join(FIXTURES, 'logging.ini'), env: {} }).config);
  const headers = [...out.matchAll(/^\[(.+)\]$/gm)].map((m) => m[1]);
  assert.deepEqual(headers.slice(0, 7), [
    'system',
    'network',
    'database',
    'message_bus',
    'monitoring',
    'security',
    'security.ssl',
  ]);
  assert.match(out, /^levels\.network = debug$/m);
  assert.match(out, /^file\.path = \/var\/log\/messaging\/messaging\.log$/m);
});
