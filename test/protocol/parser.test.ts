import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  FrameParser,
  FrameType,
  MessagingError,
  encodeControl,
  encodeMsg,
  encodePing,
  encodePong,
  encodePub,
  FLAG_HAS_ID,
  messageFrameSize,
  setMsgSid,
  writeMessageFrame,
  writeConfirmFrame,
  CONFIRM_FRAME_BYTES,
  PUB_FLAG_REQUEST,
  type Frame,
} from '../../src/protocol/index.ts';
import { renderProtocolDoc } from '../../scripts/gen-docs.ts';

const MAX = 1024 * 1024;

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Feeds `bytes` in the given chunk sizes and returns the frames, copying payloads (they are views). */
function parseInChunks(bytes: Uint8Array, sizes: number[]): Frame[] {
  const frames: Frame[] = [];
  const parser = new FrameParser(MAX, (f) => {
    if (f.type === FrameType.PUB || f.type === FrameType.MSG)
      frames.push({ ...f, payload: f.payload.slice() });
    else frames.push(f);
  });
  let o = 0;
  let k = 0;
  while (o < bytes.length) {
    const size = sizes[k++ % sizes.length]!;
    parser.push(bytes.subarray(o, o + size));
    o += size;
  }
  assert.ok(parser.idle, 'parser should hold no partial frame at the end');
  return frames;
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const utf8 = (s: string) => new TextEncoder().encode(s);

const sample: Uint8Array[] = [
  encodeControl(FrameType.HELLO, 1, { version: 1, client: 'test' }),
  encodePub(0, 'orders.eu.created', utf8('hello')),
  encodePub(7, 'a.b', utf8('x'.repeat(3000)), {
    reply: '_INBOX.abc.1',
    flags: PUB_FLAG_REQUEST,
    meta: { headers: { k: 'v', ünï: 'çødé' }, priority: 4 },
  }),
  encodePing(),
  encodePong(),
  encodeMsg(42, 'délivré.topic', new Uint8Array(0)),
  encodeControl(FrameType.SUB, 2, { sid: 1, pattern: 'orders.#', queue: 'g' }),
  encodeControl(FrameType.CMD, 0, {}),
];
const stream = concat(sample);

function expectedShape(frames: Frame[]): unknown[] {
  return frames.map((f) =>
    JSON.stringify(f, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v)),
  );
}

describe('FrameParser', () => {
  const whole = parseInChunks(stream, [stream.length]);

  it('decodes every frame type with all fields', () => {
    assert.equal(whole.length, sample.length);
    const hello = whole[0]!;
    assert.deepEqual(hello, { type: FrameType.HELLO, reqId: 1, body: { version: 1, client: 'test' } });
    const pub = whole[2]!;
    assert.equal(pub.type, FrameType.PUB);
    if (pub.type !== FrameType.PUB) return;
    assert.equal(pub.reqId, 7);
    assert.equal(pub.flags, PUB_FLAG_REQUEST);
    assert.equal(pub.topic, 'a.b');
    assert.equal(pub.reply, '_INBOX.abc.1');
    assert.deepEqual(pub.meta, { headers: { k: 'v', ünï: 'çødé' }, priority: 4 });
    assert.equal(pub.payload.length, 3000);
    const msg = whole[5]!;
    assert.ok(msg.type === FrameType.MSG && msg.sid === 42 && msg.topic === 'délivré.topic');
    assert.deepEqual(whole[3], { type: FrameType.PING });
    assert.deepEqual(whole[7], { type: FrameType.CMD, reqId: 0, body: {} });
  });

  it('gives the same frames when fed one byte at a time', () => {
    assert.deepEqual(expectedShape(parseInChunks(stream, [1])), expectedShape(whole));
  });

  it('gives the same frames on 500 random splits', () => {
    const random = rng(12345);
    for (let run = 0; run < 500; run++) {
      const sizes = Array.from({ length: 16 }, () => 1 + Math.floor(random() * 64));
      assert.deepEqual(expectedShape(parseInChunks(stream, sizes)), expectedShape(whole), `split ${sizes}`);
    }
  });

  it('re-targets an encoded MSG at another sid', () => {
    const frame = encodeMsg(1, 't', utf8('p'));
    setMsgSid(frame, 0xdeadbeef);
    const [msg] = parseInChunks(frame, [frame.length]);
    assert.ok(msg && msg.type === FrameType.MSG && msg.sid === 0xdeadbeef);
  });

  it('checks the length before allocating: a huge length prefix is FRAME_TOO_LARGE', () => {
    const parser = new FrameParser(1024, () => {});
    assert.throws(
      () => parser.push(Uint8Array.of(0x7f, 0xff, 0xff, 0xff, 0x10)),
      (e: MessagingError) => e.code === 'FRAME_TOO_LARGE' && /exceeds the maximum of 1024/.test(e.message),
    );
    // a poisoned parser refuses further input
    assert.throws(
      () => parser.push(Uint8Array.of(0)),
      (e: MessagingError) => e.code === 'PROTOCOL_ERROR',
    );
  });

  it('reports a huge length split byte by byte too', () => {
    const parser = new FrameParser(1024, () => {});
    parser.push(Uint8Array.of(0x01));
    parser.push(Uint8Array.of(0x00));
    parser.push(Uint8Array.of(0x00));
    assert.throws(
      () => parser.push(Uint8Array.of(0x00)),
      (e: MessagingError) => e.code === 'FRAME_TOO_LARGE',
    );
  });

  it('rejects a zero-length frame', () => {
    const parser = new FrameParser(MAX, () => {});
    assert.throws(
      () => parser.push(Uint8Array.of(0, 0, 0, 0)),
      (e: MessagingError) => e.code === 'PROTOCOL_ERROR',
    );
  });

  it('rejects an unknown frame type with its byte in the message', () => {
    const parser = new FrameParser(MAX, () => {});
    assert.throws(
      () => parser.push(Uint8Array.of(0, 0, 0, 1, 0x7e)),
      (e: MessagingError) => e.code === 'UNKNOWN_FRAME_TYPE' && e.message.includes('0x7e'),
    );
  });

  it('rejects a truncated PUB body and shows the bad bytes', () => {
    // PUB claiming a 200-byte topic in a 12-byte body
    const body = Uint8Array.of(0x10, 0, 0, 0, 0, 0, 0, 200, 0x61, 0x62, 0x63, 0x64);
    const frame = concat([Uint8Array.of(0, 0, 0, body.length), body]);
    const parser = new FrameParser(MAX, () => {});
    assert.throws(
      () => parser.push(frame),
      (e: MessagingError) =>
        e.code === 'PROTOCOL_ERROR' &&
        /malformed PUB frame: truncated topic/.test(e.message) &&
        /bytes:/.test(e.message),
    );
  });

  it('reports offsets relative to the frame body when the frame sits behind others in a chunk', () => {
    const body = Uint8Array.of(0x10, 0, 0, 0, 0, 0, 0, 200, 0x61, 0x62, 0x63, 0x64);
    const frame = concat([encodePing(), encodePing(), Uint8Array.of(0, 0, 0, body.length), body]);
    assert.throws(
      () => new FrameParser(MAX, () => {}).push(frame),
      (e: MessagingError) => /truncated topic \(at body offset 7, bytes: .*00 c8 61 62/.test(e.message),
    );
  });

  it('decodes each topic right when consecutive messages have topics of equal length', () => {
    const topics = [
      'a.b.c',
      'a.b.d',
      'a.b.c',
      'ä.b.c',
      'x'.repeat(70),
      'x'.repeat(69) + 'y',
      'a.b.c',
      'a.b.c',
    ];
    const stream = concat(topics.map((t, i) => encodeMsg(i + 1, t, utf8(String(i)))));
    for (const sizes of [[stream.length], [1], [7, 3]]) {
      const frames = parseInChunks(stream, sizes);
      assert.deepEqual(
        frames.map((f) => (f.type === FrameType.MSG ? f.topic : '')),
        topics,
        `split ${sizes}`,
      );
    }
  });

  it('writes in place exactly what encodePub/encodeMsg allocate, and validates sizes first', () => {
    const id = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
    const meta = { headers: { k: 'v' } };
    const parts = [utf8('t.ü'), utf8('reply.x'), utf8(JSON.stringify(meta)), utf8('payload')] as const;
    const size = messageFrameSize(parts[0].length, parts[1].length, parts[2].length, parts[3].length, id);
    const out = new Uint8Array(size + 10).fill(0xee);
    const end = writeMessageFrame(out, 5, FrameType.PUB, 9, PUB_FLAG_REQUEST, id, ...parts);
    assert.equal(end, 5 + size);
    const expected = encodePub(9, 't.ü', utf8('payload'), {
      reply: 'reply.x',
      meta,
      msgId: id,
      flags: PUB_FLAG_REQUEST,
    });
    assert.deepEqual(out.subarray(5, end), expected);
    assert.equal(out[4], 0xee);
    assert.equal(out[end], 0xee);
    assert.equal(expected[9], PUB_FLAG_REQUEST | FLAG_HAS_ID);
    assert.throws(() => messageFrameSize(0x10000, 0, 0, 0, undefined), { code: 'BAD_REQUEST' });
    assert.throws(() => messageFrameSize(1, 0x10000, 0, 0, undefined), { code: 'BAD_REQUEST' });
    assert.throws(() => messageFrameSize(1, 0, 0, 0, new Uint8Array(15)), { code: 'BAD_REQUEST' });
  });

  it('decodes a CONFIRM written in place, and rejects one of the wrong size', () => {
    const id = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);
    const out = new Uint8Array(CONFIRM_FRAME_BYTES * 2);
    writeConfirmFrame(out, 0, 7, id);
    writeConfirmFrame(out, CONFIRM_FRAME_BYTES, 0xfffffffe, id);
    const frames = parseInChunks(out, [3]);
    assert.deepEqual(
      frames.map((f) => (f.type === FrameType.CONFIRM ? [f.reqId, [...f.msgId]] : f.type)),
      [
        [7, [...id]],
        [0xfffffffe, [...id]],
      ],
    );
    const short = Uint8Array.of(0, 0, 0, 5, FrameType.CONFIRM, 0, 0, 0, 7);
    const parser = new FrameParser(MAX, () => assert.fail('a short CONFIRM must not be emitted'));
    assert.throws(
      () => parser.push(short),
      (err: MessagingError) => {
        assert.equal(err.code, 'PROTOCOL_ERROR');
        assert.match(err.message, /CONFIRM must have a 20-byte body/);
        return true;
      },
    );
  });

  it('reads delivery metadata the same with or without JSON.parse, whatever its shape', () => {
    const metas = [
      {
        priority: 2,
        timestamp: 1_700_000_000_123,
        queue: 'orders',
        delivery_id: 'ab12-1',
        delivery_count: 1,
      },
      { priority: 0, timestamp: 0, queue: 'q', delivery_id: 'x', delivery_count: 123456 },
      { priority: 5, timestamp: 1, queue: 'café', delivery_id: 'ab12-2', delivery_count: 2 },
      { priority: 2, timestamp: 1, queue: 'a "b"', delivery_id: 'c\\d', delivery_count: 2 },
      { priority: 2, timestamp: 1, queue: 'q', delivery_id: 'd', delivery_count: 1, id: 'not-a-ulid' },
      { timestamp: 1, priority: 2, queue: 'q', delivery_id: 'd', delivery_count: 1 },
      { priority: 2, timestamp: 1e20, queue: 'q', delivery_id: 'd', delivery_count: 1 },
      { priority: 2, timestamp: 1, headers: { k: 'v' }, queue: 'q', delivery_id: 'd', delivery_count: 1 },
    ];
    for (const meta of metas) {
      const [frame] = parseInChunks(encodeMsg(1, 't', utf8('p'), { meta }), [1 << 20]);
      assert.ok(frame?.type === FrameType.MSG);
      assert.deepEqual(frame.meta, JSON.parse(JSON.stringify(meta)), JSON.stringify(meta));
    }
  });

  it('rejects control frames whose JSON is not an object', () => {
    for (const json of ['[1,2]', 'null', '{"a":', '"x"']) {
      const body = concat([Uint8Array.of(FrameType.SUB, 0, 0, 0, 1), utf8(json)]);
      const frame = concat([Uint8Array.of(0, 0, 0, body.length), body]);
      const parser = new FrameParser(MAX, () => {});
      assert.throws(
        () => parser.push(frame),
        (e: MessagingError) => e.code === 'PROTOCOL_ERROR',
        json,
      );
    }
  });

  it('rejects invalid UTF-8 in a topic', () => {
    const body = Uint8Array.of(0x10, 0, 0, 0, 0, 0, 0, 2, 0xc3, 0x28, 0, 0, 0, 0, 0, 0);
    const frame = concat([Uint8Array.of(0, 0, 0, body.length), body]);
    assert.throws(
      () => new FrameParser(MAX, () => {}).push(frame),
      (e: MessagingError) => e.code === 'PROTOCOL_ERROR',
    );
  });

  it('rejects PING with a body', () => {
    const frame = Uint8Array.of(0, 0, 0, 2, FrameType.PING, 0);
    assert.throws(
      () => new FrameParser(MAX, () => {}).push(frame),
      (e: MessagingError) => e.code === 'PROTOCOL_ERROR',
    );
  });

  it('never throws anything but a MessagingError on random bytes', () => {
    const random = rng(99);
    for (let run = 0; run < 2000; run++) {
      const bytes = Uint8Array.from({ length: 1 + Math.floor(random() * 64) }, () =>
        Math.floor(random() * 256),
      );
      if (run % 2) bytes[0] = 0; // make some look like plausible frames
      const parser = new FrameParser(4096, () => {});
      try {
        parser.push(bytes);
      } catch (e) {
        assert.ok(e instanceof MessagingError, `non-catalogue error: ${String(e)}`);
      }
    }
  });

  it('matches the byte examples written in docs/protocol.md', () => {
    const hello = encodeControl(FrameType.HELLO, 1, { version: 1 });
    assert.equal(
      Buffer.from(hello).toString('hex'),
      '000000120100000001' + Buffer.from('{"version":1}').toString('hex'),
    );
    const pub = encodePub(0, 'a.b', utf8('hi'));
    assert.equal(
      Buffer.from(pub).toString('hex'),
      '00000013' + '10' + '00000000' + '00' + '0003612e62' + '0000' + '00000000' + '6869',
    );
  });

  it('keeps the error table in docs/protocol.md in sync with the catalogue', () => {
    const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
    assert.equal(renderProtocolDoc(doc), doc, 'run: node --import tsx scripts/gen-docs.ts');
  });
});
