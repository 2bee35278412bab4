import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { createStorage } from '../../src/storage/index.ts';
import { runStorageConformance } from './conformance.ts';

const root = mkdtempSync(join(tmpdir(), 'storage-file-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

for (const fsync of ['always', 'batch', 'none'] as const) {
  runStorageConformance(`file (fsync ${fsync})`, ({ now }) =>
    createStorage({
      engine: 'file',
      path: join(root, `c${n++}`),
      fsync,
      batchTimeoutMs: 2,
      segmentBytes: 64 * 1024,
      now,
    }),
  );
}
