/**
 * A real crash: a child process appends and acks with confirms, is killed with SIGKILL mid-flight, and
 * the reopened store must hold every message whose append was confirmed and not whose ack was confirmed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createStorage } from '../../src/storage/index.ts';

const root = mkdtempSync(join(tmpdir(), 'storage-crash-'));
after(() => rmSync(root, { recursive: true, force: true }));
const child = fileURLToPath(new URL('./fixtures/crash-child.ts', import.meta.url));
const repo = fileURLToPath(new URL('../..', import.meta.url));

interface Confirmed {
  appended: Set<string>;
  /** Acks started: such a message may be gone even if its ack was never confirmed. */
  ackTried: Set<string>;
  acked: Set<string>;
}

/** Runs the child until it confirmed `target` appends (or 20 s passed), then SIGKILLs it. */
function runAndKill(dir: string, fsync: string, target: number): Promise<Confirmed> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, dir, fsync], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const got: Confirmed = { appended: new Set(), ackTried: new Set(), acked: new Set() };
    let buf = '';
    let stderr = '';
    let killed = false;
    const kill = () => {
      if (killed) return;
      killed = true;
      p.kill('SIGKILL');
    };
    const timer = setTimeout(kill, 20_000);
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (chunk: string) => {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith('A ')) got.appended.add(line.slice(2));
        else if (line.startsWith('T ')) got.ackTried.add(line.slice(2));
        else if (line.startsWith('K ')) got.acked.add(line.slice(2));
      }
      if (got.appended.size >= target) kill();
    });
    p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    // 'close', not 'exit': only then has every line the child wrote before it died been read ('exit' can
    // come first, and a confirmed ack whose line was still in the pipe would look like a lost message).
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`child exited on its own (${code}): ${stderr}`));
      else resolve(got);
    });
  });
}

describe('file engine crash safety', () => {
  // `none` too: write() has returned, so the page cache holds it through a process crash (not a power loss).
  for (const fsync of ['always', 'batch', 'none'] as const) {
    it(`kill -9 loses no confirmed append or ack (fsync ${fsync})`, { timeout: 60_000 }, async () => {
      const dir = join(root, fsync);
      const confirmed = await runAndKill(dir, fsync, 1000 + Math.floor(Math.random() * 2000));
      assert.ok(confirmed.appended.size >= 100, `only ${confirmed.appended.size} appends confirmed`);
      const s = await createStorage({ engine: 'file', path: dir, fsync });
      const present = new Set<string>();
      for (;;) {
        const ds = await s.take('crash', 'check', 1000);
        if (!ds.length) break;
        for (const d of ds) {
          assert.ok(!present.has(d.message.id), `duplicate ${d.message.id}`);
          present.add(d.message.id);
          assert.equal(new TextDecoder().decode(d.message.payload), d.message.id.repeat(5));
        }
      }
      const missing = [...confirmed.appended].filter((id) => !present.has(id) && !confirmed.ackTried.has(id));
      const resurrected = [...confirmed.acked].filter((id) => present.has(id));
      // Both in one verdict: acks landing on the wrong messages would show as both at once.
      assert.deepEqual(
        { missing, resurrected },
        { missing: [], resurrected: [] },
        `${missing.length} confirmed messages lost, ${resurrected.length} confirmed acks lost ` +
          `(of ${confirmed.appended.size} appends, ${confirmed.ackTried.size} acks tried, ${confirmed.acked.size} confirmed)`,
      );
      console.log(
        `fsync ${fsync}: ${confirmed.appended.size} appends and ${confirmed.acked.size} acks confirmed before SIGKILL; ` +
          `${present.size} messages recovered`,
      );
      await s.close();
    });
  }
});
