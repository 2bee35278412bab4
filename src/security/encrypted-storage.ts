/**
 * Encryption at rest as a `Storage` decorator: payloads are sealed with AES-256-GCM on the way in and
 * opened on the way out, so every engine (memory, file, PostgreSQL) stores only ciphertext without
 * knowing it. Topics, headers and other metadata stay in the clear (routing and retention need them).
 *
 * Tasks carry user data in JSON fields: arguments, results, a chain step's `previous`, a group's
 * collected results, error messages and stacks, and the arguments of templates (workflow steps, chord
 * callbacks, schedules). Each such value is stored as one string, `$enc1:` + the base64 envelope of its
 * JSON; names, queues, states and times stay clear because the engines schedule by them.
 *
 * A sealed payload is an envelope: `magic (6) | key id length (1) | key id | IV (12) | tag (16) |
 * ciphertext`. The key id travels with every record, so records written before a rotation keep naming
 * the key they need. The header (magic and key id) is authenticated as additional data, so a record
 * cannot be re-labelled with another key id. A payload without the magic was stored before encryption was
 * switched on and is returned as is; a payload with the magic that does not decrypt is an error
 * (STORAGE_FAILURE naming the message and key), never garbage handed to a consumer.
 *
 * Start-up check: the data keeps a ledger of one verifier per key id ever used for it (a known text
 * sealed with that key) — `encryption-keys.json` in a file engine's directory, the `meta` table of a
 * PostgreSQL store (`Storage.readMeta`). Opening refuses to start when a listed key is missing from the
 * key store or is not the same key — the clear error at start the operator needs. A key's verifier is
 * written before the first record sealed with it.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessagingError } from '../protocol/errors.ts';
import type {
  ScheduleRecord,
  TaskChange,
  TaskChangeOutcome,
  TaskPatch,
  TaskRecord,
  TaskTemplate,
} from '../storage/task-types.ts';
import type {
  DeadLetter,
  Delivery,
  Message,
  MessageInput,
  Storage,
  StreamReadResult,
} from '../storage/types.ts';
import type { KeyStore } from './keystore.ts';

const MAGIC = Buffer.from([0xe7, 0x4d, 0x53, 0x47, 0x45, 0x01]); // "\xe7MSGE" v1
const IV_BYTES = 12;
const TAG_BYTES = 16;
const CHECK_FILE = 'encryption-keys.json';
const CHECK_TEXT = 'messaging-system key check';
/** Prefix of a sealed task value (a JSON string, so engines store it like any other value). */
const SEALED_VALUE = '$enc1:';

export function isSealed(payload: Uint8Array): boolean {
  if (payload.length < MAGIC.length + 1 + IV_BYTES + TAG_BYTES) return false;
  for (let i = 0; i < MAGIC.length; i++) if (payload[i] !== MAGIC[i]) return false;
  return true;
}

/** Seals `plain` with `key`, naming `keyId` in the envelope. */
export function seal(plain: Uint8Array, keyId: string, key: Buffer): Uint8Array {
  const id = Buffer.from(keyId, 'ascii');
  const header = Buffer.concat([MAGIC, Buffer.of(id.length), id]);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(header);
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return new Uint8Array(Buffer.concat([header, iv, cipher.getAuthTag(), body]));
}

/** The key id an envelope names. */
export function sealedKeyId(payload: Uint8Array): string {
  const len = payload[MAGIC.length]!;
  return Buffer.from(payload.buffer, payload.byteOffset + MAGIC.length + 1, len).toString('ascii');
}

/** Opens an envelope; throws (with no secret in the message) when the key is wrong or data changed. */
export function unseal(payload: Uint8Array, key: Buffer): Uint8Array {
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const headerLen = MAGIC.length + 1 + bytes[MAGIC.length]!;
  const iv = bytes.subarray(headerLen, headerLen + IV_BYTES);
  const tag = bytes.subarray(headerLen + IV_BYTES, headerLen + IV_BYTES + TAG_BYTES);
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(bytes.subarray(0, headerLen));
  decipher.setAuthTag(tag);
  return new Uint8Array(
    Buffer.concat([decipher.update(bytes.subarray(headerLen + IV_BYTES + TAG_BYTES)), decipher.final()]),
  );
}

export interface EncryptionOptions {
  /** false: decrypt-only — existing sealed records stay readable, new ones are stored in the clear. */
  encrypt: boolean;
  /** Where key verifiers are recorded; absent for the memory engine (nothing outlives the process). */
  ledger?: KeyLedger;
  /** Called before each seal (the key-rotation check; it may change the current key). */
  beforeSeal?: () => void;
}

/** Where the key verifiers of the stored data are kept (see the module comment). */
export interface KeyLedger {
  /** The data it speaks for, in errors: "/var/lib/messaging/queue", "PostgreSQL schema messaging". */
  readonly where: string;
  /** Key id → verifier; empty while nothing was ever encrypted. */
  load(): Promise<Record<string, string>>;
  add(id: string, verifier: string): Promise<void>;
}

/** `encryption-keys.json` in a file engine's directory. */
export function fileKeyLedger(dataDir: string): KeyLedger {
  const file = join(dataDir, CHECK_FILE);
  const read = (): Record<string, string> => {
    if (!existsSync(file)) return {};
    try {
      return (JSON.parse(readFileSync(file, 'utf8')) as { keys: Record<string, string> }).keys;
    } catch (err) {
      throw new Error(
        `${file} is not readable JSON (${(err as Error).message}); it lists the keys the stored data needs`,
      );
    }
  };
  return {
    where: dataDir,
    load: () => Promise.resolve(read()),
    add(id, verifier) {
      // Synchronous on purpose: the file is written before the caller's record is even handed over.
      const listed = { ...read(), [id]: verifier };
      const tmp = `${file}.tmp`;
      writeFileSync(tmp, JSON.stringify({ format: 1, keys: listed }, null, 2) + '\n', { mode: 0o600 });
      renameSync(tmp, file);
      return Promise.resolve();
    },
  };
}

const META_PREFIX = 'encryption-key:';

/** The engine's own named values (`Storage.readMeta`), when it has them: data kept away from this host. */
export function storageKeyLedger(storage: Storage, where: string): KeyLedger | undefined {
  const { readMeta, writeMeta } = storage;
  if (!readMeta || !writeMeta) return undefined;
  return {
    where,
    async load() {
      const rows = await readMeta.call(storage, META_PREFIX);
      return Object.fromEntries(Object.entries(rows).map(([k, v]) => [k.slice(META_PREFIX.length), v]));
    },
    // One row per key: servers rotating at the same time never overwrite each other's verifier.
    add: (id, verifier) => writeMeta.call(storage, META_PREFIX + id, verifier),
  };
}

/**
 * Checks a ledger's verifiers against the key store and returns the key ids it lists. Throws an Error
 * whose message tells the operator what to restore.
 */
export function checkStoredKeys(listed: Record<string, string>, where: string, keys: KeyStore): Set<string> {
  for (const [id, verifier] of Object.entries(listed)) {
    const key = keys.get(id);
    if (!key) {
      throw new Error(
        `the data in ${where} was encrypted with key "${id}", which is not in key_store ${keys.dir}: restore ${id}.key there`,
      );
    }
    let text: string;
    try {
      text = Buffer.from(unseal(Buffer.from(verifier, 'base64'), key)).toString('utf8');
    } catch {
      text = '';
    }
    if (text !== CHECK_TEXT) {
      throw new Error(
        `key "${id}" in key_store ${keys.dir} is not the key the data in ${where} was encrypted with (wrong key file)`,
      );
    }
  }
  return new Set(Object.keys(listed));
}

/**
 * The decorator. Only the methods that carry message payloads or task values are overridden; every other method
 * (including ones added to `Storage` later) is forwarded to the engine unchanged by a Proxy, so the
 * decorator cannot fall behind the interface.
 */
export class EncryptedStorage {
  /** A verifier being recorded: writes wait for it, so no record is stored before its key is listed. */
  private recording: Promise<void> | undefined;

  constructor(
    private readonly inner: Storage,
    private readonly keys: KeyStore,
    private readonly options: EncryptionOptions,
    /** Key ids the ledger already lists. */
    private readonly checked = new Set<string>(),
  ) {}

  /** Checks the ledger against the key store (the start-up check), then decorates `inner`. */
  static async open(inner: Storage, keys: KeyStore, options: EncryptionOptions): Promise<EncryptedStorage> {
    const ledger = options.ledger;
    const checked = ledger ? checkStoredKeys(await ledger.load(), ledger.where, keys) : new Set<string>();
    return new EncryptedStorage(inner, keys, options, checked);
  }

  /** Resolves once the verifier of every key used so far is recorded. */
  private settled(): Promise<void> | undefined {
    return this.recording;
  }

  /** The engine seen through the decorator. */
  asStorage(): Storage {
    const overrides: Partial<Storage> = {
      // Writes: seal the payload (and wait for a new key's verifier, if one is being recorded).
      append: async (queues, message) => {
        const sealed = this.sealInput(message);
        await this.settled();
        return this.inner.append(queues, sealed);
      },
      publish: async (targets, message) => {
        const sealed = this.sealInput(message);
        await this.settled();
        return this.inner.publish(targets, sealed);
      },
      // Sealed like `publish`; while a new key's verifier is being recorded, the caller falls back to it.
      publishNow: (targets, message) => {
        if (!this.inner.publishNow) return undefined;
        const sealed = this.sealInput(message);
        return this.settled() ? undefined : this.inner.publishNow(targets, sealed);
      },
      streamAppend: async (streams, message) => {
        const sealed = this.sealInput(message);
        await this.settled();
        return this.inner.streamAppend(streams, sealed);
      },
      // Reads: open it again.
      take: async (queue, consumerId, max) =>
        (await this.inner.take(queue, consumerId, max)).map((d: Delivery) => ({
          ...d,
          message: this.open(d.message),
        })),
      listDeadLetters: async (queue, options) =>
        (await this.inner.listDeadLetters(queue, options)).map((d: DeadLetter) => ({
          ...d,
          message: this.open(d.message),
        })),
      streamRead: async (stream, options): Promise<StreamReadResult> => {
        const result = await this.inner.streamRead(stream, options);
        return { ...result, messages: result.messages.map((m) => ({ ...m, message: this.open(m.message) })) };
      },
      ...this.taskOverrides(),
    };
    return new Proxy(this.inner, {
      get(target, prop) {
        const own = (overrides as Record<PropertyKey, unknown>)[prop];
        if (own !== undefined) return own;
        const value: unknown = Reflect.get(target, prop, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  private sealInput(message: MessageInput): MessageInput {
    if (!this.options.encrypt) return message;
    const { id, key } = this.currentKey();
    return { ...message, payload: seal(message.payload, id, key) };
  }

  private currentKey(): { id: string; key: Buffer } {
    this.options.beforeSeal?.();
    const current = this.keys.current;
    if (!this.checked.has(current.id)) this.recordKey(current.id, current.key);
    return current;
  }

  /** The task methods: records, patches and templates sealed on the way in, opened on the way out. */
  private taskOverrides(): Partial<Storage> {
    const inner = this.inner;
    const openAll = (ts: TaskRecord[]): TaskRecord[] => ts.map((t) => this.openTask(t));
    const openOutcome = (o: TaskChangeOutcome): TaskChangeOutcome =>
      o.task ? { ...o, task: this.openTask(o.task) } : o;
    return {
      submitTasks: async (records) => {
        const sealed = records.map((r) => this.sealTask(r));
        await this.settled();
        return (await inner.submitTasks(sealed)).map((r) => ({ ...r, task: this.openTask(r.task) }));
      },
      updateTasks: async (changes, options) => {
        const sealed = changes.map((c) => this.sealChange(c));
        const add = options?.add ? { ...options, add: options.add.map((r) => this.sealTask(r)) } : options;
        await this.settled();
        return (await inner.updateTasks(sealed, add)).map(openOutcome);
      },
      claimTasks: async (targets, worker, max, lockMs) => {
        const r = await inner.claimTasks(targets, worker, max, lockMs);
        return { claimed: openAll(r.claimed), expired: openAll(r.expired) };
      },
      getTask: async (id) => {
        const t = await inner.getTask(id);
        return t && this.openTask(t);
      },
      getTasks: async (ids) => (await inner.getTasks(ids)).map((t) => t && this.openTask(t)),
      listTasks: async (filter) => openAll(await inner.listTasks(filter)),
      tickTasks: async (onStalled) => {
        const r = await inner.tickTasks(
          onStalled &&
            ((t) => {
              const move = onStalled(this.openTask(t));
              return move.set ? { ...move, set: this.sealPatch(move.set) } : move;
            }),
        );
        return { ...r, queued: openAll(r.queued), expired: openAll(r.expired), stalled: openAll(r.stalled) };
      },
      putSchedule: async (s) => {
        const sealed = this.sealSchedule(s);
        await this.settled();
        return this.openSchedule(await inner.putSchedule(sealed));
      },
      getSchedule: async (id) => {
        const s = await inner.getSchedule(id);
        return s && this.openSchedule(s);
      },
      listSchedules: async () => (await inner.listSchedules()).map((s) => this.openSchedule(s)),
      claimScheduleTick: async (id, tick, task) => {
        const sealed = this.sealTask(task);
        await this.settled();
        return inner.claimScheduleTick(id, tick, sealed);
      },
    };
  }

  /** A JSON value as `$enc1:<base64 envelope>`; undefined stays undefined (absent fields stay absent). */
  private sealValue(v: unknown): unknown {
    if (v === undefined || !this.options.encrypt) return v;
    const { id, key } = this.currentKey();
    const sealed = seal(Buffer.from(JSON.stringify(v), 'utf8'), id, key);
    return SEALED_VALUE + Buffer.from(sealed).toString('base64');
  }

  private openValue(v: unknown, what: string): unknown {
    if (typeof v !== 'string' || !v.startsWith(SEALED_VALUE)) return v;
    const envelope = Buffer.from(v.slice(SEALED_VALUE.length), 'base64');
    if (!isSealed(envelope)) return v;
    return JSON.parse(Buffer.from(this.unsealWith(envelope, what)).toString('utf8')) as unknown;
  }

  /** The user-data fields of a record or patch, each through `f` (other fields untouched). */
  private mapValues<T extends TaskPatch>(t: T, f: (v: unknown) => unknown): T {
    const out: T = { ...t };
    if ('args' in t) out.args = f(t.args);
    if ('result' in t) out.result = f(t.result);
    if ('previous' in t) out.previous = f(t.previous);
    if (Array.isArray(t.results)) out.results = t.results.map(f);
    if (t.error) {
      const e = { ...t.error, message: f(t.error.message) as string };
      if (t.error.stack !== undefined) e.stack = f(t.error.stack) as string;
      out.error = e;
    }
    const template = (x: TaskTemplate): TaskTemplate => ('args' in x ? { ...x, args: f(x.args) } : x);
    if (t.steps) out.steps = t.steps.map(template);
    if (t.callback) out.callback = template(t.callback);
    if (t.collect) out.collect = { ...t.collect, value: f(t.collect.value) };
    return out;
  }

  private sealPatch(p: TaskPatch): TaskPatch {
    return this.options.encrypt ? this.mapValues(p, (v) => this.sealValue(v)) : p;
  }

  private sealTask(t: TaskRecord): TaskRecord {
    return this.options.encrypt ? this.mapValues(t, (v) => this.sealValue(v)) : t;
  }

  private sealChange(c: TaskChange): TaskChange {
    return c.set ? { ...c, set: this.sealPatch(c.set) } : c;
  }

  private openTask(t: TaskRecord): TaskRecord {
    return this.mapValues(t, (v) => this.openValue(v, `task ${t.id}`));
  }

  private sealSchedule(s: ScheduleRecord): ScheduleRecord {
    if (!this.options.encrypt || !('args' in s.task)) return s;
    return { ...s, task: { ...s.task, args: this.sealValue(s.task.args) } };
  }

  private openSchedule(s: ScheduleRecord): ScheduleRecord {
    if (!('args' in s.task)) return s;
    return { ...s, task: { ...s.task, args: this.openValue(s.task.args, `schedule ${s.id}`) } };
  }

  /** Lists `id` in the ledger; writes sealed with it wait for this (`settled`). */
  private recordKey(id: string, key: Buffer): void {
    this.checked.add(id);
    const ledger = this.options.ledger;
    if (!ledger) return;
    const verifier = Buffer.from(seal(Buffer.from(CHECK_TEXT, 'utf8'), id, key)).toString('base64');
    const recording: Promise<void> = (this.recording ?? Promise.resolve())
      .then(() => ledger.add(id, verifier))
      .then(
        () => {
          if (this.recording === recording) this.recording = undefined;
        },
        (err: unknown) => {
          // Not listed after all: the next write tries again, and this one fails with the reason.
          this.checked.delete(id);
          if (this.recording === recording) this.recording = undefined;
          throw new MessagingError(
            'STORAGE_FAILURE',
            `could not record encryption key "${id}" with the data`,
            {
              cause: err,
            },
          );
        },
      );
    // A failure is reported to the writes that wait for it; nobody waiting is no reason to crash.
    recording.catch(() => undefined);
    this.recording = recording;
  }

  private open(message: Message): Message {
    if (!isSealed(message.payload)) return message;
    return { ...message, payload: this.unsealWith(message.payload, `message ${message.id}`) };
  }

  /** Opens an envelope with the key it names; STORAGE_FAILURE naming `what` when that is impossible. */
  private unsealWith(envelope: Uint8Array, what: string): Uint8Array {
    const keyId = sealedKeyId(envelope);
    let key = this.keys.get(keyId);
    if (!key) {
      // Perhaps rotated in by another node or the CLI since we last looked.
      this.keys.reload();
      key = this.keys.get(keyId);
    }
    if (!key) {
      throw new MessagingError(
        'STORAGE_FAILURE',
        `${what} was encrypted with key "${keyId}", which is not in the key store`,
      );
    }
    try {
      return unseal(envelope, key);
    } catch {
      throw new MessagingError(
        'STORAGE_FAILURE',
        `${what} does not decrypt with key "${keyId}": wrong key or corrupted data`,
      );
    }
  }
}
