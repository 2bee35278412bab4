/**
 * The monitoring files query metrics that exist: every `messaging_*` name in the Prometheus alert rules,
 * the Grafana dashboard and the runbooks of docs/operations.md is served by a live server's /metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChildServer } from '../helpers/child-server.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
/** Names that look like metrics but are the binaries. */
const NOT_METRICS = new Set(['messaging_server', 'messaging_worker']);
const FILES = ['deploy/prometheus/alerts.yml', 'deploy/grafana/messaging-dashboard.json', 'docs/operations.md'];

test('every metric the alerts, the dashboard and the runbooks use is on /metrics', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'messaging-metric-names-'));
  const server = await startChildServer(dir);
  try {
    const text = await (await fetch(`http://127.0.0.1:${server.adminPort}/metrics`)).text();
    const served = new Set<string>();
    for (const line of text.split('\n')) {
      const m = /^# TYPE (\S+) (\w+)/.exec(line);
      if (!m) continue;
      served.add(m[1]!);
      if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) served.add(m[1]! + s);
    }
    for (const file of FILES) {
      const used = new Set(readFileSync(join(ROOT, file), 'utf8').match(/\bmessaging_[a-z_]+[a-z]\b/g) ?? []);
      assert.ok(used.size > 0, file);
      const missing = [...used].filter((name) => !served.has(name) && !NOT_METRICS.has(name));
      assert.deepEqual(missing, [], `${file} uses metrics the server does not serve`);
    }
  } finally {
    await server.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
});
