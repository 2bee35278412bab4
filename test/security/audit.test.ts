/**
 * The audit log: every event kind of the seed's list with who, what, when, from where and the outcome;
 * the hash chain across restarts; `messaging audit verify` on an intact and on a tampered file;
 * events_to_log filtering; records in the main log when no file is set.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '../../src/client/index.ts';
import { encodeControl, FrameType } from '../../src/protocol/index.ts';
import { verifyAuditFile } from '../../src/security/audit.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { hsToken, runCli, SECRET, startCaptured, tempDir } from './helpers.ts';

interface AuditLine {
  ts: string;
  seq: number;
  event: string;
  action: string;
  outcome: string;
  actor?: { subject: string; method: string };
  source?: { address?: string; transport?: string };
  resource?: { kind: string; name: string };
  reason?: string;
  prev: string;
  hash: string;
}

const readLines = (file: string): AuditLine[] =>
  readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as AuditLine);

describe('audit log', () => {
  let dir: string;
  let file: string;
  const base = (): Record<string, string> => ({
    'security.enable_auth': 'true',
    'security.jwt_secret': SECRET,
    'audit.enabled': 'true',
    'audit.log_file': file,
  });

  before(() => {
    dir = tempDir('audit');
    file = join(dir, 'audit.log');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('records every event kind with who, what, when, where and the outcome', async () => {
    const ts = await startCaptured(base());
    const bad = await RawClient.connect(ts.port);
    bad.write(encodeControl(FrameType.HELLO, 1, { version: 1, token: 'garbage' }));
    await bad.error();
    const admin = await connect({
      servers: `tcp://127.0.0.1:${ts.port}`,
      token: await hsToken({ sub: 'ops' }),
      reconnect: false,
    });
    await admin.queues.declare({ name: 'billing', bindings: ['billing.#'] });
    await admin.streams.declare({ name: 'ledger', bindings: ['ledger.#'] });
    await admin.publishConfirmed('billing.x', 'x');
    await admin.queues.pull('billing', { max: 1 });
    await admin.command('stream.read', { stream: 'ledger' });
    await admin.queues.purge('billing');
    await admin.queues.delete('billing');
    const limited = await connect({
      servers: `tcp://127.0.0.1:${ts.port}`,
      token: await hsToken({ sub: 'intern', permissions: { publish: ['public.*'] } }),
      reconnect: false,
    });
    await assert.rejects(limited.publishConfirmed('billing.y', 'x'), { code: 'PERMISSION_DENIED' });
    const rest = await fetch(`http://127.0.0.1:${ts.port}/v1/streams/ledger/messages`, {
      headers: { authorization: `Bearer ${await hsToken({ sub: 'reporter' })}` },
    });
    assert.equal(rest.status, 200);
    await limited.close();
    await admin.close();
    await ts.close();

    const lines = readLines(file);
    const kinds = new Set(lines.map((l) => l.event));
    for (const kind of [
      'system_start',
      'authentication',
      'authorization',
      'data_access',
      'data_modification',
      'system_stop',
    ]) {
      assert.ok(kinds.has(kind), `no ${kind} record`);
    }
    for (const l of lines) {
      assert.ok(!Number.isNaN(Date.parse(l.ts)), 'when');
      assert.ok(
        l.action && l.outcome && l.actor?.subject && l.source,
        `who/what/where/outcome in ${JSON.stringify(l)}`,
      );
    }
    const failedLogin = lines.find((l) => l.event === 'authentication' && l.outcome === 'failure');
    assert.equal(failedLogin?.source?.address, '127.0.0.1');
    assert.match(failedLogin?.reason ?? '', /AUTH_FAILED/);
    assert.ok(!JSON.stringify(lines).includes(SECRET), 'no secret in the audit log');
    const denied = lines.find((l) => l.event === 'authorization');
    assert.equal(denied?.actor?.subject, 'intern');
    assert.equal(denied?.outcome, 'denied');
    assert.deepEqual(denied?.resource, { kind: 'publish', name: 'billing.y' });
    const mods = lines
      .filter((l) => l.event === 'data_modification')
      .map((l) => `${l.action} ${l.resource?.name}`);
    assert.deepEqual(mods, [
      'queue.declare billing',
      'stream.declare ledger',
      'queue.purge billing',
      'queue.delete billing',
    ]);
    const reads = lines
      .filter((l) => l.event === 'data_access')
      .map((l) => `${l.actor?.subject} ${l.action}`);
    assert.deepEqual(reads, ['ops queue.pull', 'ops stream.read', 'reporter stream.read']);
    assert.equal(lines.filter((l) => l.event === 'data_access' && l.source?.transport === 'http').length, 1);
  });

  it('chains across a restart and notes a configuration change', async () => {
    const before = readLines(file).length;
    const ts = await startCaptured({ ...base(), 'message_bus.max_payload_bytes': '2048' });
    await ts.close();
    const lines = readLines(file);
    const added = lines.slice(before).map((l) => l.event);
    assert.deepEqual(added, ['configuration_change', 'system_start', 'system_stop']);
    const result = await verifyAuditFile(file);
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.match(ts.logs(), new RegExp(`"audit_head":"${result.ok ? result.head : ''}"`));
    const cli = await runCli(['audit', 'verify', file]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /OK, \d+ line\(s\), head [0-9a-f]{64}/);
  });

  it('`messaging audit verify` names the first changed, removed or inserted line', async () => {
    const original = readFileSync(file, 'utf8');
    const lines = original.trimEnd().split('\n');
    const tampered = (mutate: (ls: string[]) => string[]): string => {
      const copy = join(dir, `tampered-${Math.random().toString(36).slice(2)}.log`);
      writeFileSync(copy, mutate([...lines]).join('\n') + '\n');
      return copy;
    };
    const changed = tampered((ls) => {
      ls[3] = ls[3]!.replace(/"outcome":"\w+"/, '"outcome":"success"').replace('"seq":4', '"seq":4 ');
      return ls;
    });
    const r1 = await runCli(['audit', 'verify', changed]);
    assert.equal(r1.code, 1);
    assert.match(r1.stderr, /line 4 is bad/);
    const removed = tampered((ls) => ls.filter((_, i) => i !== 5));
    const r2 = await runCli(['audit', 'verify', removed]);
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /line 6 is bad/);
    const inserted = tampered((ls) => [...ls.slice(0, 2), ls[1]!, ...ls.slice(2)]);
    assert.match((await runCli(['audit', 'verify', inserted])).stderr, /line 3 is bad/);
    const truncated = tampered((ls) => ls.slice(0, -2));
    const head = (await verifyAuditFile(file)) as { head: string };
    const r4 = await runCli(['audit', 'verify', truncated, '--head', head.head]);
    assert.equal(r4.code, 1, 'a truncated tail is caught against the head kept elsewhere');
  });

  it('events_to_log filters; without log_file the records go to the main log', async () => {
    const only = join(dir, 'only-auth.log');
    const ts = await startCaptured({
      ...base(),
      'audit.log_file': only,
      'audit.events_to_log': 'authentication',
    });
    const c = await connect({
      servers: `tcp://127.0.0.1:${ts.port}`,
      token: await hsToken({ sub: 'x' }),
      reconnect: false,
    });
    await c.queues.declare({ name: 'q1' });
    await c.close();
    await ts.close();
    assert.deepEqual([...new Set(readLines(only).map((l) => l.event))], ['authentication']);

    const noFile = await startCaptured({ ...base(), 'audit.log_file': '' });
    const c2 = await connect({
      servers: `tcp://127.0.0.1:${noFile.port}`,
      token: await hsToken({ sub: 'y' }),
      reconnect: false,
    });
    await c2.close();
    await noFile.close();
    assert.match(noFile.logs(), /"module":"audit".*"event":"authentication"/);
  });
});
