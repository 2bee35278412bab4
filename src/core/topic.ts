/**
 * Topic and pattern rules (DESIGN.md "Messages" and "Topic patterns").
 *
 * A topic is 1–255 UTF-8 bytes of dot-separated, non-empty tokens; a token may not contain whitespace,
 * `*` or `#`. A pattern follows the same rules except that a token may be exactly `*` (one token) or
 * exactly `#` (zero or more tokens), with AMQP topic-exchange semantics.
 *
 * The validators run once per message at the edge and on every router cache miss, so they are one pass
 * over char codes with no allocation unless they throw.
 */
import { MessagingError } from '../protocol/errors.ts';

/** Longest topic or pattern, in UTF-8 bytes. */
export const MAX_TOPIC_BYTES = 255;

const DOT = 0x2e;
const STAR = 0x2a;
const HASH = 0x23;

/** Longest slice of the offending topic quoted in an error message, so one bad publish cannot flood logs. */
const QUOTE_MAX_CHARS = 64;

/**
 * Throws `INVALID_TOPIC` unless `topic` is a valid topic to publish on.
 * The message names the rule that broke and quotes the (truncated) topic.
 */
export function validateTopic(topic: string): void {
  const problem = check(topic, false);
  if (problem !== null)
    throw new MessagingError('INVALID_TOPIC', `Invalid topic ${quote(topic)}: ${problem}`);
}

/**
 * Throws `INVALID_PATTERN` unless `pattern` is a valid subscription pattern: the topic rules, except that
 * `*` and `#` are allowed as whole tokens (`orders.*`, `a.#.b`, `#`) but never inside one (`ord*`).
 */
export function validatePattern(pattern: string): void {
  const problem = check(pattern, true);
  if (problem !== null) {
    throw new MessagingError('INVALID_PATTERN', `Invalid pattern ${quote(pattern)}: ${problem}`);
  }
}

/** Whether `topic` is valid, without the cost of building an error. */
export function isValidTopic(topic: string): boolean {
  return check(topic, false) === null;
}

/** Whether `pattern` is valid, without the cost of building an error. */
export function isValidPattern(pattern: string): boolean {
  return check(pattern, true) === null;
}

/**
 * Reference matcher: does `pattern` match `topic`? A plain backtracking implementation kept simple on
 * purpose — it is the oracle the trie router is tested against, not the routing path (it can take
 * exponential time on patterns with many `#`). Both arguments are assumed valid.
 */
export function matchesPattern(pattern: string, topic: string): boolean {
  return matchFrom(pattern.split('.'), 0, topic.split('.'), 0);
}

function matchFrom(p: readonly string[], i: number, t: readonly string[], j: number): boolean {
  if (i === p.length) return j === t.length;
  const token = p[i];
  if (token === '#') {
    // `#` swallows k = 0, 1, … remaining tokens; try every split.
    for (let k = j; k <= t.length; k++) {
      if (matchFrom(p, i + 1, t, k)) return true;
    }
    return false;
  }
  if (j === t.length) return false;
  return (token === '*' || token === t[j]) && matchFrom(p, i + 1, t, j + 1);
}

/**
 * One pass over the string. Returns null when valid, else a description of the first rule broken.
 * Bytes are counted from UTF-16 code units (1, 2 or 3 bytes; a surrogate pair is 4), which is what
 * `Buffer.byteLength(s, 'utf8')` gives, without leaving the loop.
 */
function check(s: string, wildcards: boolean): string | null {
  if (typeof s !== 'string') return `must be a string, got ${typeof s}`;
  const len = s.length;
  if (len === 0) return 'it is empty (1 to 255 bytes are required)';
  // Every code unit is at least one byte, so a string this long cannot fit: skip the scan.
  if (len > MAX_TOPIC_BYTES) return tooLong(s);

  let bytes = 0;
  let tokenStart = 0;
  let tokenNo = 1;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c === DOT) {
      if (i === tokenStart) return `token ${tokenNo} is empty (no leading, trailing or doubled dots)`;
      tokenStart = i + 1;
      tokenNo++;
      bytes++;
      continue;
    }
    if (c < 0x80) {
      bytes++;
      if (c === STAR || c === HASH) {
        const ch = c === STAR ? '*' : '#';
        if (!wildcards) {
          return `token ${tokenNo} contains "${ch}" (wildcards are only allowed in subscription patterns)`;
        }
        const wholeToken = i === tokenStart && (i + 1 === len || s.charCodeAt(i + 1) === DOT);
        if (!wholeToken) {
          return `"${ch}" must be a whole token, but token ${tokenNo} (${quote(tokenAt(s, tokenStart))}) contains it`;
        }
      } else if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) {
        return `token ${tokenNo} contains whitespace`;
      }
    } else {
      if (c < 0x800) bytes += 2;
      else if (c >= 0xd800 && c <= 0xdbff && i + 1 < len && isLowSurrogate(s.charCodeAt(i + 1))) {
        bytes += 4;
        i++;
      } else bytes += 3;
      if (isUnicodeSpace(c)) return `token ${tokenNo} contains whitespace`;
    }
  }
  if (tokenStart === len) return `token ${tokenNo} is empty (no leading, trailing or doubled dots)`;
  if (bytes > MAX_TOPIC_BYTES) return tooLong(s);
  return null;
}

function isLowSurrogate(c: number): boolean {
  return c >= 0xdc00 && c <= 0xdfff;
}

/** The non-ASCII code points of JavaScript's `\s`, so "whitespace" means the same as the regex class. */
function isUnicodeSpace(c: number): boolean {
  return (
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

function tooLong(s: string): string {
  return `it is ${Buffer.byteLength(s, 'utf8')} bytes long in UTF-8, the limit is ${MAX_TOPIC_BYTES}`;
}

function tokenAt(s: string, start: number): string {
  const end = s.indexOf('.', start);
  return s.slice(start, end === -1 ? s.length : end);
}

/** JSON-quoted so whitespace and control characters are visible; truncated so logs stay readable. */
function quote(s: string): string {
  if (typeof s !== 'string') return String(s);
  return JSON.stringify(s.length > QUOTE_MAX_CHARS ? `${s.slice(0, QUOTE_MAX_CHARS)}…` : s);
}
