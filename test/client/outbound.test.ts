/**
 * The client's outbound queue on its own: frames are copied into a slab, flushed as views of it, and
 * sorted by a reconnect from the bytes alone.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  FrameType,
  encodeControl,
  encodePing,
  encodePong,
  encodePub,
  messageFrameSize,
  writeMessageFrame,
} from '../../src/protocol/index.ts';
import { FLUSH_THRESHOLD, Outbound } from '../../src/client/outbound.ts';

class Sink {
  readonly writes: Uint8Array[] = [];
  send(bytes: Uint8Array): void {
    this.writes.push(bytes);
  }
}

const text = new TextEncoder();

function pub(topic: string, payload: string): Uint8Array {
  return encodePub(0, topic, text.encode(payload));
}

describe('client Outbound', () => {
  it('writes the frames of one tick as one buffer, in order', async () => {
    const sink = new Sink();
    let ticks = 0;
    const out = new Outbound(() => {
      ticks++;
      out.flushTo(sink);
    });
    const frames = [pub('a', 'one'), encodePing(), pub('b', 'two')];
    for (const f of frames) assert.equal(out.push(f, true), false);
    assert.equal(
      out.size,
      frames.reduce((n, f) => n + f.length, 0),
    );
    await Promise.resolve();
    assert.equal(ticks, 1);
    assert.equal(sink.writes.length, 1);
    assert.deepEqual([...sink.writes[0]!], [...frames.flatMap((f) => [...f])]);
    assert.equal(out.size, 0);
    assert.equal(out.flushCount, 1);
  });

  it('never rewrites bytes it handed to the sink, across many flushes and slab changes', () => {
    const sink = new Sink();
    const out = new Outbound(() => {});
    const expected: number[][] = [];
    for (let round = 0; round < 200; round++) {
      const frame = pub(`t.${round}`, 'x'.repeat(round * 37));
      out.push(frame, false);
      out.flushTo(sink);
      expected.push([...frame]);
    }
    assert.deepEqual(
      sink.writes.map((w) => [...w]),
      expected,
    );
  });

  it('asks for a flush past the threshold and grows for frames larger than its slab', () => {
    const out = new Outbound(() => {});
    const big = encodePub(0, 'big', new Uint8Array(FLUSH_THRESHOLD + 10).fill(7));
    assert.equal(out.push(big, true), true);
    const sink = new Sink();
    out.flushTo(sink);
    assert.deepEqual(sink.writes[0], big);
  });

  it('encodes in place with reserve/commit', () => {
    const out = new Outbound(() => {});
    const topic = text.encode('in.place');
    const payload = text.encode('payload');
    const size = messageFrameSize(topic.length, 0, 0, payload.length, undefined);
    const at = out.reserve(size);
    const end = writeMessageFrame(
      out.buffer,
      at,
      FrameType.PUB,
      0,
      0,
      undefined,
      topic,
      new Uint8Array(0),
      new Uint8Array(0),
      payload,
    );
    assert.equal(end - at, size);
    out.commit(size, false);
    const sink = new Sink();
    out.flushTo(sink);
    assert.deepEqual(sink.writes[0], pub('in.place', 'payload'));
  });

  it('keeps publishes and commands for a new link, drops SUB, UNSUB, PONG and regenerated frames', () => {
    const out = new Outbound(() => {});
    const keep1 = pub('keep.one', '1');
    const keep2 = encodeControl(FrameType.CMD, 7, { op: 'x' });
    const keep3 = encodePing();
    out.push(encodeControl(FrameType.SUB, 3, { sid: 1, pattern: 'a' }), false);
    out.push(keep1, false);
    out.push(encodeControl(FrameType.CMD, 8, { op: 'queue.consume' }), false, true);
    out.push(encodePong(), false);
    out.push(keep2, false);
    out.push(encodeControl(FrameType.UNSUB, 0, { sid: 1 }), false);
    out.push(keep3, false);
    const held = out.takeForNewLink();
    assert.deepEqual(held, [keep1, keep2, keep3]);
    assert.equal(out.size, 0);
  });

  it('forgets regenerated marks once their frames are written', () => {
    const out = new Outbound(() => {});
    out.push(encodeControl(FrameType.CMD, 8, { op: 'queue.consume' }), false, true);
    out.flushTo(new Sink());
    // The next frame lands where the flushed one started; it is an ordinary frame and must be kept.
    const later = encodeControl(FrameType.CMD, 9, { op: 'queue.consume' });
    out.push(later, false);
    assert.deepEqual(out.takeForNewLink(), [later]);
  });
});
