// The schema metadata a docs generator walks: complete for the guide, with descriptions and flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONFIG_KEYS, CONFIG_SECTIONS, ENV_VARS } from '../../src/config/index.ts';
import { readIni } from '../../src/config/ini-reader.ts';
import { resolveId } from '../../src/config/schema.ts';
import { FIXTURES } from './tmp.ts';

/** `replica2.host` → `replica<N>.host`, `levels.network` → `levels.<module>`. */
function generic(key: string): string {
  return key.replace(/^(replica|shard)\d+\./, '$1<N>.').replace(/^levels\..+$/, 'levels.<module>');
}

test('every section and key written in the guide examples is in the metadata', () => {
  const ids = new Set(CONFIG_KEYS.map((k) => k.id));
  const sections = new Set(CONFIG_SECTIONS.map((s) => s.section));
  for (const file of readdirSync(FIXTURES)) {
    const doc = readIni(readFileSync(join(FIXTURES, file), 'utf8'), file);
    for (const s of doc.sections) assert.ok(sections.has(s.name), `[${s.name}] of ${file}`);
    for (const e of doc.entries)
      assert.ok(ids.has(`${e.section}.${generic(e.key)}`), `${e.section}.${e.key}`);
  }
});

test('our documented additions are in the metadata with their defaults', () => {
  const byId = new Map(CONFIG_KEYS.map((k) => [k.id, k]));
  const expected: [string, string][] = [
    ['message_bus.storage', 'file, or memory when enable_persistence = false'],
    ['message_bus.fsync', 'batch'],
    ['message_bus.max_payload_bytes', '1048576'],
    ['network.max_pending_bytes', '8388608'],
    ['network.http_enabled', 'true'],
    ['network.websocket_enabled', 'true'],
    ['network.route_cache_size', '4096'],
    ['security.api_key', ''],
    ['redis.host', ''],
    ['redis.port', '6379'],
  ];
  for (const [id, def] of expected) assert.equal(byId.get(id)?.default, def, id);
  assert.deepEqual(byId.get('message_bus.fsync')?.allowed, ['always', 'batch', 'none']);
  assert.deepEqual(byId.get('network.listen_port')?.env, ['MESSAGING_PORT']);
  assert.equal(byId.get('logging.levels.<module>')?.type, 'enum');
  assert.equal(byId.get('database_replicas.replica<N>.weight')?.default, '1');
});

test('every key has a type, a default text and a one-line description', () => {
  for (const k of CONFIG_KEYS) {
    assert.ok(k.type, k.id);
    assert.equal(typeof k.default, 'string', k.id);
    assert.ok(k.description.length > 10 && !k.description.includes('\n'), k.id);
  }
  for (const s of CONFIG_SECTIONS) assert.ok(s.description, s.section);
});

test('secrets are exactly the passwords, the JWT secret and the API key', () => {
  assert.deepEqual(
    CONFIG_KEYS.filter((k) => k.secret).map((k) => k.id),
    ['database.password', 'security.jwt_secret', 'security.api_key'],
  );
});

test('keys without meaning on Node.js carry their reason', () => {
  const meaningless = CONFIG_KEYS.filter((k) => k.node_meaningless !== undefined).map((k) => k.id);
  for (const id of [
    'memory.arena_size_mb',
    'memory.arena_count',
    'memory.message_pool_size',
    'memory.buffer_pool_size',
    'thread_pool.enable_cpu_affinity',
    'thread_pool.cpu_affinity_mask',
    'network_optimization.tcp_quickack',
  ]) {
    assert.ok(meaningless.includes(id), id);
  }
  assert.ok(!meaningless.includes('network_optimization.tcp_nodelay'));
});

test('every environment variable maps to existing settings', () => {
  for (const v of ENV_VARS) {
    assert.ok(v.keys.length > 0, v.name);
    for (const id of v.keys) assert.ok(resolveId(id), `${v.name} → ${id}`);
  }
});
