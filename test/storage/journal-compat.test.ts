/**
 * Journal compatibility: segment files written by an earlier version of the file engine (JSON record
 * heads, `fixtures/journal-v1`) must still recover, and a store that continues them with the current
 * record format must recover the mix. The fixture was made by publishing 40 messages (see `expected`)
 * into queue `orders` and every fourth also into stream `audit`, then settling the first six deliveries
 * in different ways; `now` is frozen at the fixture's clock so TTLs and delays read the same.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { createStorage, type Message } from '../../src/storage/index.ts';

const FIXTURE = new URL('./fixtures/journal-v1/', import.meta.url).pathname;
const root = mkdtempSync(join(tmpdir(), 'storage-compat-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** The clock of the fixture's last write. */
const NOW = 1_700_000_000_000 + 410;

/** Message i of the fixture, as it was published (timestamps were 10 ms apart from the start). */
function expected(i: number): Omit<Message, 'payload'> & { payload: string } {
  const t = 1_700_000_000_000 + 10 * (i + 1);
  const m: Omit<Message, 'payload'> & { payload: string } = {
    id: `msg-${String(i).padStart(3, '0')}`,
    topic: `orders.eu.${i}`,
    headers: i % 3 === 0 ? { k: `v${i}`, ümlaut: 'ñ' } : {},
    payload: `payload ${i} ` + 'x'.repeat(i * 3),
    priority: i % 5 === 0 ? 4 : 2,
    timestamp: t,
  };
  if (i % 7 === 0) {
    m.ttl_ms = 1_000_000_000_000;
    m.correlation_id = `c${i}`;
    m.type = 'event';
  }
  if (i === 11) {
    m.deliver_at = t + 60_000;
    m.reply_to = 'inbox.1';
    m.trace_id = '00-abc-def-01';
  }
  return m;
}

function plain(m: Message): Omit<Message, 'payload'> & { payload: string } {
  return { ...m, payload: new TextDecoder().decode(m.payload) };
}

async function checkFixtureState(dir: string): Promise<void> {
  const s = await createStorage({ engine: 'file', path: dir, fsync: 'always', now: () => NOW });
  try {
    const st = await s.stats('orders');
    // 40 published, 2 acked, 1 dead, 2 delayed; the one in flight at close is ready again.
    assert.equal(st.published_total, 40);
    assert.equal(st.acked_total, 2);
    assert.equal(st.dead_lettered_total, 1);
    assert.equal(st.depth, 35);
    assert.equal(st.delayed, 2);
    assert.equal(st.in_flight, 0);

    const dead = await s.listDeadLetters('orders');
    assert.equal(dead.length, 1);
    assert.equal(dead[0]!.reason, 'rejected');
    assert.equal(dead[0]!.last_error, 'bad order');
    assert.deepEqual(plain(dead[0]!.message), expected(15));

    const stream = await s.streamRead('audit', { from: 'earliest', max: 100 });
    assert.deepEqual(
      stream.messages.map((m) => m.message.id),
      [...Array.from({ length: 10 }, (_, k) => expected(4 * k).id), 'stream-only'],
    );
    assert.deepEqual(plain(stream.messages[1]!.message), expected(4));
    assert.equal(await s.getReaderPosition('audit', 'r1'), 3);

    // Priority 4 first (in FIFO order), then the rest; acked, dead and delayed ones are not there.
    const ds = await s.take('orders', 'check', 100);
    const gone = new Set([0, 5, 15, 11, 20]);
    const order = [
      ...[10, 25, 30, 35],
      ...Array.from({ length: 40 }, (_, i) => i).filter((i) => i % 5 !== 0 && !gone.has(i)),
    ];
    assert.deepEqual(
      ds.map((d) => d.message.id),
      order.map((i) => expected(i).id),
    );
    for (const d of ds) assert.deepEqual(plain(d.message), expected(Number(d.message.id.slice(4))));
    assert.equal(ds.find((d) => d.message.id === 'msg-010')!.delivery_count, 2);
  } finally {
    await s.close();
  }
}

it('recovers segment files of the JSON record format', async () => {
  const dir = join(root, 'as-is');
  cpSync(FIXTURE, dir, { recursive: true });
  await checkFixtureState(dir);
});

it('recovers old segments continued with records of the current format', async () => {
  const dir = join(root, 'continued');
  cpSync(FIXTURE, dir, { recursive: true });
  const s = await createStorage({ engine: 'file', path: dir, fsync: 'always', now: () => NOW });
  await s.declareQueue({ name: 'later' });
  const payload = new TextEncoder().encode('new format');
  await s.append('later', { id: 'new-1', topic: 'later.x', payload, headers: { a: 'b' }, priority: 5 });
  await s.append('later', { id: 'new-2', topic: 'later.x', payload, ttl_ms: 10_000_000 });
  const [d] = await s.take('later', 'c', 1);
  await s.ack('later', 'c', d!.delivery_id);
  await s.close();

  await checkFixtureState(dir);
  const again = await createStorage({ engine: 'file', path: dir, fsync: 'always', now: () => NOW });
  try {
    const st = await again.stats('later');
    assert.equal(st.depth, 1);
    assert.equal(st.acked_total, 1);
    const [m] = await again.take('later', 'c', 1);
    assert.equal(m!.message.id, 'new-2');
    assert.equal(m!.message.ttl_ms, 10_000_000);
    assert.deepEqual(m!.message.payload, payload);
  } finally {
    await again.close();
  }
});
