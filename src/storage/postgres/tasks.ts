/**
 * The task half of the `postgres` engine. Each operation is one transaction that locks the task rows it
 * changes (`FOR UPDATE`, in id order), decides with the rules of `task-rules.ts`, and writes the whole
 * records back; indexed columns are generated from the jsonb record, so they can never disagree with it.
 * Claims and housekeeping use `FOR UPDATE SKIP LOCKED`: servers sharing the database never claim one
 * task twice and never wait for each other.
 */
import { MessagingError } from '../../protocol/errors.ts';
import {
  isTerminal,
  TASK_STATES,
  type ClaimTarget,
  type ScheduleRecord,
  type StateCounts,
  type TaskChange,
  type TaskChangeOutcome,
  type TaskCounts,
  type TaskFilter,
  type TaskPatch,
  type TaskProgress,
  type TaskRecord,
  type TaskState,
  type TaskTickResult,
} from '../task-types.ts';
import type { Sql } from './db.ts';
import { TERMINAL_STATES } from './schema.ts';
import { PgStreamEngine } from './streams.ts';
import type { TxEffects } from './rows.ts';
import { checkTaskRecord, conflict } from '../task-rules.ts';
import { transition, type Changed } from './task-rules.ts';

type Row = { rec: TaskRecord };

/** What the other servers must hear about a record in its new state (see `Storage.watch`). */
function noteTasks(fx: TxEffects, recs: Iterable<TaskRecord>): void {
  for (const r of recs) {
    if (r.state === 'queued' && r.kind === 'task') fx.note({ kind: 'tasks', queue: r.queue });
    else if ((r.state === 'pending' || r.state === 'retrying') && r.eta !== undefined)
      fx.note({ kind: 'task-due', at: r.eta });
    else if (isTerminal(r.state)) fx.note({ kind: 'task-ended', id: r.id });
  }
}

function zeroCounts(): StateCounts {
  const c = {} as StateCounts;
  for (const s of TASK_STATES) c[s] = 0;
  return c;
}

export abstract class PgTaskEngine extends PgStreamEngine {
  /** `n` ascending values of the shared sequence (creation order, and FIFO order among ready tasks). */
  private async seqs(c: Sql, n: number): Promise<number[]> {
    if (n === 0) return [];
    const rows = (
      await c.query<{ v: number }>(`SELECT nextval('task_seq') AS v FROM generate_series(1, $1)`, [n])
    ).rows;
    return rows.map((r) => r.v).sort((a, b) => a - b);
  }

  /** Inserts new records; returns the ids actually inserted (others already existed). */
  private async insertTasks(c: Sql, records: readonly TaskRecord[]): Promise<Set<string>> {
    if (records.length === 0) return new Set();
    const seq = await this.seqs(c, records.length);
    const rows = (
      await c.query<{ id: string }>(
        `INSERT INTO tasks (id, rec, created_seq, ready_seq)
         SELECT * FROM unnest($1::text[], $2::jsonb[], $3::bigint[], $3::bigint[])
         ON CONFLICT DO NOTHING RETURNING id`,
        [records.map((r) => r.id), records.map((r) => JSON.stringify(r)), seq],
      )
    ).rows;
    return new Set(rows.map((r) => r.id));
  }

  /** Writes changed records back; requeued ones get a fresh FIFO position, in the order given. */
  private async saveTasks(c: Sql, changed: readonly Changed[]): Promise<void> {
    if (changed.length === 0) return;
    const fresh = await this.seqs(c, changed.filter((x) => x.requeued).length);
    let i = 0;
    const ready = changed.map((x) => (x.requeued ? fresh[i++]! : null));
    await c.query(
      `UPDATE tasks t SET rec = v.rec, ready_seq = coalesce(v.ready, t.ready_seq)
       FROM unnest($1::text[], $2::jsonb[], $3::bigint[]) AS v(id, rec, ready) WHERE t.id = v.id`,
      [changed.map((x) => x.rec.id), changed.map((x) => JSON.stringify(x.rec)), ready],
    );
  }

  private async lockTasks(c: Sql, ids: readonly string[]): Promise<Map<string, TaskRecord>> {
    const rows = (
      await c.query<Row & { id: string }>(
        'SELECT id, rec FROM tasks WHERE id = ANY($1::text[]) ORDER BY id COLLATE "C" FOR UPDATE',
        [[...new Set(ids)]],
      )
    ).rows;
    return new Map(rows.map((r) => [r.id, r.rec]));
  }

  // ---- creating ------------------------------------------------------------------------------------

  async submitTasks(records: readonly TaskRecord[]): Promise<{ task: TaskRecord; created: boolean }[]> {
    for (const r of records) checkTaskRecord(r);
    return this.db.tx(async (c) => {
      const ids = records.map((r) => r.id);
      const keys = records.flatMap((r) => (r.idempotency_key !== undefined ? [r.idempotency_key] : []));
      const known = async (): Promise<{ byId: Map<string, TaskRecord>; byKey: Map<string, TaskRecord> }> => {
        const rows = (
          await c.query<Row>(
            'SELECT rec FROM tasks WHERE id = ANY($1::text[]) OR idempotency_key = ANY($2::text[])',
            [ids, keys],
          )
        ).rows;
        const byId = new Map<string, TaskRecord>();
        const byKey = new Map<string, TaskRecord>();
        for (const { rec } of rows) {
          byId.set(rec.id, rec);
          if (rec.idempotency_key !== undefined) byKey.set(rec.idempotency_key, rec);
        }
        return { byId, byKey };
      };
      let stored = await known();
      const out: { task: TaskRecord; created: boolean }[] = [];
      const fresh: TaskRecord[] = [];
      const batchIds = new Map<string, TaskRecord>();
      const batchKeys = new Map<string, TaskRecord>();
      for (const r of records) {
        const existing =
          stored.byId.get(r.id) ??
          batchIds.get(r.id) ??
          (r.idempotency_key !== undefined
            ? (batchKeys.get(r.idempotency_key) ?? stored.byKey.get(r.idempotency_key))
            : undefined);
        if (existing) {
          out.push({ task: existing, created: false });
          continue;
        }
        fresh.push(r);
        batchIds.set(r.id, r);
        if (r.idempotency_key !== undefined) batchKeys.set(r.idempotency_key, r);
        out.push({ task: r, created: true });
      }
      const inserted = await this.insertTasks(c, fresh);
      const fx = this.fx();
      noteTasks(
        fx,
        fresh.filter((r) => inserted.has(r.id)),
      );
      await fx.apply(c);
      if (inserted.size < fresh.length) {
        // Another server stored some of these meanwhile (same id or idempotency key): theirs stands.
        stored = await known();
        for (const o of out) {
          if (!o.created || inserted.has(o.task.id)) continue;
          const theirs =
            stored.byId.get(o.task.id) ??
            (o.task.idempotency_key !== undefined ? stored.byKey.get(o.task.idempotency_key) : undefined);
          if (theirs) {
            o.task = theirs;
            o.created = false;
          }
        }
      }
      return out;
    });
  }

  // ---- changing ------------------------------------------------------------------------------------

  async updateTasks(
    changes: readonly TaskChange[],
    options: { add?: readonly TaskRecord[]; atomic?: boolean } = {},
  ): Promise<TaskChangeOutcome[]> {
    const now = this.now();
    return this.db.tx(async (c) => {
      const recs = await this.lockTasks(
        c,
        changes.map((ch) => ch.id),
      );
      const outcomes: TaskChangeOutcome[] = [];
      const changed = new Map<string, Changed>();
      for (const ch of changes) {
        const rec = recs.get(ch.id);
        if (!rec) {
          outcomes.push({ ok: false, reason: 'not_found' });
          continue;
        }
        if (!ch.from.includes(rec.state) || changed.has(ch.id)) {
          outcomes.push({ ok: false, reason: 'state', task: rec });
          continue;
        }
        if (ch.holder && (rec.worker !== ch.holder.worker || rec.attempts !== ch.holder.attempt)) {
          outcomes.push({ ok: false, reason: 'holder', task: rec });
          continue;
        }
        const next = transition(rec, ch.to, ch.set, now);
        changed.set(ch.id, next);
        outcomes.push({ ok: true, task: next.rec, from: rec.state });
      }
      if (options.atomic && outcomes.some((o) => !o.ok)) {
        const refused = changes.filter((_, i) => !outcomes[i]!.ok).map((ch) => ch.id);
        throw conflict(`task ${refused.join(', ')} changed meanwhile; nothing was applied`, { ids: refused });
      }
      const add = options.add ?? [];
      for (const r of add) checkTaskRecord(r);
      await this.saveTasks(c, [...changed.values()]);
      const inserted = await this.insertTasks(c, add);
      const clash = add.find((r) => !inserted.has(r.id));
      if (clash) throw conflict(`task ${clash.id} already exists`);
      const fx = this.fx();
      noteTasks(fx, [...[...changed.values()].map((x) => x.rec), ...add]);
      await fx.apply(c);
      return outcomes;
    });
  }

  async claimTasks(
    targets: readonly ClaimTarget[],
    worker: string,
    max: number,
    lockMs: number,
  ): Promise<{ claimed: TaskRecord[]; expired: TaskRecord[] }> {
    const now = this.now();
    if (max <= 0 || targets.length === 0) return { claimed: [], expired: [] };
    const { where, params } = targetFilter(targets, 2);
    return this.db.tx(async (c) => {
      const claimed: Changed[] = [];
      const expired: Changed[] = [];
      while (claimed.length < max) {
        const need = max - claimed.length;
        const rows = (
          await c.query<Row>(
            `SELECT rec FROM tasks WHERE state = 'queued' AND kind = 'task' AND (${where})
             ORDER BY priority DESC, ready_seq LIMIT $1 FOR UPDATE SKIP LOCKED`,
            [need, ...params],
          )
        ).rows;
        const batch: Changed[] = [];
        for (const { rec } of rows) {
          if (rec.expires !== undefined && rec.expires <= now) {
            const x = transition(rec, 'expired', undefined, now);
            expired.push(x);
            batch.push(x);
            continue;
          }
          const x = transition(
            rec,
            'running',
            { worker, lock_until: now + lockMs, attempts: rec.attempts + 1, started_at: now },
            now,
          );
          claimed.push(x);
          batch.push(x);
        }
        // Written before the next round so the rows no longer match `state = 'queued'`.
        await this.saveTasks(c, batch);
        if (rows.length < need) break;
      }
      if (expired.length) {
        const fx = this.fx();
        noteTasks(
          fx,
          expired.map((x) => x.rec),
        );
        await fx.apply(c);
      }
      return { claimed: claimed.map((x) => x.rec), expired: expired.map((x) => x.rec) };
    });
  }

  async renewTaskLocks(
    worker: string,
    ids: readonly string[],
    lockMs: number,
  ): Promise<{ held: string[]; lost: string[] }> {
    const until = this.now() + lockMs;
    const rows = await this.db.query<{ id: string }>(
      `UPDATE tasks SET rec = jsonb_set(rec, '{lock_until}', to_jsonb($3::float8))
       WHERE id = ANY($1::text[]) AND state = 'running' AND worker = $2 RETURNING id`,
      [[...ids], worker, until],
    );
    const held = new Set(rows.map((r) => r.id));
    return { held: ids.filter((id) => held.has(id)), lost: ids.filter((id) => !held.has(id)) };
  }

  async setTaskProgress(
    id: string,
    worker: string,
    attempt: number,
    progress: TaskProgress,
  ): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE tasks SET rec = jsonb_set(rec, '{progress}', $4::jsonb)
       WHERE id = $1 AND state = 'running' AND worker = $2 AND attempts = $3 RETURNING id`,
      [id, worker, attempt, JSON.stringify(progress)],
    );
    return rows.length > 0;
  }

  // ---- reading -------------------------------------------------------------------------------------

  async getTask(id: string): Promise<TaskRecord | undefined> {
    const rows = await this.db.query<Row>('SELECT rec FROM tasks WHERE id = $1', [id]);
    return rows[0]?.rec;
  }

  async getTasks(ids: readonly string[]): Promise<(TaskRecord | undefined)[]> {
    const rows = await this.db.query<Row & { id: string }>(
      'SELECT id, rec FROM tasks WHERE id = ANY($1::text[])',
      [[...ids]],
    );
    const byId = new Map(rows.map((r) => [r.id, r.rec]));
    return ids.map((id) => byId.get(id));
  }

  async listTasks(filter: TaskFilter = {}): Promise<TaskRecord[]> {
    const rows = await this.db.query<Row>(
      `SELECT rec FROM tasks
       WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR queue = $2)
         AND ($3::text IS NULL OR name = $3) AND ($4::text IS NULL OR kind = $4)
         AND ($5::text IS NULL OR coalesce(rec->'tags', '[]'::jsonb) ? $5)
       ORDER BY created_seq DESC LIMIT $6`,
      [
        filter.state ?? null,
        filter.queue ?? null,
        filter.name ?? null,
        filter.kind ?? null,
        filter.tag ?? null,
        filter.limit ?? 100,
      ],
    );
    return rows.map((r) => r.rec);
  }

  async taskCounts(): Promise<TaskCounts> {
    const rows = await this.db.query<{ queue: string; name: string; state: TaskState; n: number }>(
      `SELECT queue, name, state, count(*) AS n FROM tasks WHERE kind = 'task' GROUP BY queue, name, state`,
    );
    const queues: Record<string, StateCounts> = {};
    const names: Record<string, StateCounts> = {};
    for (const r of rows) {
      (queues[r.queue] ??= zeroCounts())[r.state] += r.n;
      (names[r.name] ??= zeroCounts())[r.state] += r.n;
    }
    return { queues, names };
  }

  // ---- housekeeping --------------------------------------------------------------------------------

  async tickTasks(
    onStalled: (task: TaskRecord) => { to: TaskState; set?: TaskPatch } = () => ({ to: 'queued' }),
  ): Promise<TaskTickResult> {
    const now = this.now();
    const result = await this.db.tx(async (c) => {
      const queued: Changed[] = [];
      const expired: Changed[] = [];
      const stalled: Changed[] = [];
      // Due ETAs and retry delays; expiry wins over a due time that came later.
      const due = (
        await c.query<Row>(
          `SELECT rec FROM tasks WHERE state IN ('pending','retrying') AND eta <= $1
           ORDER BY eta, id FOR UPDATE SKIP LOCKED`,
          [now],
        )
      ).rows;
      for (const { rec } of due) {
        if (rec.expires !== undefined && rec.expires <= now)
          expired.push(transition(rec, 'expired', undefined, now));
        else queued.push(transition(rec, 'queued', undefined, now));
      }
      await this.saveTasks(c, [...queued, ...expired]);
      const lapsed = (
        await c.query<Row>(
          `SELECT rec FROM tasks WHERE state IN ('pending','queued','retrying') AND expires <= $1
           ORDER BY expires, id FOR UPDATE SKIP LOCKED`,
          [now],
        )
      ).rows.map(({ rec }) => transition(rec, 'expired', undefined, now));
      await this.saveTasks(c, lapsed);
      expired.push(...lapsed);
      // A running task whose lock ran out goes where the caller's retry policy says.
      const locks = (
        await c.query<Row>(
          `SELECT rec FROM tasks WHERE state = 'running' AND lock_until <= $1
           ORDER BY lock_until, id FOR UPDATE SKIP LOCKED`,
          [now],
        )
      ).rows;
      for (const { rec } of locks) {
        const d = onStalled(rec);
        stalled.push(transition(rec, d.to, d.set, now));
      }
      await this.saveTasks(c, stalled);
      const removed = (
        await c.query<{ id: string }>(
          `DELETE FROM tasks WHERE id IN (
             SELECT id FROM tasks WHERE state IN ${TERMINAL_STATES} AND delete_at <= $1 FOR UPDATE SKIP LOCKED)
           RETURNING id`,
          [now],
        )
      ).rows.length;
      const fx = this.fx();
      noteTasks(
        fx,
        [...queued, ...expired, ...stalled].map((x) => x.rec),
      );
      await fx.apply(c);
      return { queued, expired, stalled, removed };
    });
    const next = await this.db.query<{ due: number | null; later: number | null }>(
      `SELECT least((SELECT min(eta) FROM tasks WHERE state IN ('pending','retrying')),
                    (SELECT min(expires) FROM tasks WHERE state IN ('pending','queued','retrying'))) AS due,
              least((SELECT min(lock_until) FROM tasks WHERE state = 'running'),
                    (SELECT min(delete_at) FROM tasks WHERE state IN ${TERMINAL_STATES})) AS later`,
    );
    return {
      queued: result.queued.map((x) => x.rec),
      expired: result.expired.map((x) => x.rec),
      stalled: result.stalled.map((x) => x.rec),
      removed: result.removed,
      next_due_at: next[0]?.due ?? null,
      next_housekeeping_at: next[0]?.later ?? null,
    };
  }

  async deleteTasks(ids: readonly string[]): Promise<number> {
    const rows = await this.db.query(
      `DELETE FROM tasks WHERE id = ANY($1::text[]) AND state IN ${TERMINAL_STATES} RETURNING id`,
      [[...ids]],
    );
    return rows.length;
  }

  // ---- schedules -----------------------------------------------------------------------------------

  async putSchedule(schedule: ScheduleRecord): Promise<ScheduleRecord> {
    if (typeof schedule.id !== 'string' || schedule.id.length === 0)
      throw new MessagingError('BAD_REQUEST', 'schedule id must be a non-empty string');
    return this.db.tx(async (c) => {
      const rows = (
        await c.query<{ rec: ScheduleRecord }>(
          `INSERT INTO schedules (id, rec) VALUES ($1, $2::jsonb)
           ON CONFLICT (id) DO UPDATE SET rec = EXCLUDED.rec RETURNING rec`,
          [schedule.id, JSON.stringify(schedule)],
        )
      ).rows;
      const fx = this.fx();
      fx.note({ kind: 'schedules' });
      await fx.apply(c);
      return rows[0]!.rec;
    });
  }

  async deleteSchedule(id: string): Promise<void> {
    await this.db.tx(async (c) => {
      const rows = (await c.query('DELETE FROM schedules WHERE id = $1 RETURNING id', [id])).rows;
      if (rows.length === 0) throw new MessagingError('NOT_FOUND', `schedule "${id}" does not exist`);
      const fx = this.fx();
      fx.note({ kind: 'schedules' });
      await fx.apply(c);
    });
  }

  async getSchedule(id: string): Promise<ScheduleRecord | undefined> {
    const rows = await this.db.query<{ rec: ScheduleRecord }>('SELECT rec FROM schedules WHERE id = $1', [
      id,
    ]);
    return rows[0]?.rec;
  }

  async listSchedules(): Promise<ScheduleRecord[]> {
    const rows = await this.db.query<{ rec: ScheduleRecord }>(
      'SELECT rec FROM schedules ORDER BY id COLLATE "C"',
    );
    return rows.map((r) => r.rec);
  }

  /**
   * Exactly one caller per (schedule, tick), across every server: the schedule row's `last_tick` is
   * advanced by a compare-and-set UPDATE (`… WHERE last_tick < tick`). Concurrent claimers queue on the
   * row lock, and PostgreSQL re-evaluates the condition on the winner's committed row, so every other
   * claimer updates nothing and gets false. The run's task is inserted in the same transaction.
   */
  async claimScheduleTick(id: string, tick: number, task: TaskRecord): Promise<boolean> {
    return this.db.tx(async (c) => {
      const rows = (await c.query<{ rec: ScheduleRecord }>('SELECT rec FROM schedules WHERE id = $1', [id]))
        .rows;
      const s = rows[0]?.rec;
      if (!s) throw new MessagingError('NOT_FOUND', `schedule "${id}" does not exist`);
      if (!s.enabled || tick <= s.last_tick) return false;
      checkTaskRecord(task);
      const won = (
        await c.query(
          `UPDATE schedules SET rec = rec || jsonb_build_object(
             'last_tick', $2::float8, 'runs', (rec->>'runs')::integer + 1, 'last_task_id', $3::text)
           WHERE id = $1 AND (rec->>'enabled')::boolean AND (rec->>'last_tick')::float8 < $2 RETURNING id`,
          [id, tick, task.id],
        )
      ).rows;
      if (won.length === 0) return false;
      const inserted = await this.insertTasks(c, [task]);
      if (!inserted.has(task.id)) throw conflict(`task ${task.id} already exists`);
      const fx = this.fx();
      noteTasks(fx, [task]);
      await fx.apply(c);
      return true;
    });
  }
}

/** SQL for "a ready task of one of these targets", with its parameters numbered from `first`. */
function targetFilter(targets: readonly ClaimTarget[], first: number): { where: string; params: unknown[] } {
  const params: unknown[] = [];
  const p = (v: unknown): string => {
    params.push(v);
    return `$${first + params.length - 1}`;
  };
  const parts = targets.map((t) => {
    const q = `queue = ${p(t.queue)}`;
    if (t.names) return `(${q} AND name = ANY(${p([...t.names])}::text[]))`;
    if (t.exclude?.length) return `(${q} AND NOT (name = ANY(${p([...t.exclude])}::text[])))`;
    return `(${q})`;
  });
  return { where: parts.join(' OR '), params };
}
