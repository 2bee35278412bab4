import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MessagingError } from '../../src/protocol/errors.ts';
import { Router, type MatchResult } from '../../src/core/router.ts';
import { matchesPattern } from '../../src/core/topic.ts';
import { seededRandom } from '../helpers/random.ts';

const rng = seededRandom;

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

function randomPath(rand: () => number, alphabet: readonly string[]): string {
  const len = 1 + Math.floor(rand() * 5);
  const tokens: string[] = [];
  for (let i = 0; i < len; i++) tokens.push(pick(rand, alphabet));
  return tokens.join('.');
}

function sorted<T>(values: readonly T[]): T[] {
  return [...values].sort();
}

/** Plain values and groups as comparable plain data: group name → sorted members. */
function shape<T>(r: MatchResult<T>): { plain: T[]; groups: Record<string, T[]> } {
  assert.equal(r.groups.length, r.groupNames.length);
  const groups: Record<string, T[]> = {};
  r.groups.forEach((members, i) => {
    const name = r.groupNames[i]!;
    assert.ok(!(name in groups), `group ${name} listed once`);
    assert.ok(members.length > 0, 'no empty group');
    groups[name] = sorted(members);
  });
  return { plain: sorted(r.plain), groups };
}

for (const cacheSize of [0, 1024]) {
  describe(`Router (cacheSize ${cacheSize})`, () => {
    it('matches the DESIGN.md examples', () => {
      const r = new Router<string>({ cacheSize });
      for (const p of ['orders.*', 'orders.#', 'a.#.b', '#']) r.add(p, p);
      assert.deepEqual(sorted(r.match('orders.created').plain), ['#', 'orders.#', 'orders.*']);
      assert.deepEqual(sorted(r.match('orders').plain), ['#', 'orders.#']);
      assert.deepEqual(sorted(r.match('orders.eu.created').plain), ['#', 'orders.#']);
      assert.deepEqual(sorted(r.match('a.b').plain), ['#', 'a.#.b']);
      assert.deepEqual(sorted(r.match('a.x.y.b').plain), ['#', 'a.#.b']);
      assert.deepEqual(sorted(r.match('a.b.c').plain), ['#']);
      assert.deepEqual(sorted(r.match('zzz').plain), ['#']);
    });

    it('handles # at the start, middle and end, and several #', () => {
      const r = new Router<string>({ cacheSize });
      for (const p of ['#.created', 'a.#.c', 'a.#', '#.x.#', 'a.#.#', '#.#', '*.#', '#.*', 'a.*.#.c'])
        r.add(p, p);
      const cases: [string, string[]][] = [
        ['created', ['#.#', '#.*', '#.created', '*.#']],
        ['a', ['#.#', '#.*', '*.#', 'a.#', 'a.#.#']],
        ['x', ['#.#', '#.*', '#.x.#', '*.#']],
        ['a.c', ['#.#', '#.*', '*.#', 'a.#', 'a.#.#', 'a.#.c']],
        ['a.b.c', ['#.#', '#.*', '*.#', 'a.#', 'a.#.#', 'a.#.c', 'a.*.#.c']],
        ['q.x.q.x.q', ['#.#', '#.*', '#.x.#', '*.#']],
        ['orders.eu.created', ['#.#', '#.*', '#.created', '*.#']],
      ];
      for (const [topic, expected] of cases) {
        assert.deepEqual(sorted(r.match(topic).plain), expected, topic);
        for (const p of expected) assert.ok(matchesPattern(p, topic), `oracle agrees: ${p} ~ ${topic}`);
      }
    });

    it('yields each entry once even when several # paths reach it', () => {
      const r = new Router<string>({ cacheSize });
      r.add('a.#.#', 'x');
      r.add('#.#.#', 'y');
      r.add('#.b.#.#', 'z');
      assert.deepEqual(sorted(r.match('a.b.c').plain), ['x', 'y', 'z']);
      assert.deepEqual(sorted(r.match('a.b.b.b.b.b').plain), ['x', 'y', 'z']);
    });

    it('keeps the same value under two patterns as two entries', () => {
      const r = new Router<string>({ cacheSize });
      const e1 = r.add('orders.*', 'v');
      r.add('orders.#', 'v');
      assert.equal(r.size, 2);
      assert.deepEqual(r.match('orders.created').plain, ['v', 'v']);
      assert.deepEqual(r.match('orders').plain, ['v']);
      assert.equal(r.remove(e1), true);
      assert.deepEqual(r.match('orders.created').plain, ['v']);
    });

    it('groups queue members by name across patterns', () => {
      const r = new Router<string>({ cacheSize });
      r.add('orders.*', 'w1', 'workers');
      r.add('orders.#', 'w2', 'workers');
      r.add('orders.created', 'a1', 'audit');
      r.add('orders.created', 'p');
      r.add('other', 'w3', 'workers');
      assert.deepEqual(shape(r.match('orders.created')), {
        plain: ['p'],
        groups: { workers: ['w1', 'w2'], audit: ['a1'] },
      });
      assert.deepEqual(shape(r.match('orders')), { plain: [], groups: { workers: ['w2'] } });
      assert.deepEqual(shape(r.match('nothing.here')), { plain: [], groups: {} });
    });

    it('finds nothing for unrouted topics and validates topics', () => {
      const r = new Router<number>({ cacheSize });
      r.add('a.b', 1);
      const empty = r.match('b.a');
      assert.equal(empty.plain.length, 0);
      assert.equal(empty.groups.length, 0);
      for (const bad of ['', 'a..b', 'a.*', 'a b']) {
        assert.throws(
          () => r.match(bad),
          (err: unknown) => err instanceof MessagingError && err.code === 'INVALID_TOPIC',
        );
      }
    });

    it('validates patterns on add and leaves nothing behind', () => {
      const r = new Router<number>({ cacheSize });
      for (const bad of ['', 'ord*', 'a..b', 'a.#b', 'a b']) {
        assert.throws(
          () => r.add(bad, 1),
          (err: unknown) => err instanceof MessagingError && err.code === 'INVALID_PATTERN',
        );
      }
      assert.equal(r.size, 0);
    });

    it('remove is idempotent, refuses foreign entries, and clear empties everything', () => {
      const r = new Router<number>({ cacheSize });
      const other = new Router<number>({ cacheSize });
      const e = r.add('a.*', 1);
      const f = other.add('a.*', 1);
      assert.equal(r.remove(f), false);
      assert.equal(r.remove(e), true);
      assert.equal(r.remove(e), false);
      assert.equal(r.size, 0);
      const g = r.add('a.#', 2);
      r.add('#', 3);
      r.match('a.b');
      r.clear();
      assert.equal(r.size, 0);
      assert.equal(r.cachedTopics, 0);
      assert.deepEqual(r.match('a.b').plain, []);
      assert.equal(r.remove(g), false, 'entries cleared away cannot be removed again');
      r.add('a.b', 4);
      assert.deepEqual(r.match('a.b').plain, [4]);
    });

    it('returns fresh results after add and remove (no stale cache)', () => {
      const r = new Router<string>({ cacheSize });
      r.add('orders.created', 'exact');
      assert.deepEqual(r.match('orders.created').plain, ['exact']);
      assert.deepEqual(r.match('orders.created').plain, ['exact']);
      const late = r.add('orders.*', 'late');
      assert.deepEqual(sorted(r.match('orders.created').plain), ['exact', 'late']);
      const grouped = r.add('#', 'g', 'grp');
      assert.deepEqual(shape(r.match('orders.created')).groups, { grp: ['g'] });
      r.remove(late);
      r.remove(grouped);
      assert.deepEqual(shape(r.match('orders.created')), { plain: ['exact'], groups: {} });
      if (cacheSize > 0) {
        const hits = r.cacheHits;
        r.match('orders.created');
        assert.equal(r.cacheHits, hits + 1, 'an unchanged router answers from the cache');
      } else {
        assert.equal(r.cacheHits, 0);
        assert.equal(r.cachedTopics, 0);
      }
    });

    it('keeps the cache bounded', () => {
      const r = new Router<number>({ cacheSize });
      r.add('#', 1);
      r.add('t.*', 2);
      for (let i = 0; i < 5000; i++) {
        assert.deepEqual(sorted(r.match(`t.${i}`).plain), [1, 2]);
        assert.ok(r.cachedTopics <= cacheSize, `${r.cachedTopics} cached, bound ${cacheSize}`);
      }
      assert.equal(r.cacheHits + r.cacheMisses, 5000);
      if (cacheSize > 0) {
        const small = new Router<number>({ cacheSize: 7 });
        small.add('#', 1);
        for (let i = 0; i < 500; i++) {
          small.match(`t.${i % 50}`);
          assert.ok(small.cachedTopics <= 7);
        }
      }
    });

    it('stays linear on many # against a long topic', () => {
      const r = new Router<string>({ cacheSize });
      const pattern = Array.from({ length: 12 }, () => '#').join('.') + '.z';
      r.add(pattern, 'p');
      // Backtracking would try ~C(112, 12) splits here; the trie expands each (node, position) once.
      const topic = Array.from({ length: 100 }, () => 'a').join('.');
      assert.deepEqual(r.match(topic).plain, []);
      assert.deepEqual(r.match(topic + '.z').plain, ['p']);
    });

    it('agrees with matchesPattern on thousands of random cases, through removals', () => {
      const rand = rng(0xc0ffee + cacheSize);
      const patternAlphabet = ['a', 'b', 'c', '*', '#'];
      const topicAlphabet = ['a', 'b', 'c'];
      const groupNames = ['g1', 'g2'];
      const r = new Router<number>({ cacheSize });
      const live = new Map<number, { pattern: string; group: string | undefined; remove: () => boolean }>();
      let nextId = 0;
      const topics = Array.from({ length: 300 }, () => randomPath(rand, topicAlphabet));
      let checked = 0;

      const addSome = (count: number): void => {
        for (let i = 0; i < count; i++) {
          const pattern = randomPath(rand, patternAlphabet);
          const group = rand() < 0.3 ? pick(rand, groupNames) : undefined;
          const id = nextId++;
          const entry = r.add(pattern, id, group);
          live.set(id, { pattern, group, remove: () => r.remove(entry) });
        }
      };
      const verify = (): void => {
        for (const topic of topics) {
          const expected: { plain: number[]; groups: Record<string, number[]> } = { plain: [], groups: {} };
          for (const [id, { pattern, group }] of live) {
            if (!matchesPattern(pattern, topic)) continue;
            if (group === undefined) expected.plain.push(id);
            else (expected.groups[group] ??= []).push(id);
          }
          expected.plain.sort();
          for (const g of Object.values(expected.groups)) g.sort();
          assert.deepEqual(shape(r.match(topic)), expected, `topic ${topic}`);
          checked++;
        }
      };

      addSome(150);
      for (let round = 0; round < 8; round++) {
        verify();
        verify(); // second pass: answered from the cache when enabled
        // Remove a random ~third, then add some: every cached answer above is now stale.
        for (const [id, sub] of live) {
          if (rand() < 0.33) {
            assert.equal(sub.remove(), true);
            live.delete(id);
          }
        }
        assert.equal(r.size, live.size);
        addSome(30);
      }
      verify();
      assert.ok(checked >= 5000, `${checked} cases`);
      for (const sub of live.values()) sub.remove();
      assert.equal(r.size, 0);
      for (const topic of topics) assert.deepEqual(shape(r.match(topic)), { plain: [], groups: {} });
    });
  });
}

describe('Router options', () => {
  it('rejects a bad cacheSize', () => {
    assert.throws(() => new Router({ cacheSize: -1 }), RangeError);
    assert.throws(() => new Router({ cacheSize: 1.5 }), RangeError);
  });
});
