/**
 * RAM per stored message of the file engine beyond its bounded body cache (`cache_mb`, set to 1 MiB
 * here so it stays out of the number): payloads stay on disk, so what remains is the index (typed-array
 * rows, heaps, key map). Target ~200 B/message; asserted < 400 B to stay clear of GC noise.
 * The number is printed so regressions show up in the log.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createStorage } from '../../src/storage/index.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const root = mkdtempSync(join(tmpdir(), 'storage-footprint-'));
after(() => rmSync(root, { recursive: true, force: true }));

function used(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  // Typed arrays live outside the JS heap: count them too.
  return m.heapUsed + m.arrayBuffers;
}

it(
  'file engine keeps well under 400 bytes of RAM per stored message (200k messages)',
  { timeout: 120_000 },
  async () => {
    const N = 200_000;
    const s = await createStorage({
      engine: 'file',
      path: join(root, 'fp'),
      fsync: 'none',
      cacheBytes: 1024 * 1024,
    });
    await s.declareQueue({ name: 'q' });
    const payload = new Uint8Array(200).fill(7);
    // Warm up code paths and caches so the baseline includes them.
    for (let i = 0; i < 2000; i++)
      await s.append('q', { topic: 'orders.eu.created', payload, headers: { k: 'v' } });
    const before = used();
    for (let i = 0; i < N; i += 1000) {
      await Promise.all(
        Array.from({ length: 1000 }, () =>
          s.append('q', { topic: 'orders.eu.created', payload, headers: { k: 'v' } }),
        ),
      );
    }
    const perMessage = (used() - before) / N;
    console.log(
      `file engine: ${perMessage.toFixed(1)} bytes of RAM per stored message (${N} messages of ${payload.length} B)`,
    );
    const st = await s.stats('q');
    assert.equal(st.depth, N + 2000);
    assert.ok(perMessage < 400, `${perMessage.toFixed(1)} B/message`);
    // And they are all still readable from disk.
    const ds = await s.take('q', 'c', 10);
    assert.equal(ds.length, 10);
    assert.deepEqual(ds[0]!.message.payload, payload);
    await s.close();
  },
);
