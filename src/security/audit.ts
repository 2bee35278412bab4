/**
 * The audit log (`[audit]`): one JSON object per line for each security-relevant event — who, what,
 * when, from where, and the outcome — in a file opened append-only.
 *
 * Each line is chained to the one before it: `prev` is the SHA-256 of the previous line's exact text,
 * and `hash` is the SHA-256 of this line's text up to (not including) its `hash` field. Editing,
 * deleting, inserting or reordering lines breaks the chain at the first affected line, which
 * `messaging audit verify FILE` names. Truncating the tail or rewriting the whole file is only visible
 * against an anchor kept elsewhere: the head hash, which the server logs when it stops and the verifier
 * prints.
 *
 * Writes are batched per event-loop turn into one `write` call so that a burst of data-access events
 * costs one system call; lines are whole, so a crash loses at most the last batch, never half a line.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  fsyncSync,
  mkdirSync,
  openSync,
  readSync,
  fstatSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';

export const AUDIT_EVENT_KINDS = [
  'authentication',
  'authorization',
  'configuration_change',
  'data_access',
  'data_modification',
  'system_start',
  'system_stop',
] as const;
export type AuditEventKind = (typeof AUDIT_EVENT_KINDS)[number];

export type AuditOutcome = 'success' | 'failure' | 'denied';

export interface AuditRecord {
  event: AuditEventKind;
  /** What was attempted: `connect`, `queue.declare`, `POST /v1/queues`, `token.issue`, … */
  action: string;
  outcome: AuditOutcome;
  /** Who: the authenticated subject and how it authenticated. */
  actor?: { subject: string; method: string };
  /** From where: client address, front door, connection id. */
  source?: { address?: string; transport?: string; connection?: number };
  /** On what. */
  resource?: { kind: string; name: string };
  /** Why it failed (an error code and message — never a credential). */
  reason?: string;
  details?: Record<string, unknown>;
}

/** `prev` of the first line of a new log. */
export const GENESIS = '0'.repeat(64);

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

export interface AuditOptions {
  /** Empty: records go to `logger` (unchained). */
  file: string;
  events: readonly string[];
  instanceId: string;
  logger: Logger;
  /** Level of records written to the main log. */
  level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
}

export class AuditLog {
  private readonly events: ReadonlySet<string>;
  private fd: number | undefined;
  private prev = GENESIS;
  private seq = 0;
  private buffer: string[] = [];
  private scheduled = false;
  private closed = false;
  /** `config_sha256` of the last system_start found in the file when it was opened. */
  lastConfigDigest: string | undefined;

  constructor(private readonly options: AuditOptions) {
    this.events = new Set(options.events);
    if (options.file !== '') this.open(options.file);
  }

  /** The hash of the last line written (or GENESIS): the anchor to keep elsewhere. */
  get head(): string {
    return this.prev;
  }

  enabled(event: AuditEventKind): boolean {
    return this.events.has(event);
  }

  record(record: AuditRecord): void {
    if (this.closed || !this.events.has(record.event)) return;
    const ts = new Date().toISOString();
    if (this.fd === undefined) {
      if (this.options.level !== 'silent') {
        this.options.logger[this.options.level](
          { audit: { ts, instance: this.options.instanceId, ...record } },
          `audit ${record.event} ${record.action} ${record.outcome}`,
        );
      }
      return;
    }
    const body = JSON.stringify({
      ts,
      seq: ++this.seq,
      instance: this.options.instanceId,
      ...record,
      prev: this.prev,
    });
    const hash = sha256(body);
    const line = `${body.slice(0, -1)},"hash":"${hash}"}`;
    this.prev = sha256(line);
    this.buffer.push(line);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes what is buffered now. */
  flush(): void {
    this.scheduled = false;
    if (this.fd === undefined || this.buffer.length === 0) return;
    const text = this.buffer.join('\n') + '\n';
    this.buffer = [];
    try {
      writeSync(this.fd, text);
    } catch (err) {
      // The audit trail is incomplete from here on: say so loudly, keep serving.
      this.options.logger.error({ err, file: this.options.file }, 'cannot write the audit log');
    }
  }

  close(): void {
    this.flush();
    this.closed = true;
    if (this.fd === undefined) return;
    try {
      fsyncSync(this.fd);
    } catch {
      // Best effort at shutdown; the lines were written.
    }
    closeSync(this.fd);
    this.fd = undefined;
  }

  /** Opens the file for appending and resumes the chain from its last line. */
  private open(file: string): void {
    mkdirSync(dirname(file), { recursive: true });
    const fd = openSync(file, 'a+', 0o600);
    const size = fstatSync(fd).size;
    if (size > 0) {
      const tail = Buffer.alloc(Math.min(size, 1024 * 1024));
      readSync(fd, tail, 0, tail.length, size - tail.length);
      let text = tail.toString('utf8');
      if (!text.endsWith('\n')) {
        // A torn last line (crash or full disk): keep it as evidence and start on a fresh line.
        writeSync(fd, '\n');
        text += '\n';
      }
      const lines = text.slice(0, -1).split('\n');
      const last = lines[lines.length - 1] ?? '';
      for (let i = lines.length - 1; i >= 0 && this.lastConfigDigest === undefined; i--) {
        if (!lines[i]!.includes('"event":"system_start"')) continue;
        try {
          const details = (JSON.parse(lines[i]!) as { details?: { config_sha256?: unknown } }).details;
          if (typeof details?.config_sha256 === 'string') this.lastConfigDigest = details.config_sha256;
        } catch {
          // A damaged line tells us nothing; the verifier reports it.
        }
      }
      this.prev = sha256(last);
      try {
        const seq = (JSON.parse(last) as { seq?: unknown }).seq;
        if (typeof seq === 'number') this.seq = seq;
      } catch {
        // Not JSON: the verifier will name that line; the chain continues from its hash.
      }
    }
    this.fd = fd;
  }
}

export type VerifyResult =
  { ok: true; lines: number; head: string } | { ok: false; line: number; reason: string; lines: number };

/** Checks one line against the chain; returns why it is bad, or undefined. */
function checkLine(
  line: string,
  prev: string,
  prevSeq: number | undefined,
): { reason?: string; seq?: number } {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return { reason: 'not a JSON object' };
  }
  if (!record || typeof record !== 'object' || Array.isArray(record)) return { reason: 'not a JSON object' };
  const hash = record.hash;
  const suffix = `,"hash":"${String(hash)}"}`;
  if (typeof hash !== 'string' || !/^[0-9a-f]{64}$/.test(hash) || !line.endsWith(suffix)) {
    return { reason: 'no "hash" as its last field' };
  }
  if (record.prev !== prev)
    return {
      reason:
        'its "prev" does not match the hash of the line before it (a line was changed, removed or inserted)',
    };
  if (sha256(line.slice(0, -suffix.length) + '}') !== hash)
    return { reason: 'its content does not match its "hash" (the line was changed)' };
  const seq = typeof record.seq === 'number' ? record.seq : undefined;
  if (prevSeq !== undefined && seq !== undefined && seq !== prevSeq + 1) {
    return { reason: `sequence number ${seq} follows ${prevSeq}` };
  }
  return { seq };
}

/** Verifies a whole audit file line by line (streaming, so any size works). */
export async function verifyAuditFile(file: string): Promise<VerifyResult> {
  const rl = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let prev = GENESIS;
  let prevSeq: number | undefined;
  let n = 0;
  for await (const line of rl) {
    n++;
    const { reason, seq } = checkLine(line, prev, prevSeq);
    if (reason) {
      rl.close();
      return { ok: false, line: n, reason, lines: n };
    }
    prev = sha256(line);
    prevSeq = seq;
  }
  return { ok: true, lines: n, head: prev };
}
