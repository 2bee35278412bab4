/**
 * Compaction's rewrite step: the live messages of a segment as `carried` records stating their whole
 * current state (queue entries with delivery counts, delays, dead-letter facts; stream slots). Appended
 * at the end of the journal they supersede every older record about those messages, so the segment —
 * and the older records that changed them — can be deleted.
 */
import { copyBytes } from '../../protocol/bytes.ts';
import type { EntryFact, TaskRec } from '../internal/records.ts';
import type { MsgRec, State } from '../internal/state.ts';
import { decodeRecord, HEADER_BYTES } from './codec.ts';

/** Live messages stored in `seg`, whose file content is `buf`, as records to append. */
export function* liveMessages(state: State, seg: number, buf: Buffer): Generator<{ h: number; rec: MsgRec }> {
  const b = state.bodies;
  const e = state.entries;
  for (let off = HEADER_BYTES; off < buf.length;) {
    const r = decodeRecord(buf, off);
    if (!r.ok) return;
    const here = off;
    off += r.len;
    const rec = r.rec;
    if (rec.t !== 'msg') continue;
    // Still stored here? (It may have been settled, or carried already.)
    const h = state.keys.get(rec.key);
    if (h === undefined || b.seg[h] !== seg || b.off[h] !== here) continue;
    const queues: EntryFact[] = [];
    for (let s = b.firstEntry[h]!; s >= 0; s = e.next[s]!) {
      const q = state.queueOf(s);
      if (!q) continue;
      // In-flight entries are written as waiting: deliveries are not journaled and end with a restart.
      const fact: EntryFact = {
        q: q.spec.name,
        o: state.orderOf(s),
        dc: e.dc[s]!,
        nb: e.notBeforeOf(s),
        ex: e.expiresAtOf(s),
      };
      const dead = q.dead.get(rec.key);
      if (dead && dead.slot === s) {
        fact.dead = { reason: dead.reason, at: dead.at };
        if (dead.error !== undefined) fact.dead.error = dead.error;
      }
      queues.push(fact);
    }
    const streams = rec.streams.filter(({ s, seq }) => state.streams.get(s)?.get(seq) === h);
    // The payload is a view into the segment buffer; copy it so nothing keeps that buffer alive.
    const payload = copyBytes(rec.payload ?? new Uint8Array(0));
    yield { h, rec: { t: 'msg', key: rec.key, head: rec.head, payload, queues, streams, carried: true } };
  }
}

/** Task records whose whole state lies in `seg`, rewritten with their current state (in batches). */
export function* liveTasks(state: State, seg: number): Generator<TaskRec> {
  let batch: TaskRec['add'] & object = [];
  for (const e of state.tasks.byId.values()) {
    if (e.seg !== seg) continue;
    batch.push({ ...e.rec });
    if (batch.length === 256) {
      yield { t: 'task', add: batch, carried: true };
      batch = [];
    }
  }
  if (batch.length) yield { t: 'task', add: batch, carried: true };
}
