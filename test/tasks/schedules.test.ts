/**
 * Schedules: Vixie cron semantics (day-of-month OR day-of-week, time zones), the tick arithmetic,
 * exactly one run per tick with several schedulers on one store, and the SDK front door (periodic runs
 * with fresh ids, enable/disable/trigger/remove).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MemoryStorage, type ScheduleRecord, type TaskRecord } from '../../src/storage/index.ts';
import { dueTick, parseCron, Scheduler } from '../../src/tasks/index.ts';
import { setup, sleep, until, type Env } from './helpers.ts';

function runs(expr: string, from: string, n: number, tz = 'UTC'): string[] {
  const c = parseCron(expr, tz);
  const out: string[] = [];
  let t = Date.parse(from);
  for (let i = 0; i < n; i++) {
    t = c.next(t)!;
    out.push(new Date(t).toISOString());
  }
  return out;
}

describe('cron (Vixie semantics)', () => {
  it('both day fields restricted: runs when EITHER matches', () => {
    // 2024-01-01 was a Monday. "The 1st of the month, and every Monday".
    assert.deepEqual(runs('0 12 1 * 1', '2024-01-02T00:00:00Z', 5), [
      '2024-01-08T12:00:00.000Z',
      '2024-01-15T12:00:00.000Z',
      '2024-01-22T12:00:00.000Z',
      '2024-01-29T12:00:00.000Z',
      '2024-02-01T12:00:00.000Z',
    ]);
  });

  it('a day field starting with * makes both required (DOM_STAR / DOW_STAR)', () => {
    assert.deepEqual(runs('0 12 * * 1', '2024-01-02T00:00:00Z', 2), [
      '2024-01-08T12:00:00.000Z',
      '2024-01-15T12:00:00.000Z',
    ]);
    // */2 day-of-month AND Monday: odd-numbered Mondays only (croner alone would OR them).
    assert.deepEqual(runs('0 12 */2 * 1', '2024-01-02T00:00:00Z', 3), [
      '2024-01-15T12:00:00.000Z',
      '2024-01-29T12:00:00.000Z',
      '2024-02-05T12:00:00.000Z',
    ]);
  });

  it('runs in the given time zone, DST included', () => {
    // 09:30 in New York: 14:30 UTC in winter, 13:30 UTC in summer.
    assert.deepEqual(runs('30 9 * * *', '2024-03-09T00:00:00Z', 2, 'America/New_York'), [
      '2024-03-09T14:30:00.000Z',
      '2024-03-10T13:30:00.000Z',
    ]);
  });

  it('refuses anything but 5 fields, and unknown zones', () => {
    assert.throws(() => parseCron('0 12 * *'), { code: 'BAD_REQUEST' });
    assert.throws(() => parseCron('0 0 12 * * *'), { code: 'BAD_REQUEST' });
    assert.throws(() => parseCron('0 12 * * *', 'Mars/Olympus'), { code: 'BAD_REQUEST' });
  });
});

function schedule(extra: Partial<ScheduleRecord>): ScheduleRecord {
  return {
    id: 's',
    task: { name: 'tick' },
    enabled: true,
    created_at: 0,
    anchor: 0,
    last_tick: 0,
    runs: 0,
    ...extra,
  };
}

describe('schedule ticks', () => {
  it('periodic: ticks fall on anchor + k × every; after downtime only the latest missed tick runs', () => {
    const s = schedule({ every_ms: 1000, anchor: 10_000 });
    assert.deepEqual(dueTick(s, 10_500), { next: 11_000 });
    assert.deepEqual(dueTick(s, 11_000), { tick: 11_000, next: 12_000 });
    assert.deepEqual(dueTick({ ...s, last_tick: 11_000 }, 11_999), { next: 12_000 });
    assert.deepEqual(dueTick({ ...s, last_tick: 11_000 }, 15_400), { tick: 15_000, next: 16_000 });
  });

  it('cron: the latest due time at or before now that was not claimed', () => {
    const t0 = Date.parse('2024-01-01T00:00:30Z');
    const s = schedule({ cron: '*/5 * * * *', timezone: 'UTC', created_at: t0, anchor: t0 });
    assert.deepEqual(dueTick(s, t0), { next: Date.parse('2024-01-01T00:05:00Z') });
    const later = Date.parse('2024-01-01T00:17:00Z');
    assert.deepEqual(dueTick(s, later), {
      tick: Date.parse('2024-01-01T00:15:00Z'),
      next: Date.parse('2024-01-01T00:20:00Z'),
    });
  });

  it('several schedulers on one store create exactly one run per tick', async () => {
    const storage = new MemoryStorage();
    const now = Date.now();
    await storage.putSchedule(schedule({ id: 'race', every_ms: 40, anchor: now, created_at: now }));
    const created: TaskRecord[] = [];
    const schedulers = Array.from(
      { length: 4 },
      () => new Scheduler({ storage, now: Date.now, created: (t) => created.push(t) }),
    );
    for (const s of schedulers) s.start();
    await until(() => created.length >= 8, 10_000, 'eight runs');
    for (const s of schedulers) s.close();
    await sleep(20);
    const ticks = created.map((t) => t.schedule!.tick);
    assert.equal(new Set(ticks).size, ticks.length, `a tick ran twice: ${ticks.join(', ')}`);
    assert.equal(new Set(created.map((t) => t.id)).size, created.length, 'each run has a fresh id');
    const stored = await storage.listTasks({ name: 'tick', limit: 1000 });
    assert.equal(stored.length, created.length);
    const rec = (await storage.getSchedule('race'))!;
    assert.equal(rec.runs, created.length);
    await storage.close();
  });
});

describe('schedules through the SDK', () => {
  let env: Env;
  before(async () => {
    env = await setup();
  });
  after(async () => {
    await env.close();
  });

  it('a periodic schedule runs its task each tick with a fresh id; disable, enable, trigger, remove', async () => {
    const t = env.conn.tasks;
    const ran: string[] = [];
    await env.worker(
      { 'report.build': (_a: unknown, ctx) => void ran.push(ctx.id) },
      { queues: ['reports'] },
    );
    const s = await t.schedules.create({
      id: 'every-150ms',
      task: t.sig('report.build', { kind: 'daily' }, { queue: 'reports' }),
      everyMs: 150,
    });
    assert.equal(s.enabled, true);
    await until(() => ran.length >= 3, 10_000, 'three runs');
    assert.equal(new Set(ran).size, ran.length, 'fresh task id per run');
    const first = await t.get(ran[0]!);
    assert.deepEqual(first.args, { kind: 'daily' });
    assert.equal(first.schedule?.id, 'every-150ms');

    const disabled = await t.schedules.disable('every-150ms');
    assert.equal(disabled.enabled, false);
    // A disabled schedule claims no tick (the claim checks it atomically).
    await sleep(450);
    assert.equal((await t.schedules.get('every-150ms')).runs, disabled.runs, 'no run while disabled');
    const frozen = ran.length;

    const triggered = await t.schedules.trigger('every-150ms');
    await t.wait(triggered.id, 10_000);
    assert.ok(ran.includes(triggered.id));

    await t.schedules.enable('every-150ms');
    await until(() => ran.length >= frozen + 3, 10_000, 'runs after enabling');
    const listed = await t.schedules.list();
    assert.deepEqual(
      listed.map((x) => x.id),
      ['every-150ms'],
    );
    assert.ok(listed[0]!.runs >= 4);

    await t.schedules.remove('every-150ms');
    await assert.rejects(t.schedules.get('every-150ms'), { code: 'NOT_FOUND' });
    const created = (await t.list({ name: 'report.build', limit: 1000 })).length;
    await sleep(400);
    assert.equal(
      (await t.list({ name: 'report.build', limit: 1000 })).length,
      created,
      'no run after removal',
    );
  });

  it('a cron schedule is stored with its time zone; bad input is refused', async () => {
    const t = env.conn.tasks;
    const s = await t.schedules.create({
      id: 'weekday-9am',
      task: t.sig('report.build'),
      cron: '0 9 * * 1-5',
      timezone: 'Europe/Paris',
    });
    assert.deepEqual([s.cron, s.timezone, s.runs], ['0 9 * * 1-5', 'Europe/Paris', 0]);
    await assert.rejects(t.schedules.create({ id: 'x', task: t.sig('a'), cron: 'nope' }), {
      code: 'BAD_REQUEST',
    });
    await assert.rejects(t.schedules.create({ id: 'y', task: t.sig('a') }), { code: 'BAD_REQUEST' });
    await t.schedules.remove('weekday-9am');
  });
});
