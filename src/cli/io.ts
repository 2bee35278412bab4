/** Terminal I/O helpers shared by the commands. */
import type { Writable } from 'node:stream';

/**
 * Line output that batches writes per tick: printing one `write()` per message would make `sub` the
 * bottleneck at high rates. A closed pipe (`messaging sub x | head`) ends output quietly.
 */
export class LineWriter {
  private lines: string[] = [];
  private scheduled = false;
  private broken = false;

  constructor(private readonly stream: Writable) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') this.broken = true;
      else throw err;
    });
  }

  get isBroken(): boolean {
    return this.broken;
  }

  line(text: string): void {
    if (this.broken) return;
    this.lines.push(text);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes what is buffered; resolves once the stream accepted it. */
  flush(): Promise<void> {
    this.scheduled = false;
    if (this.lines.length === 0 || this.broken) return Promise.resolve();
    const text = this.lines.join('\n') + '\n';
    this.lines = [];
    return new Promise((resolve) => this.stream.write(text, () => resolve()));
  }
}

/** Reads all of stdin (for `<data>` given as `-`). */
export async function readStdin(stdin: NodeJS.ReadableStream = process.stdin): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

/** Prints to stderr (diagnostics never go to stdout, which carries data). */
export function note(text: string): void {
  process.stderr.write(text + '\n');
}

/**
 * Runs `onSignal` on the first Ctrl-C (or SIGTERM); a second one exits at once. Returns a function
 * that removes the handlers.
 */
export function onInterrupt(onSignal: () => void): () => void {
  let seen = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (seen) process.exit(signal === 'SIGINT' ? 130 : 143);
    seen = true;
    onSignal();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}
