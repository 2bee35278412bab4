/**
 * The .deb of scripts/build-deb.sh, installed on this machine the way the guide installs it: dpkg -i,
 * then the server started as the `messaging` user from the installed files (no systemd here, so the
 * unit's command is run with runuser), checked, stopped, and the package purged in cleanup.
 *
 * Needs root and dpkg; a machine that already has a messaging-system package installed is left alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/child-server.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const sh = (cmd: string, args: string[], env: Record<string, string> = {}) =>
  spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 300_000 });
const has = (tool: string) => sh('sh', ['-c', `command -v ${tool}`]).status === 0;

function whyNot(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to dpkg -i (CI runs as root)';
  for (const tool of ['dpkg', 'dpkg-deb', 'runuser', 'getent']) if (!has(tool)) return `${tool} not installed: apt-get install dpkg util-linux`;
  if (sh('dpkg-query', ['-W', '-f=${Status}', 'messaging-system']).stdout.includes('installed')) {
    return 'a messaging-system package is already installed on this machine; not touching it';
  }
  return undefined;
}

test('the .deb installs the guide’s layout, its server runs as `messaging`, and it purges cleanly', async (t) => {
  const reason = whyNot();
  if (reason) {
    t.skip(reason);
    return;
  }
  const out = mkdtempSync(join(tmpdir(), 'messaging-deb-test-'));
  const userExisted = sh('getent', ['passwd', 'messaging']).status === 0;
  const dirsExisted = ['/var/lib/messaging', '/var/log/messaging', '/etc/messaging'].filter((d) => existsSync(d));
  t.after(() => {
    // tsx's compile cache of the service user (os.tmpdir()/tsx-<uid>) goes with the user.
    const uid = sh('id', ['-u', 'messaging']).stdout.trim();
    if (!userExisted && /^\d+$/.test(uid)) rmSync(join(tmpdir(), `tsx-${uid}`), { recursive: true, force: true });
    sh('dpkg', ['--purge', 'messaging-system']);
    if (!userExisted) sh('userdel', ['messaging']);
    if (!userExisted) sh('groupdel', ['messaging']);
    for (const d of ['/var/lib/messaging', '/var/log/messaging', '/etc/messaging']) {
      if (!dirsExisted.includes(d)) rmSync(d, { recursive: true, force: true });
    }
    rmSync(out, { recursive: true, force: true });
  });

  const started = performance.now();
  const build = sh('bash', [join(ROOT, 'scripts/build-deb.sh'), out]);
  assert.equal(build.status, 0, build.stderr);
  const deb = build.stdout.trim().split('\n').at(-1)!;
  t.diagnostic(`built ${deb} (${(statSync(deb).size / 1e6).toFixed(1)} MB) in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const install = sh('dpkg', ['-i', deb]);
  assert.equal(install.status, 0, `dpkg -i failed:\n${install.stdout}\n${install.stderr}`);

  // The guide's layout.
  for (const path of [
    '/usr/bin/messaging_server',
    '/usr/bin/messaging',
    '/opt/messaging-system/node_modules/tsx',
    '/opt/messaging-system/scripts/backup.sh',
    '/lib/systemd/system/messaging-system.service',
    '/etc/security/limits.d/messaging.conf',
  ]) {
    assert.ok(existsSync(path), `${path} installed`);
  }
  if (existsSync(join(ROOT, 'bin/messaging_worker.js'))) assert.ok(existsSync('/usr/bin/messaging_worker'));
  assert.ok(!existsSync('/opt/messaging-system/node_modules/typescript'), 'no dev dependencies');
  const conffiles = sh('dpkg-query', ['-W', '-f=${Conffiles}', 'messaging-system']).stdout;
  assert.match(conffiles, /\/etc\/messaging\/config\.ini [0-9a-f]{32}/, 'config.ini is a conffile');
  assert.equal(
    readFileSync('/etc/messaging/config.ini', 'utf8'),
    readFileSync(join(ROOT, 'deploy/config/config.ini'), 'utf8'),
  );
  assert.equal(sh('getent', ['passwd', 'messaging']).status, 0, 'postinst created the messaging user');
  const shell = sh('getent', ['passwd', 'messaging']).stdout.trim().split(':').at(-1);
  assert.match(shell ?? '', /nologin|false/, 'a system user without a login shell');
  for (const dir of ['/var/lib/messaging/queue', '/var/log/messaging']) {
    const owner = sh('stat', ['-c', '%U', dir]).stdout.trim();
    assert.equal(owner, 'messaging', `${dir} is owned by messaging`);
  }
  // The installed unit, with its command now present, verifies with nothing filtered out.
  if (has('systemd-analyze')) {
    const verify = sh('systemd-analyze', ['verify', '--man=no', '/lib/systemd/system/messaging-system.service']);
    assert.equal(`${verify.stdout}${verify.stderr}`.trim(), '', 'systemd-analyze verify is clean');
    assert.equal(verify.status, 0);
  }
  assert.match(sh('/usr/bin/messaging_server', ['--version']).stdout, /\d+\.\d+\.\d+/);
  assert.match(sh('/usr/bin/messaging', ['--version']).stdout, /\d+\.\d+\.\d+/);

  // Start it as the service would: the messaging user, the installed config, the installed store.
  const port = await freePort();
  const adminPort = await freePort();
  // setpriv execs the server as `messaging` (as systemd's User= does), so SIGTERM reaches it directly;
  // runuser would stay in between and turn the graceful stop into a kill after 2 s.
  const command = ['/usr/bin/messaging_server', '--config', '/etc/messaging/config.ini'];
  command.push('--port', String(port), '--metrics-port', String(adminPort));
  const asUser = has('setpriv')
    ? ['setpriv', '--reuid=messaging', '--regid=messaging', '--init-groups', '--']
    : ['runuser', '-u', 'messaging', '--'];
  const server = spawn(asUser[0]!, [...asUser.slice(1), ...command], {
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', JWT_SECRET: 'deb-test-secret-0123456789abcdef0123456789' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  server.stdout.on('data', (d: Buffer) => (log += d.toString()));
  server.stderr.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) => server.once('exit', r));
  try {
    const deadline = Date.now() + 90_000; // generous: a cold tsx compile on a loaded 2-core machine
    let status = 0;
    while (Date.now() < deadline && server.exitCode === null) {
      status = await fetch(`http://127.0.0.1:${adminPort}/health`).then((r) => r.status, () => 0);
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 200, log);
    // The packaged health_check.sh against it (no systemd here: that check reports itself skipped).
    const check = sh('/opt/messaging-system/scripts/health_check.sh', [], {
      MESSAGING_PORT: String(port),
      MESSAGING_METRICS_PORT: String(adminPort),
    });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /All health checks passed/);
    // It wrote where the service user may: the store's LOCK and the log file.
    assert.ok(existsSync('/var/lib/messaging/queue/LOCK'));
    assert.match(readFileSync('/var/log/messaging/messaging.log', 'utf8'), /listening on/);
  } finally {
    server.kill('SIGTERM');
  }
  assert.equal(await exited, 0, `graceful shutdown exits 0:\n${log}`);
  assert.match(log, /shutdown complete/);

  const purge = sh('dpkg', ['--purge', 'messaging-system']);
  assert.equal(purge.status, 0, purge.stderr);
  assert.ok(!existsSync('/usr/bin/messaging_server') && !existsSync('/opt/messaging-system/bin'));
  assert.ok(!existsSync('/etc/messaging/config.ini'), 'purge removes the conffile');
});
