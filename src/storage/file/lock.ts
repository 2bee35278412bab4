/**
 * One open store per directory: two writers would interleave their journals. Within a process a set of
 * open directories decides; across processes a LOCK file with the holder's pid, taken over when that
 * process is gone (a crashed server must be able to restart without manual cleanup).
 */
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { MessagingError } from '../../protocol/errors.ts';

const OPEN_DIRS = new Set<string>();

export class DirLock {
  private readonly key: string;
  private readonly path: string;
  private held = false;

  constructor(dir: string) {
    this.key = resolve(dir);
    this.path = join(dir, 'LOCK');
  }

  async acquire(): Promise<void> {
    if (OPEN_DIRS.has(this.key))
      throw new MessagingError('STORAGE_FAILURE', `storage at ${this.key} is already open in this process`);
    const holder = Number((await readFile(this.path, 'utf8').catch(() => '')).trim());
    if (holder > 0 && holder !== process.pid && alive(holder)) {
      throw new MessagingError('STORAGE_FAILURE', `storage at ${this.key} is in use by process ${holder}`);
    }
    OPEN_DIRS.add(this.key);
    this.held = true;
    await writeFile(this.path, `${process.pid}\n`);
  }

  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    OPEN_DIRS.delete(this.key);
    await unlink(this.path).catch(() => undefined);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as { code?: string }).code === 'EPERM';
  }
}
