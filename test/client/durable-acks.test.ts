/**
 * The ack batcher on its own, with a scripted `send`: batching per tick and per queue, splitting large
 * batches, and settling each ack on its own when a batch fails — both with a server that names the
 * unknown ids (`details.unknown`) and with one that applies a batch all or nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MessagingError } from '../../src/protocol/index.ts';
import { AckBatcher, MAX_ACK_BATCH } from '../../src/client/ack-batcher.ts';

type Args = Record<string, unknown>;

/** A fake server: records every `queue.ack` and answers with `answer(args)`. */
function fake(answer: (args: Args) => Args | MessagingError = () => ({})): {
  sent: Args[];
  batcher: AckBatcher;
} {
  const sent: Args[] = [];
  const batcher = new AckBatcher(async (args) => {
    sent.push(args);
    await Promise.resolve();
    const result = answer(args);
    if (result instanceof MessagingError) throw result;
    return result;
  });
  return { sent, batcher };
}

const idsOf = (args: Args): string[] =>
  Array.isArray(args['delivery_ids']) ? (args['delivery_ids'] as string[]) : [String(args['delivery_id'])];

describe('ack batcher', () => {
  it('sends the acks of one tick as one queue.ack per queue, and a lone ack with delivery_id', async () => {
    const { sent, batcher } = fake((args) => ({ acked: idsOf(args).length }));
    await Promise.all([
      batcher.ack('a', '1'),
      batcher.ack('a', '2'),
      batcher.ack('b', '3'),
      batcher.ack('a', '4'),
    ]);
    assert.deepEqual(sent, [
      { queue: 'a', delivery_ids: ['1', '2', '4'] },
      { queue: 'b', delivery_id: '3' },
    ]);
    // A later tick is a new batch.
    await batcher.ack('a', '5');
    assert.deepEqual(sent[2], { queue: 'a', delivery_id: '5' });
  });

  it('batches acks issued from successive microtasks (a for-await loop) together', async () => {
    const { sent, batcher } = fake();
    const acks: Array<Promise<void>> = [];
    for (let i = 0; i < 5; i++) {
      await Promise.resolve();
      acks.push(batcher.ack('q', String(i)));
    }
    await Promise.all(acks);
    assert.equal(sent.length, 1);
    assert.deepEqual(idsOf(sent[0]!), ['0', '1', '2', '3', '4']);
  });

  it(`splits more than ${MAX_ACK_BATCH} acks into several commands`, async () => {
    const { sent, batcher } = fake();
    await Promise.all(Array.from({ length: MAX_ACK_BATCH + 5 }, (_, i) => batcher.ack('q', String(i))));
    assert.deepEqual(
      sent.map((a) => idsOf(a).length),
      [MAX_ACK_BATCH, 5],
    );
  });

  it('settles each ack on its own when the server names the unknown ids', async () => {
    const { sent, batcher } = fake(
      (args) =>
        new MessagingError('UNKNOWN_DELIVERY', '1 of 3 deliveries are unknown', {
          details: { unknown: ['2'], acked: idsOf(args).length - 1 },
        }),
    );
    const results = await Promise.allSettled([
      batcher.ack('q', '1'),
      batcher.ack('q', '2'),
      batcher.ack('q', '3'),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    const reason = (results[1] as PromiseRejectedResult).reason as MessagingError;
    assert.equal(reason.code, 'UNKNOWN_DELIVERY');
    assert.match(reason.message, /delivery '2' of queue 'q'/);
    assert.equal(sent.length, 1, 'no retries needed');
  });

  it('falls back to one ack per delivery when a failed batch does not name the unknown ids', async () => {
    const { sent, batcher } = fake((args) =>
      Array.isArray(args['delivery_ids']) || args['delivery_id'] === 'bad'
        ? new MessagingError('UNKNOWN_DELIVERY', 'unknown delivery')
        : {},
    );
    const results = await Promise.allSettled([
      batcher.ack('q', 'ok1'),
      batcher.ack('q', 'bad'),
      batcher.ack('q', 'ok2'),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.deepEqual(
      sent.map((a) => idsOf(a)),
      [['ok1', 'bad', 'ok2'], ['ok1'], ['bad'], ['ok2']],
    );
  });

  it('rejects a second ack of the same delivery in one batch without sending it twice', async () => {
    const { sent, batcher } = fake();
    const results = await Promise.allSettled([batcher.ack('q', 'x'), batcher.ack('q', 'x')]);
    assert.equal(results[0]!.status, 'fulfilled');
    assert.equal(((results[1] as PromiseRejectedResult).reason as MessagingError).code, 'UNKNOWN_DELIVERY');
    assert.deepEqual(sent, [{ queue: 'q', delivery_id: 'x' }]);
  });

  it('rejects every ack of a batch with any other error', async () => {
    const { batcher } = fake(() => new MessagingError('CONNECTION_CLOSED', 'lost'));
    const results = await Promise.allSettled([batcher.ack('q', '1'), batcher.ack('q', '2')]);
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.equal((r.reason as MessagingError).code, 'CONNECTION_CLOSED');
    }
  });

  it('flush() sends at once (before a drain or close)', async () => {
    const { sent, batcher } = fake();
    const p = batcher.ack('q', '1');
    assert.equal(batcher.size, 1);
    batcher.flush();
    assert.equal(batcher.size, 0);
    assert.equal(sent.length, 1);
    await p;
  });
});
