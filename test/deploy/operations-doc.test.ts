/**
 * docs/operations.md cannot drift from the code: its configuration reference, environment variables and
 * metrics are what scripts/gen-operations-doc.ts generates from the schema and the metrics registry now.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { CONFIG_KEYS, ENV_VARS } from '../../src/config/index.ts';
import { DOC_PATH, renderOperationsDoc } from '../../scripts/gen-operations-doc.ts';

const doc = readFileSync(DOC_PATH, 'utf8');

test('the committed docs/operations.md equals the generated one', async () => {
  const generated = await renderOperationsDoc(doc);
  assert.ok(
    generated === doc,
    'docs/operations.md is out of date: run node --import tsx scripts/gen-operations-doc.ts',
  );
});

test('every config key and environment variable is documented with type and default', () => {
  for (const key of CONFIG_KEYS) {
    const section = doc.indexOf(`### [${key.section}]`);
    assert.ok(section >= 0, `section [${key.section}]`);
    const row = doc.slice(section).split('\n').find((l) => l.startsWith(`| \`${key.key}\` | ${key.type} |`));
    assert.ok(row, `row for ${key.id}`);
  }
  for (const v of ENV_VARS) assert.ok(doc.includes(`| \`${v.name}\` |`), v.name);
});

test('the runbooks the guide asks for are there', () => {
  for (const heading of [
    '### Service won\'t start',
    '### High memory usage',
    '### Performance issues',
    '### Health checks',
    '## Health and readiness',
    '## Backup and recovery',
  ]) {
    assert.ok(doc.includes(heading), heading);
  }
  assert.match(doc, /--validate-config/);
  assert.match(doc, /messaging_connections_closed_total\{reason="slow_consumer"\}/);
  assert.match(doc, /RPO = the time since the last completed backup/);
});
