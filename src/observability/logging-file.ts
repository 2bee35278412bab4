/**
 * `[logging] file.*`: a log file rotated by size, logrotate-style. The live file is always `file.path`
 * (so `tail -F` and the guide's filebeat glob `/var/log/messaging/*.log` keep working); when the next line
 * would take it past `rotate_size_mb`, it becomes `path.1`, the previous `path.1` becomes `path.2`, and so
 * on; `rotate_count` rotated files are kept and older ones deleted.
 *
 * Why not pino-roll: it never writes to the configured name (it writes `messaging.1.log`,
 * `messaging.2.log`, … with an ever-growing number) and writes asynchronously, so lines logged just
 * before a crash can be lost. Writes here are synchronous, like the stdout destination in logger.ts: a
 * line is in the kernel before the call returns.
 *
 * `reopen()` (called on SIGHUP) reopens `path` by name, for operators who rotate with an external
 * logrotate (`postrotate kill -HUP`) instead of the built-in rotation.
 */
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';

export interface RotatingFileOptions {
  readonly path: string;
  /** Rotate before a write that would take the file past this many bytes. */
  readonly maxBytes: number;
  /** Rotated files kept (`path.1` … `path.<keep>`). */
  readonly keep: number;
}

export class RotatingFile {
  readonly path: string;
  private readonly maxBytes: number;
  private readonly keep: number;
  private fd: number;
  private size: number;

  /** Creates the directory if needed and opens `path` for appending; throws if that is impossible. */
  constructor(options: RotatingFileOptions) {
    this.path = options.path;
    this.maxBytes = Math.max(1, options.maxBytes);
    this.keep = Math.max(1, options.keep);
    mkdirSync(dirname(this.path), { recursive: true });
    this.fd = openSync(this.path, 'a', 0o640);
    this.size = fstatSync(this.fd).size;
  }

  write(line: string): void {
    const bytes = Buffer.from(line);
    // A line larger than the limit still goes into a file of its own rather than being dropped.
    if (this.size > 0 && this.size + bytes.length > this.maxBytes) this.rotate();
    let written = 0;
    while (written < bytes.length) written += writeSync(this.fd, bytes, written);
    this.size += bytes.length;
  }

  /** Shifts `path` → `path.1` → … → `path.<keep>`, dropping what falls off the end, and starts afresh. */
  rotate(): void {
    closeSync(this.fd);
    // The oldest kept file falls off the end; so do leftovers of a larger rotate_count from an earlier
    // configuration (path.<keep+1> …).
    for (let i = this.keep; existsSync(`${this.path}.${i}`); i++) unlinkSync(`${this.path}.${i}`);
    for (let i = this.keep - 1; i >= 1; i--) {
      const from = `${this.path}.${i}`;
      if (existsSync(from)) renameSync(from, `${this.path}.${i + 1}`);
    }
    renameSync(this.path, `${this.path}.1`);
    this.fd = openSync(this.path, 'a', 0o640);
    this.size = 0;
  }

  /** Reopens `path` by name (after an external tool moved it away). */
  reopen(): void {
    const fd = openSync(this.path, 'a', 0o640);
    closeSync(this.fd);
    this.fd = fd;
    this.size = fstatSync(fd).size;
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }
}
