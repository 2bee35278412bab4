/**
 * `[logging]` outputs against real files and real sockets: json/text format, levels per module, the
 * rotated file, syslog over UDP and TCP (listeners this test opens on 127.0.0.1), secret scrubbing, and
 * level reloads.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type ServerConfig } from '../../src/config/index.ts';
import { createLogging, secretValues, SCRUBBED, type Logging } from '../../src/observability/logging.ts';
import { RotatingFile } from '../../src/observability/logging-file.ts';
import { formatSyslogMessage, parseSyslogAddress } from '../../src/observability/logging-syslog.ts';
import { formatTextLine } from '../../src/observability/logging-text.ts';

const dir = mkdtempSync(join(tmpdir(), 'messaging-logging-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

function config(ini: string, env: Record<string, string> = {}): ServerConfig {
  const path = join(dir, `config-${++counter}.ini`);
  writeFileSync(path, ini);
  const { config, problems } = loadConfig({ path, env });
  const errors = problems.filter((p) => p.severity === 'error');
  assert.deepEqual(errors, [], 'test config must be valid');
  return config;
}

/** Logging with the console captured into an array of lines. */
function captured(ini: string, env: Record<string, string> = {}) {
  const cfg = config(ini, env);
  const lines: string[] = [];
  const logging = createLogging(cfg.logging, {
    instanceId: 'log-test',
    secrets: secretValues(cfg),
    console: { write: (line: string) => lines.push(line) },
  });
  return { logging, lines, cfg, json: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('format = json: one JSON object per line; level and levels.<module> decide what is written', async () => {
  const { logging, json } = captured('[logging]\nlevel = warn\nlevels.network = debug\n');
  const network = logging.logger.child({ module: 'network' });
  const storage = logging.logger.child({ module: 'storage' });
  network.debug({ conn: 1 }, 'net debug');
  network.trace('net trace');
  storage.info('storage info');
  storage.warn('storage warn');
  logging.logger.info('root info');
  logging.logger.error('root error');
  assert.deepEqual(
    json().map((l) => `${String(l.module ?? '-')}:${String(l.level)}:${String(l.msg)}`),
    ['network:debug:net debug', 'storage:warn:storage warn', '-:error:root error'],
  );
  assert.equal(json()[0]!.instance_id, 'log-test');
  await logging.close();
});

test('format = text: one readable line with time, level, module, message and fields', async () => {
  const { logging, lines } = captured('[logging]\nformat = text\nlevel = info\n');
  logging.logger.child({ module: 'network' }).info({ conn: 7, reason: 'slow consumer' }, 'closed');
  logging.logger.error({ err: new Error('disk full') }, 'append failed');
  assert.match(
    lines[0]!,
    /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}\[network\] closed conn=7 reason="slow consumer"\n$/,
  );
  assert.match(lines[1]!, /ERROR append failed err="disk full"\n {4}Error: disk full\n {8}at /);
  assert.equal(formatTextLine('not json\n'), 'not json\n', 'non-JSON passes through');
  await logging.close();
});

test('reload applies a new root level and new module levels at once; outputs changes need a restart', async () => {
  const { logging, json } = captured('[logging]\nlevel = warn\n');
  const network = logging.logger.child({ module: 'network' });
  network.debug('before');
  const next = config('[logging]\nlevel = info\nlevels.network = debug\nformat = text\n');
  const restart = logging.reload(next.logging);
  network.debug('after');
  logging.logger.child({ module: 'storage' }).info('storage after');
  logging.logger.child({ module: 'storage' }).debug('storage debug after');
  assert.deepEqual(
    json().map((l) => l.msg),
    ['after', 'storage after'],
  );
  assert.deepEqual(restart, ['logging.format']);
  assert.throws(() => logging.reload({ ...next.logging, level: 'loud' as 'info' }), RangeError);
  await logging.close();
});

test('secrets never reach the output: config secret values are scrubbed, secret fields redacted', async () => {
  const dbPassword = 'db-Pa55word-"quoted"';
  const jwt = 'jwt-secret-0123456789abcdef0123456789';
  const { logging, lines, cfg } = captured(
    '[database]\npassword = ${DB_PASSWORD}\n[security]\njwt_secret = ${JWT_SECRET}\n[logging]\nlevel = trace\n',
    { DB_PASSWORD: dbPassword, JWT_SECRET: jwt },
  );
  assert.deepEqual(secretValues(cfg).sort(), [dbPassword, jwt].sort());
  const log = logging.logger.child({ module: 'database' });
  log.error({ err: new Error(`connect postgres://u:${dbPassword}@db/m failed`) }, 'pool error');
  log.info({ dsn: `postgres://u:${dbPassword}@db` }, `using ${jwt}`);
  log.info({ password: 'field-level-secret', auth: { authorization: 'Bearer abc.def.ghi' } }, 'fields');
  const all = lines.join('');
  assert.ok(!all.includes(dbPassword) && !all.includes(JSON.stringify(dbPassword).slice(1, -1)), all);
  assert.ok(!all.includes(jwt), all);
  assert.ok(!all.includes('field-level-secret') && !all.includes('abc.def.ghi'), all);
  assert.ok(all.includes(SCRUBBED));
  for (const line of lines) JSON.parse(line); // scrubbing keeps every line valid JSON
  await logging.close();
});

test('file output: rotation by size keeps rotate_count files, the live file stays at file.path', async () => {
  const path = join(dir, 'rotate', 'messaging.log');
  const cfg = config(
    `[logging]\nconsole.enabled = false\nfile.enabled = true\nfile.path = ${path}\nfile.rotate_size_mb = 1\nfile.rotate_count = 2\n`,
  );
  const logging = createLogging(cfg.logging, { instanceId: 'rot' });
  const filler = 'x'.repeat(1000);
  const total = 3500; // ~3.6 MB: the live file plus three rotations, one of which falls off the end
  for (let i = 0; i < total; i++) logging.logger.info({ i, filler }, 'line');
  await logging.close();
  const names = readdirSync(join(dir, 'rotate')).sort();
  assert.deepEqual(names, ['messaging.log', 'messaging.log.1', 'messaging.log.2']);
  const seen: number[] = [];
  for (const name of ['messaging.log.2', 'messaging.log.1', 'messaging.log']) {
    const text = readFileSync(join(dir, 'rotate', name), 'utf8');
    assert.ok(Buffer.byteLength(text) <= 1024 * 1024, `${name} is within rotate_size_mb`);
    for (const line of text.trimEnd().split('\n')) seen.push((JSON.parse(line) as { i: number }).i);
  }
  // The kept files hold the newest lines, in order, with none missing.
  assert.equal(seen.at(-1), total - 1);
  assert.deepEqual(
    seen,
    seen.map((_, k) => seen[0]! + k),
  );
});

test('RotatingFile: reopen() follows an external logrotate that moved the file away', () => {
  const path = join(dir, 'reopen', 'app.log');
  const file = new RotatingFile({ path, maxBytes: 1 << 20, keep: 3 });
  file.write('one\n');
  renameSync(path, `${path}.rotated`);
  file.write('two\n'); // still the moved file, as with any open descriptor
  file.reopen();
  file.write('three\n');
  file.close();
  assert.equal(readFileSync(`${path}.rotated`, 'utf8'), 'one\ntwo\n');
  assert.equal(readFileSync(path, 'utf8'), 'three\n');
});

test('syslog over UDP: RFC 5424 datagrams to a real socket on 127.0.0.1', async () => {
  const server = createSocket('udp4');
  const received: string[] = [];
  server.on('message', (msg) => received.push(msg.toString()));
  await new Promise<void>((r) => server.bind(0, '127.0.0.1', r));
  const { port } = server.address();
  const cfg = config(
    `[logging]\nconsole.enabled = false\nsyslog.enabled = true\nsyslog.protocol = udp\nsyslog.address = 127.0.0.1:${port}\n`,
  );
  const logging = createLogging(cfg.logging, { instanceId: 'udp' });
  logging.logger.child({ module: 'network' }).warn({ conn: 3 }, 'udp warn');
  logging.logger.info('udp info');
  await waitFor('two datagrams', () => received.length >= 2);
  await logging.close();
  server.close();
  // <12> = facility user (1) * 8 + warning (4); <14> = user + informational (6).
  assert.match(
    received[0]!,
    /^<12>1 \d{4}-\d\d-\d\dT\S+Z \S+ messaging_server \d+ network - \{.*"msg":"udp warn"/,
  );
  assert.match(received[1]!, /^<14>1 \S+ \S+ messaging_server \d+ - - \{.*"msg":"udp info"\}$/);
  const body = JSON.parse(received[0]!.slice(received[0]!.indexOf('{'))) as Record<string, unknown>;
  assert.equal(body.conn, 3);
});

test('syslog over TCP: one message per line; lines logged while the server is down arrive after reconnect', async () => {
  const received: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      const parts = buffer.split('\n');
      buffer = parts.pop() ?? '';
      received.push(...parts);
    });
  });
  // Reserve a port, then close it: the first lines are logged with nobody listening.
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise((r) => server.close(r));

  const cfg = config(
    `[logging]\nformat = text\nconsole.enabled = false\nsyslog.enabled = true\nsyslog.protocol = tcp\nsyslog.address = 127.0.0.1:${port}\n`,
  );
  const problems: string[] = [];
  const logging: Logging = createLogging(cfg.logging, {
    instanceId: 'tcp',
    onProblem: (m) => problems.push(m),
  });
  logging.logger.error('while down 1');
  logging.logger.info('while down 2');
  await waitFor('a connection error report', () => problems.length > 0);
  assert.match(problems[0]!, /syslog tcp:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);

  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  await waitFor('the buffered lines', () => received.length >= 2, 10_000);
  logging.logger.child({ module: 'storage' }).info('after reconnect');
  await waitFor('the live line', () => received.length >= 3);
  await logging.close();
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));

  assert.match(received[0]!, /^<11>1 \S+ \S+ messaging_server \d+ - - \S+Z ERROR while down 1$/);
  assert.match(received[1]!, /^<14>1 .* INFO {2}while down 2$/);
  assert.match(
    received[2]!,
    /^<14>1 \S+ \S+ messaging_server \d+ storage - .*INFO {2}\[storage\] after reconnect$/,
  );
});

test('syslog address forms and message header fields', () => {
  assert.deepEqual(parseSyslogAddress('syslog.example.com:514'), { host: 'syslog.example.com', port: 514 });
  assert.deepEqual(parseSyslogAddress('logs'), { host: 'logs', port: 514 });
  assert.deepEqual(parseSyslogAddress('[::1]:6514'), { host: '::1', port: 6514 });
  assert.deepEqual(parseSyslogAddress('::1'), { host: '::1', port: 514 });
  assert.throws(() => parseSyslogAddress('host:99999'), RangeError);
  const line = '{"level":"fatal","time":"2025-01-02T03:04:05.678Z","pid":42,"hostname":"web 1","msg":"x"}';
  assert.equal(
    formatSyslogMessage(line, line + '\n', 'messaging_server', 'fallback'),
    `<10>1 2025-01-02T03:04:05.678Z web_1 messaging_server 42 - - ${line}`,
  );
});

test('an output that cannot be opened fails loudly at start', () => {
  const blocker = join(dir, 'not-a-dir');
  writeFileSync(blocker, '');
  const cfg = config(`[logging]\nfile.enabled = true\nfile.path = ${join(blocker, 'x.log')}\n`);
  assert.throws(() => createLogging(cfg.logging, { instanceId: 'x' }), /ENOTDIR|EEXIST/);
});
