/**
 * DurableMessaging on the memory engine, with a clock of the test's own: the cases that depend on what
 * happens between two housekeeping ticks.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { DurableMessaging } from '../../src/core/durable.ts';
import { createStorage } from '../../src/storage/index.ts';
import type { Delivery } from '../../src/storage/types.ts';

it('a due message is delivered even when something else (stats, a scrape) promoted it before the tick', async () => {
  let t = 1_700_000_000_000;
  const now = () => t;
  const storage = await createStorage({ engine: 'memory', now });
  const durable = await DurableMessaging.open(storage, { routeCacheSize: 0, now });
  try {
    await durable.declareQueue({ name: 'q' });
    const got: Delivery[] = [];
    durable.consume('q', 'c1', 10, (d) => got.push(d));
    await durable.storeInQueue('q', { topic: 'q', payload: new Uint8Array([1]), deliver_at: t + 200 });
    assert.equal(got.length, 0, 'held back until due');
    // The clock passes the due time and a stats call promotes the message before the tick runs.
    t += 1000;
    assert.equal((await storage.stats('q')).depth, 1);
    // The next tick (≤ 1 s of real time) must still hand it to the waiting consumer.
    const deadline = Date.now() + 3000;
    while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(got.length, 1, 'the promoted message reached the idle consumer');
  } finally {
    await durable.close();
    await storage.close();
  }
});
