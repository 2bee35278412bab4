/**
 * The key store for encryption at rest (`[security.encryption] key_store`): a directory of key files,
 * `<id>.key` holding 32 random bytes in base64, and `current` naming the key new data is written with.
 *
 * Key ids start with their creation time (`20250101T120000Z-3fa2c1`), so age-based rotation does not
 * depend on file times surviving a backup or copy. Old keys are never deleted by the server: records
 * written with them stay readable. Files are written 0600 and replaced atomically (write, then rename),
 * so a reader never sees half a key or a `current` pointing at a key not yet on disk.
 */
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

export const KEY_BYTES = 32;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const CURRENT = 'current';

export interface KeyInfo {
  id: string;
  createdAt: number;
  current: boolean;
}

/** `20250101T120000Z-3fa2c1`: creation time first so ids sort by age. */
export function newKeyId(now = Date.now()): string {
  const stamp = new Date(now)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

function createdAtOf(id: string, file: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z-/.exec(id);
  if (m) return Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
  // A key an operator made by hand: fall back to the file's modification time.
  return statSync(file).mtimeMs;
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

export class KeyStore {
  private keys = new Map<string, Buffer>();
  private created = new Map<string, number>();
  private currentId = '';

  private constructor(readonly dir: string) {}

  /**
   * Opens the store. With `create`, a missing or empty directory gets its first key; otherwise a store
   * without keys is an error, because reading existing data with a fresh key would fail anyway.
   */
  static open(dir: string, options: { create?: boolean } = {}): KeyStore {
    if (dir === '') throw new Error('[security.encryption] key_store is not set');
    const store = new KeyStore(dir);
    if (!existsSync(dir)) {
      if (!options.create) throw new Error(`key store ${dir} does not exist`);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    }
    store.reload();
    if (store.keys.size === 0) {
      if (!options.create) throw new Error(`key store ${dir} holds no keys (<id>.key files)`);
      store.rotate();
    }
    return store;
  }

  get current(): { id: string; key: Buffer } {
    const key = this.keys.get(this.currentId);
    if (!key) throw new Error(`key store ${this.dir}: the current key "${this.currentId}" is missing`);
    return { id: this.currentId, key };
  }

  get(id: string): Buffer | undefined {
    return this.keys.get(id);
  }

  /** Age of the current key in ms. */
  currentAgeMs(now = Date.now()): number {
    return now - (this.created.get(this.currentId) ?? now);
  }

  list(): KeyInfo[] {
    return [...this.keys.keys()]
      .map((id) => ({ id, createdAt: this.created.get(id) ?? 0, current: id === this.currentId }))
      .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }

  /**
   * Re-reads the directory: picks up keys and a `current` written by `messaging keys rotate` or another
   * node. Returns true when the current key changed. A malformed key file is an error naming the file.
   */
  reload(): boolean {
    const keys = new Map<string, Buffer>();
    const created = new Map<string, number>();
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.key')) continue;
      const id = name.slice(0, -4);
      if (!ID_RE.test(id)) continue;
      const file = join(this.dir, name);
      const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
      if (key.length !== KEY_BYTES) {
        throw new Error(`key file ${file} must hold ${KEY_BYTES} bytes in base64; it holds ${key.length}`);
      }
      keys.set(id, key);
      created.set(id, createdAtOf(id, file));
    }
    let current = '';
    const pointer = join(this.dir, CURRENT);
    if (existsSync(pointer)) current = readFileSync(pointer, 'utf8').trim();
    else if (keys.size > 0) {
      // No pointer (keys copied in by hand): the newest key is current.
      current = [...created.entries()].sort((a, b) => b[1] - a[1] || b[0].localeCompare(a[0]))[0]![0];
    }
    if (keys.size > 0 && !keys.has(current)) {
      throw new Error(
        `key store ${this.dir}: "current" names key "${current}", but ${current}.key is missing`,
      );
    }
    const changed = current !== this.currentId;
    this.keys = keys;
    this.created = created;
    this.currentId = current;
    return changed;
  }

  /** Writes a new random key and makes it current. Returns its id. */
  rotate(now = Date.now()): string {
    let id = newKeyId(now);
    while (this.keys.has(id)) id = newKeyId(now);
    const file = join(this.dir, `${id}.key`);
    writeAtomic(file, randomBytes(KEY_BYTES).toString('base64') + '\n');
    writeAtomic(join(this.dir, CURRENT), id + '\n');
    try {
      chmodSync(this.dir, 0o700);
    } catch {
      // Not ours to change (e.g. a mounted secret volume); the files themselves are 0600.
    }
    this.reload();
    return id;
  }
}
