/**
 * Differential test: one random sequence of operations runs against the memory engine and the file
 * engine (tiny segments, so rolling, reclaim and carry-forward all happen, plus periodic close and
 * reopen). Both engines share the state machine, so any difference in what they return is a journaling,
 * replay or compaction bug.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { FileStorage } from '../../src/storage/file/file-storage.ts';
import { runDifferential } from './differential.ts';

const root = mkdtempSync(join(tmpdir(), 'storage-diff-'));
after(() => rmSync(root, { recursive: true, force: true }));

for (const seed of [11, 22, 33]) {
  it(`memory and file engines agree on a random workload (seed ${seed})`, { timeout: 120_000 }, async () => {
    const seen = { carried: 0, reclaimed: 0 };
    const logger = {
      warn: () => undefined,
      info: (_o: unknown, m?: string) => {
        if (m?.includes('carried forward')) seen.carried++;
        if (m?.includes('segment reclaimed')) seen.reclaimed++;
      },
    };
    const { reopened } = await runDifferential({
      seed,
      steps: 3000,
      open: (now) =>
        FileStorage.open({
          path: join(root, `s${seed}`),
          fsync: 'none',
          segmentBytes: 8 * 1024,
          now,
          compactRatio: 0.6,
          logger,
        }),
    });
    console.log(`seed ${seed}: ${JSON.stringify({ ...seen, reopened })}`);
    assert.ok(seen.carried > 0 && seen.reclaimed > 0 && reopened > 0, JSON.stringify(seen));
  });
}
