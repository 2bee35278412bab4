import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MessagingError } from '../../src/protocol/errors.ts';
import {
  isValidPattern,
  isValidTopic,
  matchesPattern,
  validatePattern,
  validateTopic,
} from '../../src/core/topic.ts';

function rejects(fn: () => void, code: 'INVALID_TOPIC' | 'INVALID_PATTERN', message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof MessagingError, 'a MessagingError');
    assert.equal(err.code, code);
    assert.match(err.message, message);
    return true;
  });
}

describe('validateTopic', () => {
  it('accepts ordinary and multi-byte topics', () => {
    for (const t of ['orders', 'orders.eu.created', 'a.b.c.d.e', 'é.ü', '日本.東京', 'x-1_y:z', '😀.a']) {
      assert.doesNotThrow(() => validateTopic(t), t);
      assert.equal(isValidTopic(t), true, t);
    }
  });

  it('rejects the empty topic', () => {
    rejects(() => validateTopic(''), 'INVALID_TOPIC', /^Invalid topic "": it is empty/);
  });

  it('rejects empty tokens, naming the token', () => {
    rejects(() => validateTopic('.a'), 'INVALID_TOPIC', /"\.a".*token 1 is empty/);
    rejects(() => validateTopic('a.'), 'INVALID_TOPIC', /"a\.".*token 2 is empty/);
    rejects(() => validateTopic('a..b'), 'INVALID_TOPIC', /"a\.\.b".*token 2 is empty/);
    rejects(() => validateTopic('.'), 'INVALID_TOPIC', /token 1 is empty/);
  });

  it('rejects whitespace, ASCII and Unicode', () => {
    for (const t of [
      'a b',
      'a.b c',
      'a\tb',
      'a\nb',
      'a\rb',
      'a\u00a0b',
      'a\u2003b',
      'a\u3000b',
      '\ufeffa',
      ' ',
    ]) {
      rejects(() => validateTopic(t), 'INVALID_TOPIC', /contains whitespace/);
      assert.equal(isValidTopic(t), false);
    }
    rejects(() => validateTopic('a.b c'), 'INVALID_TOPIC', /token 2 contains whitespace/);
  });

  it('rejects wildcards in a topic, even as whole tokens', () => {
    for (const t of ['*', '#', 'a.*', 'a.#', 'ord*', 'a#b']) {
      rejects(() => validateTopic(t), 'INVALID_TOPIC', /wildcards are only allowed in subscription patterns/);
    }
  });

  it('counts UTF-8 bytes, not characters: 255 passes, 256 fails', () => {
    const cases: [string, number][] = [
      ['a'.repeat(255), 255],
      ['a'.repeat(256), 256],
      ['é'.repeat(127) + 'a', 255], // é = 2 bytes
      ['é'.repeat(128), 256],
      ['日'.repeat(85), 255], // 3 bytes
      ['日'.repeat(85) + 'a', 256],
      ['😀'.repeat(63) + 'abc', 255], // 4 bytes, 2 UTF-16 units
      ['😀'.repeat(63) + 'abcd', 256],
      [Array.from({ length: 128 }, () => 'a').join('.'), 255],
      [Array.from({ length: 128 }, () => 'a').join('.') + 'b', 256],
    ];
    for (const [topic, bytes] of cases) {
      assert.equal(Buffer.byteLength(topic), bytes, 'fixture');
      if (bytes <= 255) {
        assert.doesNotThrow(() => validateTopic(topic));
      } else {
        rejects(
          () => validateTopic(topic),
          'INVALID_TOPIC',
          /it is 256 bytes long in UTF-8, the limit is 255/,
        );
      }
    }
  });

  it('truncates a long topic in the message', () => {
    const topic = 'x'.repeat(1000);
    assert.throws(
      () => validateTopic(topic),
      (err: unknown) =>
        err instanceof MessagingError && err.message.includes('…') && err.message.length < 200,
    );
  });
});

describe('validatePattern', () => {
  it('accepts whole-token wildcards', () => {
    for (const p of ['orders', 'orders.*', 'orders.#', 'a.#.b', '#', '*', '#.#', '*.*.#', '#.x.#', 'é.*']) {
      assert.doesNotThrow(() => validatePattern(p), p);
      assert.equal(isValidPattern(p), true, p);
    }
  });

  it('rejects wildcards inside a token, naming the token', () => {
    rejects(
      () => validatePattern('ord*'),
      'INVALID_PATTERN',
      /"\*" must be a whole token, but token 1 \("ord\*"\)/,
    );
    rejects(
      () => validatePattern('a.*b'),
      'INVALID_PATTERN',
      /"\*" must be a whole token, but token 2 \("\*b"\)/,
    );
    rejects(
      () => validatePattern('a.b#'),
      'INVALID_PATTERN',
      /"#" must be a whole token, but token 2 \("b#"\)/,
    );
    for (const p of ['**', '##', '*#', 'a.#b.c', 'x*y']) {
      rejects(() => validatePattern(p), 'INVALID_PATTERN', /must be a whole token/);
      assert.equal(isValidPattern(p), false);
    }
  });

  it('applies the topic rules: empty, empty tokens, whitespace, length', () => {
    rejects(() => validatePattern(''), 'INVALID_PATTERN', /it is empty/);
    rejects(() => validatePattern('a..*'), 'INVALID_PATTERN', /token 2 is empty/);
    rejects(() => validatePattern('#.'), 'INVALID_PATTERN', /token 2 is empty/);
    rejects(() => validatePattern('a.* '), 'INVALID_PATTERN', /whitespace|whole token/);
    rejects(() => validatePattern('a b.*'), 'INVALID_PATTERN', /token 1 contains whitespace/);
    assert.doesNotThrow(() => validatePattern('a'.repeat(253) + '.#')); // 255 bytes
    assert.doesNotThrow(() => validatePattern('é'.repeat(125) + 'a.#.*')); // 250 + 5 = 255 bytes
    rejects(() => validatePattern('a'.repeat(254) + '.#'), 'INVALID_PATTERN', /256 bytes/);
    rejects(() => validatePattern('é'.repeat(126) + '.#.*'), 'INVALID_PATTERN', /256 bytes/);
  });
});

describe('matchesPattern (the reference)', () => {
  const yes: [string, string][] = [
    // DESIGN.md, verbatim
    ['orders.*', 'orders.created'],
    ['orders.#', 'orders'],
    ['orders.#', 'orders.created'],
    ['orders.#', 'orders.eu.created'],
    ['a.#.b', 'a.b'],
    ['a.#.b', 'a.x.y.b'],
    ['#', 'anything'],
    ['#', 'a.b.c.d'],
    // # at the start, middle, end; several #
    ['#.created', 'created'],
    ['#.created', 'orders.eu.created'],
    ['#.x.#', 'x'],
    ['#.x.#', 'a.x'],
    ['#.x.#', 'x.b'],
    ['#.x.#', 'a.b.x.c.d'],
    ['a.#.#', 'a'],
    ['a.#.#', 'a.b.c'],
    ['#.#', 'a'],
    ['*.#', 'a'],
    ['#.*', 'a.b'],
    ['a.*.#.c', 'a.b.c'],
    ['a.*.#.c', 'a.b.x.y.c'],
  ];
  const no: [string, string][] = [
    // DESIGN.md, verbatim
    ['orders.*', 'orders'],
    ['orders.*', 'orders.eu.created'],
    ['a.#.b', 'a.b.c'],
    ['#.created', 'created.x'],
    ['#.x.#', 'a.b'],
    ['*', 'a.b'],
    ['*.*', 'a'],
    ['a.*.#.c', 'a.c'],
    ['orders', 'orders.created'],
  ];
  for (const [p, t] of yes) it(`${p} matches ${t}`, () => assert.equal(matchesPattern(p, t), true));
  for (const [p, t] of no) it(`${p} does not match ${t}`, () => assert.equal(matchesPattern(p, t), false));
});
