import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FrameParser, FrameType, UlidGenerator, ulidToString, type Frame } from '../../src/protocol/index.ts';
import { OutboundBuffer } from '../../src/server/outbound.ts';
import type { Session } from '../../src/server/session.ts';
import { deliveryFields, sendDelivery, sendStored } from '../../src/server/stored-frames.ts';
import type { Delivery, Message } from '../../src/storage/types.ts';

/** The part of a Session these functions use, over a real outbound buffer. */
function sink() {
  const out = new OutboundBuffer();
  const session = {
    reserve: (n: number) => out.reserve(n),
    get outBuffer() {
      return out.buffer;
    },
    commit: (n: number) => out.commit(n),
  } as unknown as Session;
  const frames = (): Frame[] => {
    const got: Frame[] = [];
    new FrameParser(1 << 20, (f) => got.push(f)).push(out.take() ?? new Uint8Array(0));
    return got;
  };
  const bytes = () => Buffer.from(out.take() ?? new Uint8Array(0));
  return { session, frames, bytes };
}

const ids = new UlidGenerator();
function message(extra: Partial<Message> = {}): Message {
  return {
    id: ulidToString(ids.next(1_700_000_000_000)),
    topic: 'orders.created',
    headers: {},
    payload: Buffer.from('payload bytes'),
    priority: 3,
    timestamp: 1_700_000_000_123,
    ...extra,
  };
}

describe('MSG frames of stored messages', () => {
  it('writes a plain delivery byte by byte exactly as the general path writes it', () => {
    const fields = deliveryFields('orders');
    for (const d of [
      { queue: 'orders', delivery_id: 'ab12cd34-1', delivery_count: 1, message: message() },
      {
        queue: 'orders',
        delivery_id: 'ab12cd34-zz9',
        delivery_count: 123456,
        message: message({ priority: 0, timestamp: 0 }),
      },
    ] satisfies Delivery[]) {
      const fast = sink();
      sendDelivery(fast.session, 7, d, fields);
      const general = sink();
      const tail = `${fields.json}${JSON.stringify(d.delivery_id)},"delivery_count":${d.delivery_count}`;
      sendStored(general.session, 7, d.message, tail);
      assert.deepEqual(fast.bytes(), general.bytes());
    }
  });

  it('carries every field a consumer reads, on the byte path and on the general path', () => {
    const fields = deliveryFields('q "quoted"');
    const plain = message();
    const rich = message({ headers: { k: 'v' }, ttl_ms: 500, correlation_id: 'c-1', reply_to: 'inbox.1' });
    const s = sink();
    sendDelivery(
      s.session,
      1,
      { queue: 'q', delivery_id: 'e1-1', delivery_count: 2, message: plain },
      fields,
    );
    sendDelivery(s.session, 1, { queue: 'q', delivery_id: 'e1-2', delivery_count: 1, message: rich }, fields);
    sendDelivery(
      s.session,
      1,
      { queue: 'q', delivery_id: 'odd "id"', delivery_count: 1, message: plain },
      fields,
    );
    const [a, b, c] = s.frames();
    assert.ok(a?.type === FrameType.MSG && b?.type === FrameType.MSG && c?.type === FrameType.MSG);
    assert.deepEqual(a.meta, {
      priority: 3,
      timestamp: 1_700_000_000_123,
      queue: 'q "quoted"',
      delivery_id: 'e1-1',
      delivery_count: 2,
    });
    assert.equal(ulidToString(a.msgId!), plain.id);
    assert.equal(Buffer.from(a.payload).toString(), 'payload bytes');
    assert.equal(a.topic, 'orders.created');
    assert.deepEqual(b.meta?.headers, { k: 'v' });
    assert.equal(b.meta?.ttl_ms, 500);
    assert.equal(b.meta?.correlation_id, 'c-1');
    assert.equal(b.reply, 'inbox.1');
    assert.equal(c.meta?.delivery_id, 'odd "id"', 'an id JSON must escape takes the general path');
  });
});
