/**
 * The permission rules on their own: pattern ⊆ pattern against a brute-force oracle, private inboxes,
 * name globs, and refusal of malformed claims.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { matchesPattern } from '../../src/core/topic.ts';
import { MessagingError } from '../../src/protocol/index.ts';
import {
  authorize,
  Identity,
  isPrivateInbox,
  nameMatches,
  parsePermissions,
  patternCovers,
} from '../../src/security/permissions.ts';

/** Every topic of 1..4 tokens over a small alphabet: enough to tell patterns of ≤ 4 tokens apart. */
function allTopics(): string[] {
  const alphabet = ['a', 'b', 'c'];
  const out: string[] = [];
  const grow = (prefix: string[]): void => {
    if (prefix.length > 0) out.push(prefix.join('.'));
    if (prefix.length === 4) return;
    for (const t of alphabet) grow([...prefix, t]);
  };
  grow([]);
  return out;
}

function allPatterns(maxTokens: number): string[] {
  const tokens = ['a', 'b', '*', '#'];
  const out: string[] = [];
  const grow = (prefix: string[]): void => {
    if (prefix.length > 0) out.push(prefix.join('.'));
    if (prefix.length === maxTokens) return;
    for (const t of tokens) grow([...prefix, t]);
  };
  grow([]);
  return out;
}

describe('patternCovers (pattern ⊆ pattern)', () => {
  it('is sound: whenever it says yes, every topic of the requested pattern is allowed', () => {
    const topics = allTopics();
    const patterns = allPatterns(3);
    let yes = 0;
    for (const allowed of patterns) {
      for (const requested of patterns) {
        if (!patternCovers(allowed, requested)) continue;
        yes++;
        for (const t of topics) {
          if (matchesPattern(requested, t)) {
            assert.ok(matchesPattern(allowed, t), `${requested} ⊆ ${allowed} claimed, but ${t} breaks it`);
          }
        }
      }
    }
    assert.ok(yes > 100);
  });

  it('is complete: it finds every true inclusion (checked on all topics of up to 4 tokens)', () => {
    const topics = allTopics();
    const patterns = allPatterns(3);
    for (const allowed of patterns) {
      for (const requested of patterns) {
        const truth = topics.every((t) => !matchesPattern(requested, t) || matchesPattern(allowed, t));
        assert.equal(patternCovers(allowed, requested), truth, `${requested} ⊆ ${allowed}`);
      }
    }
  });

  it('handles the documented examples', () => {
    assert.equal(patternCovers('orders.#', 'orders.eu.*'), true);
    assert.equal(patternCovers('orders.*', 'orders.eu'), true);
    assert.equal(patternCovers('orders.*', 'orders.#'), false);
    assert.equal(patternCovers('orders.*', 'orders.*.x'), false);
    assert.equal(patternCovers('#', '#'), true);
    assert.equal(patternCovers('a.#.b', 'a.x.#.b'), true);
    assert.equal(patternCovers('a.*', '*.b'), false);
    // Topics have at least one token, so `#` (everything) is inside `*.#` (one or more tokens).
    assert.equal(patternCovers('*.#', '#'), true);
  });

  it('stays fast on hostile patterns with many #', () => {
    const many = Array.from({ length: 60 }, () => '#').join('.');
    const started = performance.now();
    assert.equal(patternCovers(`${many}.z`, `${many}.y`), false);
    assert.ok(performance.now() - started < 500);
  });
});

describe('identity rules', () => {
  const restricted = new Identity(
    'alice',
    'jwt',
    parsePermissions({
      publish: ['orders.*'],
      subscribe: ['orders.#'],
      queues: ['orders', 'tmp-*'],
    }),
    undefined,
    '127.0.0.1',
  );

  it('a token without the claim may do everything', () => {
    const free = new Identity('bob', 'jwt', undefined, undefined, '127.0.0.1');
    assert.ok(free.canPublish('x.y'));
    assert.ok(free.canSubscribe('#'));
    assert.ok(free.canAccess('tasks', 'anything'));
  });

  it('a category missing from the claim allows nothing of that kind', () => {
    assert.equal(restricted.canAccess('streams', 'audit'), false);
    assert.equal(restricted.canAccess('tasks', 'email'), false);
    assert.throws(
      () => authorize(restricted, 'tasks', 'email'),
      (e: MessagingError) => {
        assert.equal(e.code, 'PERMISSION_DENIED');
        assert.deepEqual(e.details, { permission: 'tasks', resource: 'email' });
        return true;
      },
    );
    assert.doesNotThrow(() => authorize(undefined, 'tasks', 'email'));
  });

  it('names: exact, * and prefix*', () => {
    assert.ok(restricted.canAccess('queues', 'orders'));
    assert.ok(restricted.canAccess('queues', 'tmp-42'));
    assert.equal(restricted.canAccess('queues', 'orders2'), false);
    assert.ok(nameMatches('*', 'x'));
  });

  it('private inboxes are allowed, wildcard inboxes are not', () => {
    assert.ok(isPrivateInbox('_INBOX.abc123.*'));
    assert.ok(restricted.canSubscribe('_INBOX.abc123.*'));
    assert.equal(restricted.canSubscribe('_INBOX.*'), false);
    assert.equal(restricted.canSubscribe('_INBOX.#'), false);
    assert.equal(restricted.canSubscribe('_INBOX.*.x'), false);
    assert.ok(restricted.canPublish('_INBOX.abc123.7'));
  });

  it('malformed claims are refused, never read leniently', () => {
    for (const bad of [
      'x',
      [],
      { publish: 'a.b' },
      { publish: [1] },
      { subscribe: ['a..b'] },
      { queues: [''] },
    ]) {
      assert.throws(
        () => parsePermissions(bad),
        (e: MessagingError) => e.code === 'AUTH_FAILED',
      );
    }
  });
});
