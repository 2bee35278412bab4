/**
 * The `tasks` permission on every task operation, on both front doors: submit (one, many, workflows,
 * schedules), reading by id, waiting, cancelling, listings and stats filtered, schedules by id, and
 * workers that only ever receive the task names their token allows.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type Connection } from '../../src/client/index.ts';
import { Worker } from '../../src/worker/index.ts';
import { until } from '../tasks/helpers.ts';
import { hsToken, SECRET, startCaptured, tempDir, type CapturedServer } from './helpers.ts';

type Task = { id: string; name: string; state: string };
type AuditLine = {
  event: string;
  outcome: string;
  actor: { subject: string };
  resource?: { name: string };
  source: { transport: string };
};

describe('task permissions (the `tasks` claim)', () => {
  let ts: CapturedServer;
  let admin: Connection;
  let alice: Connection;
  let aliceToken: string;
  const auditDir = tempDir('task-audit');
  const auditFile = join(auditDir, 'audit.log');
  const closers: (() => Promise<unknown>)[] = [];

  before(async () => {
    ts = await startCaptured({
      'security.enable_auth': 'true',
      'security.jwt_secret': SECRET,
      'security.auth.token_expiry': '600',
      'audit.enabled': 'true',
      'audit.log_file': auditFile,
    });
    const url = `tcp://127.0.0.1:${ts.port}`;
    admin = await connect({ servers: url, token: await hsToken({ sub: 'admin' }), reconnect: false });
    aliceToken = await hsToken({ sub: 'alice', permissions: { tasks: ['resize', 'thumb'] } });
    alice = await connect({ servers: url, token: aliceToken, reconnect: false });
  });
  after(async () => {
    for (const close of closers) await close().catch(() => undefined);
    await alice.close();
    await admin.close();
    await ts.close();
    rmSync(auditDir, { recursive: true, force: true });
  });

  const submit = (c: Connection, name: string, queue = 'tp-main'): Promise<Task> =>
    c.command('task.submit', { name, queue, args: { n: 1 } }) as Promise<Task>;
  const denied = { code: 'PERMISSION_DENIED' };

  it('submitting: single, batched, workflows and schedules need every task name', async () => {
    await submit(alice, 'resize');
    await assert.rejects(submit(alice, 'payroll.run'), denied);
    const before = (await admin.command('task.list', { queue: 'tp-main' })) as { tasks: Task[] };
    await assert.rejects(
      alice.command('task.submit_many', {
        tasks: [
          { name: 'resize', queue: 'tp-main' },
          { name: 'payroll.run', queue: 'tp-main' },
        ],
      }),
      denied,
    );
    const afterMany = (await admin.command('task.list', { queue: 'tp-main' })) as { tasks: Task[] };
    assert.equal(afterMany.tasks.length, before.tasks.length, 'a refused batch stores nothing');
    await assert.rejects(
      alice.command('task.workflow', {
        kind: 'chain',
        steps: [
          { name: 'resize', queue: 'tp-main' },
          { name: 'payroll.run', queue: 'tp-main' },
        ],
      }),
      denied,
    );
    await assert.rejects(
      alice.command('task.workflow', {
        kind: 'chord',
        steps: [{ name: 'resize', queue: 'tp-main' }],
        callback: { name: 'payroll.run', queue: 'tp-main' },
      }),
      denied,
    );
    const chain = (await alice.command('task.workflow', {
      kind: 'chain',
      steps: [
        { name: 'resize', queue: 'tp-main' },
        { name: 'thumb', queue: 'tp-main' },
      ],
    })) as Task;
    // A workflow is readable by whoever may use all of its steps, whatever it is called.
    assert.equal(((await alice.command('task.get', { id: chain.id })) as Task).id, chain.id);
    await assert.rejects(
      alice.command('schedule.create', { id: 'alice-pay', every_ms: 60_000, task: { name: 'payroll.run' } }),
      denied,
    );
    await alice.command('schedule.create', {
      id: 'alice-thumbs',
      every_ms: 3_600_000,
      start_at: Date.now() + 3_600_000,
      task: { name: 'thumb', queue: 'tp-main' },
    });
  });

  it('by id: get, wait, cancel and schedules refuse what the token may not use, and change nothing', async () => {
    const secret = await submit(admin, 'payroll.run', 'tp-other');
    const mine = await submit(alice, 'thumb', 'tp-other');
    await assert.rejects(alice.command('task.get', { id: secret.id }), denied);
    await assert.rejects(alice.command('task.wait', { id: secret.id, timeout_ms: 10 }), denied);
    await assert.rejects(alice.command('task.cancel', { id: secret.id }), denied);
    assert.equal(((await admin.command('task.get', { id: secret.id })) as Task).state, 'queued');
    // Unknown ids are NOT_FOUND for everyone (no permission question to ask).
    await assert.rejects(alice.command('task.get', { id: '01HZZZZZZZZZZZZZZZZZZZZZZZ' }), {
      code: 'NOT_FOUND',
    });
    assert.equal(((await alice.command('task.cancel', { id: mine.id })) as Task).state, 'cancelled');

    await admin.command('schedule.create', {
      id: 'nightly-payroll',
      cron: '0 3 * * *',
      task: { name: 'payroll.run', queue: 'tp-other' },
    });
    for (const op of ['schedule.get', 'schedule.disable', 'schedule.trigger', 'schedule.remove'])
      await assert.rejects(alice.command(op, { id: 'nightly-payroll' }), denied, op);
    const sched = (await admin.command('schedule.get', { id: 'nightly-payroll' })) as {
      enabled: boolean;
      runs: number;
    };
    assert.deepEqual([sched.enabled, sched.runs], [true, 0]);
    const ids = ((await alice.command('schedule.list')) as { schedules: { id: string }[] }).schedules.map(
      (s) => s.id,
    );
    assert.ok(ids.includes('alice-thumbs') && !ids.includes('nightly-payroll'), ids.join());
  });

  it('listings and stats show only the allowed names; a filter on another name is refused', async () => {
    await submit(admin, 'payroll.run', 'tp-list');
    await submit(alice, 'resize', 'tp-list');
    const listed = ((await alice.command('task.list', { queue: 'tp-list' })) as { tasks: Task[] }).tasks;
    assert.deepEqual(
      listed.map((t) => t.name),
      ['resize'],
    );
    assert.equal(
      ((await admin.command('task.list', { queue: 'tp-list' })) as { tasks: Task[] }).tasks.length,
      2,
    );
    await assert.rejects(alice.command('task.list', { name: 'payroll.run' }), denied);
    const stats = (await alice.command('task.stats')) as { names: Record<string, unknown>; queues?: unknown };
    assert.ok(stats.names.resize, 'own names are in the stats');
    assert.equal(stats.names['payroll.run'], undefined);
    assert.equal(stats.queues, undefined, 'per-queue figures mix every name: unrestricted callers only');
    const full = (await admin.command('task.stats')) as { names: Record<string, unknown> };
    assert.ok(full.names['payroll.run']);
  });

  it('REST: the same checks with Bearer tokens (403 for another name, filtered lists)', async () => {
    const base = `http://127.0.0.1:${ts.port}`;
    const auth = { authorization: `Bearer ${aliceToken}`, 'content-type': 'application/json' };
    const secret = await submit(admin, 'payroll.run', 'tp-rest');
    const get = await fetch(`${base}/v1/tasks/${secret.id}`, { headers: auth });
    assert.equal(get.status, 403);
    assert.equal(((await get.json()) as { code: string }).code, 'PERMISSION_DENIED');
    assert.equal(
      (await fetch(`${base}/v1/tasks/${secret.id}`, { method: 'DELETE', headers: auth })).status,
      403,
    );
    assert.equal((await fetch(`${base}/v1/tasks/${secret.id}/wait`, { headers: auth })).status, 403);
    const post = await fetch(`${base}/v1/workflows`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ kind: 'group', steps: [{ name: 'payroll.run' }] }),
    });
    assert.equal(post.status, 403);
    const sch = await fetch(`${base}/v1/schedules/nightly-payroll/trigger`, {
      method: 'POST',
      headers: auth,
    });
    assert.equal(sch.status, 403);
    const list = (await (await fetch(`${base}/v1/tasks?queue=tp-rest`, { headers: auth })).json()) as {
      tasks: Task[];
    };
    assert.deepEqual(list.tasks, []);
    assert.equal(((await admin.command('task.get', { id: secret.id })) as Task).state, 'queued');
  });

  it('a worker of a restricted token receives only the task names the token allows', async () => {
    const queue = 'tp-work';
    const ran: string[] = [];
    const handlers = {
      resize: async () => void ran.push('resize'),
      'payroll.run': async () => void ran.push('payroll.run'),
    };
    const w = new Worker(alice, handlers, { queues: [queue], concurrency: 2 });
    closers.push(() => w.close({ timeoutMs: 500 }));
    await w.ready();
    const secret = await submit(admin, 'payroll.run', queue);
    const own = await submit(admin, 'resize', queue);
    await until(
      async () => ((await admin.command('task.get', { id: own.id })) as Task).state === 'succeeded',
    );
    // Give the worker every chance to (wrongly) take the other one: it is still queued after its peer ran.
    const other = (await admin.command('task.get', { id: secret.id })) as Task;
    assert.equal(other.state, 'queued');
    assert.deepEqual(ran, ['resize']);

    // A claim of prefix patterns cannot narrow a whole-queue worker: it must name its tasks.
    const globToken = await hsToken({ sub: 'bob', permissions: { tasks: ['img.*'] } });
    const bob = await connect({ servers: `tcp://127.0.0.1:${ts.port}`, token: globToken, reconnect: false });
    closers.push(() => bob.close());
    await assert.rejects(
      bob.command('task.worker', { sid: 901, worker: 'bob-1', queues: [queue] }),
      (err: Error) => {
        assert.equal((err as { code?: string }).code, 'PERMISSION_DENIED');
        assert.match(err.message, /targets\[\]\.names/);
        return true;
      },
    );
    await assert.rejects(
      bob.command('task.worker', {
        sid: 902,
        worker: 'bob-2',
        targets: [{ queue, names: ['img.resize', 'payroll.run'] }],
      }),
      denied,
    );
    const ok = (await bob.command('task.worker', {
      sid: 903,
      worker: 'bob-3',
      targets: [{ queue, names: ['img.resize'] }],
    })) as { worker: string };
    assert.equal(ok.worker, 'bob-3');
  });

  it('every denial is audited with the resource named', async () => {
    const denials = await until(() => {
      if (!existsSync(auditFile)) return undefined;
      const records = readFileSync(auditFile, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as AuditLine);
      const found = records.filter(
        (r) => r.outcome === 'denied' && r.actor.subject === 'alice' && r.resource?.name === 'payroll.run',
      );
      return found.length >= 2 ? found : undefined;
    });
    for (const r of denials) {
      assert.equal(r.event, 'authorization');
    }
    assert.ok(
      denials.some((r) => r.source.transport === 'http'),
      'REST denials are audited too',
    );
  });
});
