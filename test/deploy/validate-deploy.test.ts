/**
 * scripts/validate-deploy.sh passes: every deployment file is accepted by the tool that reads it. Where a
 * tool is missing outside CI the script reports a skip naming the package, and so does this test; in CI
 * (CI=true) a missing tool is a failure. scripts/validate-k8s.ts is also shown to catch what it claims.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateK8s } from '../../scripts/validate-k8s.ts';

const ROOT = new URL('../../', import.meta.url).pathname;

test('scripts/validate-deploy.sh: every validator accepts every deployment file', (t) => {
  const r = spawnSync('bash', [join(ROOT, 'scripts/validate-deploy.sh')], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  const lines = r.stdout.split('\n');
  for (const line of lines.filter((l) => l.startsWith('skip'))) t.diagnostic(line);
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.deepEqual(
    lines.filter((l) => l.startsWith('FAIL')),
    [],
  );
  assert.ok(lines.filter((l) => l.startsWith('ok')).length >= 10, r.stdout);
});

test('validate-k8s catches schema errors, unknown fields, broken references and a bad config.ini', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'messaging-k8s-test-'));
  try {
    cpSync(join(ROOT, 'deploy/k8s'), dir, { recursive: true });
    const edit = (file: string, from: string, to: string) => {
      const text = readFileSync(join(dir, file), 'utf8');
      assert.ok(text.includes(from), `${file} contains ${from}`);
      writeFileSync(join(dir, file), text.replace(from, to));
    };
    assert.deepEqual((await validateK8s(dir)).problems, [], 'the shipped manifests are valid');
    edit('deployment.yaml', 'livenessProbe:', 'livenesProbe:');
    edit('deployment.yaml', 'key: db-password', 'key: db-passwd');
    edit('hpa.yaml', 'averageUtilization: 70', 'averageUtilization: seventy');
    edit('ingress.yaml', 'number: 8080', 'number: 8081');
    edit('configmap.yaml', 'enable_auth = true', 'enable_auth = maybe');
    edit('service.yaml', 'app: messaging-server', 'app: messaging-srv');
    const { problems } = await validateK8s(dir);
    const expect = [
      /StatefulSet\/messaging-server: unknown field \/spec\/template\/spec\/containers\/0\/livenesProbe/,
      /Secret messaging-secrets has no key db-passwd/,
      /HorizontalPodAutoscaler\/messaging-hpa: .*averageUtilization must be integer/,
      /Service messaging-service has no port 8081/,
      /config\.ini: invalid value 'maybe' for enable_auth/,
      /Service\/messaging-service: selector matches no pod template/,
    ];
    for (const re of expect) assert.ok(problems.some((p) => re.test(p)), `${re}\nin:\n${problems.join('\n')}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
