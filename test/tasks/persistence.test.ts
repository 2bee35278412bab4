/**
 * Task state survives a restart with the file engine: records in every state, results, the retry and
 * schedule bookkeeping — and the journal's space reclaim carries live task records forward, so
 * compaction never loses one.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { connect } from '../../src/client/index.ts';
import { assertNoErrors, loadConfig } from '../../src/config/index.ts';
import { startServer, type RunningServer } from '../../src/server/server.ts';
import { FileStorage } from '../../src/storage/index.ts';
import { Worker } from '../../src/worker/index.ts';
import { task } from '../storage/task-conformance.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'tasks-persist-'));
  dirs.push(d);
  return d;
}

async function fileServer(dataDir: string): Promise<RunningServer> {
  const { config, problems } = loadConfig({
    env: {},
    overrides: {
      'network.listen_port': '0',
      'network.bind_address': '127.0.0.1',
      'monitoring.enable': 'false',
      'message_bus.storage': 'file',
      'message_bus.persistence_path': dataDir,
    },
  });
  assertNoErrors(problems);
  return startServer(config, { logger: pino({ level: 'silent' }) });
}

describe('task persistence (file engine)', () => {
  it('tasks, results and schedules survive a restart', async () => {
    const dir = tempDir();
    let server = await fileServer(dir);
    let conn = await connect({ servers: `tcp://127.0.0.1:${server.port}` });
    const t = conn.tasks;
    const later = await t.submit('later', { x: 1 }, { countdownMs: 3_600_000, tags: ['keep'] });
    const queued = await t.submit('queued', [1, 2], {
      queue: 'nobody',
      priority: 'high',
      idempotencyKey: 'k-1',
    });
    const w = new Worker(conn, { done: (n: number) => n * 2 }, { queues: ['work'], concurrency: 1 });
    await w.ready();
    const done = await t.submit('done', 21, { queue: 'work' });
    assert.equal(await done.wait(10_000), 42);
    await w.close();
    await t.schedules.create({
      id: 'hourly',
      task: t.sig('report'),
      cron: '0 * * * *',
      timezone: 'Europe/Berlin',
    });
    await conn.close();
    await server.close();

    server = await fileServer(dir);
    conn = await connect({ servers: `tcp://127.0.0.1:${server.port}` });
    const a = await conn.tasks.get(later.id);
    assert.deepEqual([a.state, a.eta, a.tags, a.args], ['pending', later.info.eta, ['keep'], { x: 1 }]);
    const b = await conn.tasks.get(queued.id);
    assert.deepEqual([b.state, b.priority, b.args], ['queued', 3, [1, 2]]);
    const c = await conn.tasks.get(done.id);
    assert.deepEqual([c.state, c.result, c.attempts], ['succeeded', 42, 1]);
    // The idempotency index is rebuilt too.
    const again = await conn.tasks.submit('queued', [9], { queue: 'nobody', idempotencyKey: 'k-1' });
    assert.equal(again.id, queued.id);
    const s = await conn.tasks.schedules.get('hourly');
    assert.deepEqual([s.cron, s.timezone, s.enabled], ['0 * * * *', 'Europe/Berlin', true]);
    // And the queued task still runs after the restart.
    const w2 = new Worker(
      conn,
      { queued: (args: number[]) => args.length },
      { queues: ['nobody'], concurrency: 1 },
    );
    await w2.ready();
    assert.equal(await conn.tasks.wait(queued.id, 10_000), 2);
    await w2.close();
    await conn.close();
    await server.close();
  });

  it('compaction carries live task records forward and drops settled segments', async () => {
    const dir = tempDir();
    let now = Date.now();
    const open = () =>
      FileStorage.open({
        path: dir,
        segmentBytes: 8 * 1024,
        fsync: 'none',
        compactRatio: 0.5,
        now: () => now,
      });
    let s = await open();
    const keep = task({ name: 'keeper', args: { big: 'x'.repeat(200) } }, now);
    await s.submitTasks([keep]);
    // Churn: many short-lived tasks fill and roll segments, then go at their result TTL.
    for (let round = 0; round < 20; round++) {
      const batch = Array.from({ length: 20 }, () => task({ args: 'y'.repeat(100), result_ttl_ms: 1 }, now));
      await s.submitTasks(batch);
      await s.updateTasks(batch.map((b) => ({ id: b.id, from: ['queued'], to: 'cancelled' })));
      now += 10;
      await s.tickTasks();
    }
    await s.updateTasks([{ id: keep.id, from: ['queued'], set: { tags: ['touched'] } }]);
    await s.compact();
    // (Background reclaim may have done part of it already; the outcome is what counts.)
    const segs = readdirSync(dir)
      .filter((f) => f.endsWith('.seg'))
      .sort();
    // The keeper's first home (segment 1) was rewritten forward, so that segment could go.
    assert.notEqual(segs[0], '0000000001.seg', `segments left: ${segs.join(', ')}`);
    assert.ok(segs.length <= 3, `segments left: ${segs.join(', ')}`);
    await s.close();
    s = await open();
    const rec = await s.getTask(keep.id);
    assert.deepEqual([rec?.state, rec?.tags, rec?.args], ['queued', ['touched'], keep.args]);
    assert.equal((await s.listTasks({ limit: 10_000 })).length, 1, 'the churned records stay gone');
    const counts = await s.taskCounts();
    assert.equal(counts.queues['default']!.queued, 1);
    await s.close();
  });
});
