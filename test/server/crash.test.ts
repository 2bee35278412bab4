import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, truncateSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeControl, encodePub, FrameType, type Frame } from '../../src/protocol/index.ts';
import { startChildServer } from '../helpers/child-server.ts';
import { RawClient } from '../helpers/raw-client.ts';

async function cmd(
  c: RawClient,
  reqId: number,
  body: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  c.write(encodeControl(FrameType.CMD, reqId, body));
  const f = await c.next((x) => (x.type === FrameType.OK || x.type === FrameType.ERR) && x.reqId === reqId);
  if (f.type === FrameType.ERR) throw new Error(`${String(f.body.code)}: ${String(f.body.message)}`);
  return f.type === FrameType.OK ? f.body : {};
}

/** Drains `queue` with acks and returns the payloads seen. */
async function drainQueue(port: number, queue: string, expectAtLeast: number): Promise<string[]> {
  const c = await RawClient.ready(port);
  await cmd(c, 2, { op: 'queue.consume', queue, sid: 1, prefetch: 500 });
  const seen: string[] = [];
  const deadline = Date.now() + 20_000;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    let f: Frame;
    try {
      f = await c.next(
        (x) => x.type === FrameType.MSG,
        Math.min(remaining, seen.length >= expectAtLeast ? 500 : remaining),
      );
    } catch {
      break;
    }
    if (f.type !== FrameType.MSG) continue;
    seen.push(new TextDecoder().decode(f.payload));
    c.write(encodeControl(FrameType.CMD, 0, { op: 'queue.ack', queue, delivery_id: f.meta?.delivery_id }));
  }
  c.close();
  return seen;
}

for (const fsync of ['always', 'batch'] as const) {
  describe(`crash safety with fsync=${fsync}`, () => {
    it('every confirmed publish survives kill -9 in the middle of publishing', async () => {
      const dir = mkdtempSync(join(tmpdir(), `crash-${fsync}-`));
      try {
        let server = await startChildServer(dir, { MESSAGING_FSYNC: fsync });
        const admin = await RawClient.ready(server.port);
        await cmd(admin, 2, { op: 'queue.declare', name: 'jobs', bindings: ['jobs.#'] });
        admin.close();

        const pub = await RawClient.ready(server.port);
        const confirmed = new Set<string>();
        let reqId = 10;
        const pending = new Map<number, string>();
        pub.socket.on('data', () => {
          for (const f of pub.frames.splice(0)) {
            if (f.type === FrameType.OK && pending.has(f.reqId)) confirmed.add(pending.get(f.reqId)!);
          }
        });
        // Publish in windows of 50 outstanding confirms until well past 400 confirmed, then kill -9.
        const killAt = 400 + Math.floor(Math.random() * 200);
        while (confirmed.size < killAt) {
          while (pending.size - confirmed.size < 50) {
            const payload = `m-${reqId}`;
            pending.set(reqId, payload);
            pub.write(encodePub(reqId++, 'jobs.work', new TextEncoder().encode(payload)));
          }
          await new Promise((r) => setImmediate(r));
        }
        await server.kill('SIGKILL');
        pub.close();
        const confirmedAtKill = new Set(confirmed);
        assert.ok(confirmedAtKill.size >= 400);

        server = await startChildServer(dir, { MESSAGING_FSYNC: fsync });
        const seen = new Set(await drainQueue(server.port, 'jobs', confirmedAtKill.size));
        const lost = [...confirmedAtKill].filter((p) => !seen.has(p));
        assert.deepEqual(
          lost,
          [],
          `confirmed messages lost after kill -9 (${lost.length} of ${confirmedAtKill.size})`,
        );
        await server.kill('SIGTERM');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

describe('recovery', () => {
  it('unacknowledged messages come back after a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'unacked-'));
    try {
      let server = await startChildServer(dir);
      const c = await RawClient.ready(server.port);
      await cmd(c, 2, { op: 'queue.declare', name: 'q', bindings: ['q.#'] });
      for (let i = 0; i < 10; i++) c.write(encodePub(100 + i, 'q.x', new TextEncoder().encode(`u${i}`)));
      for (let i = 0; i < 10; i++) await c.next((f) => f.type === FrameType.OK && f.reqId === 100 + i);
      await cmd(c, 3, { op: 'queue.consume', queue: 'q', sid: 1, prefetch: 10 });
      for (let i = 0; i < 10; i++) await c.next((f) => f.type === FrameType.MSG); // taken, never acked
      await server.kill('SIGKILL');
      c.close();
      server = await startChildServer(dir);
      const again = await drainQueue(server.port, 'q', 10);
      assert.deepEqual(again.sort(), Array.from({ length: 10 }, (_, i) => `u${i}`).sort());
      await server.kill('SIGTERM');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a corrupt tail of the last segment is truncated with a warning and earlier messages are intact', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'torn-'));
    try {
      let server = await startChildServer(dir);
      const c = await RawClient.ready(server.port);
      await cmd(c, 2, { op: 'queue.declare', name: 'q', bindings: ['q.#'] });
      for (let i = 0; i < 20; i++) c.write(encodePub(100 + i, 'q.x', new TextEncoder().encode(`t${i}`)));
      for (let i = 0; i < 20; i++) await c.next((f) => f.type === FrameType.OK && f.reqId === 100 + i);
      c.close();
      await server.kill('SIGTERM');
      const segments = readdirSync(dir)
        .filter((f) => f.endsWith('.seg'))
        .sort();
      const last = join(dir, segments.at(-1)!);
      truncateSync(last, statSync(last).size - 3); // tear the last record
      appendFileSync(last, Buffer.from([0xde, 0xad])); // and leave garbage behind it
      server = await startChildServer(dir);
      assert.match(server.output(), /"level":"warn".*(torn|corrupt|truncat)/i);
      const seen = await drainQueue(server.port, 'q', 19);
      for (let i = 0; i < 19; i++) assert.ok(seen.includes(`t${i}`), `t${i} must survive`);
      await server.kill('SIGTERM');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
