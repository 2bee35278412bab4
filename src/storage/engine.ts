/**
 * The `Storage` implementation every engine shares: the queue operations of `QueueEngine`, the task
 * operations of `TaskEngine`, plus dead letters and streams. Concrete engines add the journal and the keeping of message bodies.
 */
import { MessagingError } from '../protocol/errors.ts';
import type { QueueState } from './internal/queue-state.ts';
import { seqAtTime } from './internal/scheduling.ts';
import type { StreamState } from './internal/stream-state.ts';
import { TaskEngine } from './task-engine.ts';
import type {
  DeadLetter,
  Storage,
  StreamInfo,
  StreamReadResult,
  StreamSpec,
  StreamSpecInput,
  StreamStart,
} from './types.ts';
import { checkName, normalizeStreamSpec, sameSpec } from './validate.ts';

export type { BodyRef } from './queue-engine.ts';

export abstract class BaseStorage extends TaskEngine implements Storage {
  // ---- dead letters ------------------------------------------------------------------------------

  private deadKeys(q: QueueState): number[] {
    if (!q.deadUnordered) return [...q.dead.keys()];
    return [...q.dead.entries()].sort(([ka, a], [kb, b]) => a.at - b.at || ka - kb).map(([k]) => k);
  }

  async listDeadLetters(
    queue: string,
    options: { limit?: number; offset?: number } = {},
  ): Promise<DeadLetter[]> {
    await this.enter();
    const q = this.queue(queue);
    const limit = options.limit ?? 100;
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(limit) || limit < 0 || !Number.isSafeInteger(offset) || offset < 0) {
      throw new MessagingError('BAD_REQUEST', 'limit and offset must be non-negative integers');
    }
    const keys = this.deadKeys(q).slice(offset, offset + limit);
    const infos = keys.map((k) => q.dead.get(k)!);
    const messages = await this.load(
      infos.map((d, i) => ({ h: this.state.entries.body[d.slot]!, key: keys[i]! })),
    );
    const out: DeadLetter[] = [];
    infos.forEach((d, i) => {
      const message = messages[i];
      if (!message) return;
      const dl: DeadLetter = {
        id: String(keys[i]),
        queue,
        reason: d.reason,
        failures: d.failures,
        dead_lettered_at: d.at,
        message,
      };
      if (d.error !== undefined) dl.last_error = d.error;
      out.push(dl);
    });
    return out;
  }

  async replayDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    await this.enter();
    const q = this.queue(queue);
    let keys: number[];
    if (ids === undefined) keys = this.deadKeys(q);
    else {
      const wanted = new Set(ids);
      keys = [];
      const byMessageId: number[] = [];
      for (const id of ids) {
        const k = /^\d+$/.test(id) ? Number(id) : NaN;
        if (q.dead.has(k)) keys.push(k);
      }
      if (keys.length < wanted.size) {
        // Not every id is a dead-letter id: match the rest against message ids (loads the bodies).
        const all = this.deadKeys(q);
        const msgs = await this.load(
          all.map((k) => ({ h: this.state.entries.body[q.dead.get(k)!.slot]!, key: k })),
        );
        all.forEach((k, i) => {
          const id = msgs[i]?.id;
          if (id !== undefined && wanted.has(id)) byMessageId.push(k);
        });
      }
      keys = [...new Set([...keys, ...byMessageId])].filter((k) => q.dead.has(k));
    }
    if (keys.length === 0) return 0;
    const base = this.state.nextKey;
    this.emit({ t: 'replay', q: queue, items: keys.map((key, i) => ({ key, o: base + i })) });
    await this.durable();
    return keys.length;
  }

  async purgeDeadLetters(queue: string, options: { olderThanMs?: number } = {}): Promise<number> {
    await this.enter();
    const q = this.queue(queue);
    const cutoff = options.olderThanMs === undefined ? Infinity : this.now() - options.olderThanMs;
    const keys: number[] = [];
    for (const [k, d] of q.dead) if (d.at < cutoff) keys.push(k);
    if (keys.length === 0) return 0;
    this.emit({ t: 'dlpurge', q: queue, keys });
    await this.durable();
    return keys.length;
  }

  // ---- streams -----------------------------------------------------------------------------------

  async declareStream(input: StreamSpecInput): Promise<StreamSpec> {
    await this.enter();
    const spec = normalizeStreamSpec(input);
    const existing = this.state.streams.get(spec.name);
    if (existing) {
      if (sameSpec(existing.spec, spec)) return { ...existing.spec };
      throw new MessagingError('ALREADY_EXISTS', `stream "${spec.name}" exists with different settings`);
    }
    this.emit({ t: 'sdecl', spec });
    await this.durable();
    return { ...spec };
  }

  async deleteStream(name: string): Promise<void> {
    await this.enter();
    this.stream(name);
    this.emit({ t: 'sdel', s: name });
    await this.durable();
  }

  private info(s: StreamState): StreamInfo {
    return {
      ...s.spec,
      first_seq: s.first,
      last_seq: s.last,
      messages: s.count,
      bytes: s.bytes,
      readers: Object.fromEntries(s.readers),
    };
  }

  async listStreams(): Promise<StreamInfo[]> {
    await this.enter();
    this.retainAll();
    return [...this.state.streams.values()]
      .map((s) => this.info(s))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async getStream(name: string): Promise<StreamInfo> {
    await this.enter();
    const s = this.stream(name);
    if (this.enforceRetention(s, this.now())) this.flushInBackground();
    return this.info(s);
  }

  async streamRead(stream: string, options: { from: StreamStart; max: number }): Promise<StreamReadResult> {
    await this.enter();
    const s = this.stream(stream);
    const max = options.max;
    if (!Number.isSafeInteger(max) || max < 0)
      throw new MessagingError('BAD_REQUEST', 'max must be a non-negative integer');
    // Reads never return what retention has already condemned.
    if (this.enforceRetention(s, this.now())) this.flushInBackground();
    let seq = Math.max(this.startSeq(s, options.from), s.first);
    const refs: { seq: number; h: number; key: number }[] = [];
    for (seq = s.nextPresent(seq); refs.length < max && seq <= s.last; seq = s.nextPresent(seq + 1)) {
      const h = s.get(seq);
      refs.push({ seq, h, key: this.state.bodies.key[h]! });
    }
    const next = refs.length ? refs[refs.length - 1]!.seq + 1 : Math.min(seq, s.last + 1);
    const msgs = refs.length ? await this.load(refs) : [];
    const messages: StreamReadResult['messages'] = [];
    refs.forEach((r, i) => {
      const m = msgs[i];
      if (m) messages.push({ seq: r.seq, message: m });
    });
    return { messages, next_seq: next, first_seq: s.first, last_seq: s.last };
  }

  private startSeq(s: StreamState, from: StreamStart): number {
    if (from === 'earliest') return s.first;
    if (from === 'latest') return s.last + 1;
    if (from === 'last') return s.count > 0 ? s.last : s.last + 1;
    if (typeof from === 'object' && from !== null) {
      if ('seq' in from && Number.isSafeInteger(from.seq) && from.seq >= 0) return from.seq;
      if ('reader' in from && typeof from.reader === 'string') {
        const pos = s.readers.get(from.reader);
        if (pos === undefined)
          throw new MessagingError('NOT_FOUND', `reader "${from.reader}" does not exist`);
        return pos;
      }
      if ('time' in from && Number.isFinite(from.time)) return seqAtTime(this.state, s, from.time);
    }
    throw new MessagingError('BAD_REQUEST', 'from must be earliest, latest, last, {seq}, {time} or {reader}');
  }

  async setReaderPosition(stream: string, reader: string, nextSeq: number): Promise<void> {
    await this.enter();
    this.stream(stream);
    checkName('reader', reader);
    if (!Number.isSafeInteger(nextSeq) || nextSeq < 0)
      throw new MessagingError('BAD_REQUEST', 'position must be a non-negative integer');
    this.emit({ t: 'reader', s: stream, r: reader, pos: nextSeq });
    await this.durable();
  }

  async getReaderPosition(stream: string, reader: string): Promise<number | undefined> {
    await this.enter();
    return this.stream(stream).readers.get(reader);
  }

  async deleteReader(stream: string, reader: string): Promise<void> {
    await this.enter();
    const s = this.stream(stream);
    if (!s.readers.has(reader)) return;
    this.emit({ t: 'reader', s: stream, r: reader, pos: null });
    await this.durable();
  }
}
