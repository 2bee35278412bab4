// The line-oriented INI reader: comments, quoting, dotted keys, multi-line arrays and line numbers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readIni, splitList } from '../../src/config/ini-reader.ts';

test('sections, dotted keys, both comment styles and line numbers', () => {
  const doc = readIni(
    [
      '; header',
      '# other comment',
      '[logging]',
      'levels.network = debug',
      '',
      '[security.ssl]',
      'enabled=true',
    ].join('\n'),
    'a.ini',
  );
  assert.deepEqual(doc.problems, []);
  assert.deepEqual(doc.sections, [
    { name: 'logging', line: 3 },
    { name: 'security.ssl', line: 6 },
  ]);
  assert.deepEqual(doc.entries, [
    { section: 'logging', key: 'levels.network', value: 'debug', line: 4 },
    { section: 'security.ssl', key: 'enabled', value: 'true', line: 7 },
  ]);
});

test('CRLF line endings keep line numbers', () => {
  const doc = readIni('[a]\r\n\r\nx = 1\r\n', 'a.ini');
  assert.equal(doc.entries[0]!.line, 3);
  assert.equal(doc.entries[0]!.value, '1');
});

test('values: inline comments, escapes and quotes as in the ini package', () => {
  const doc = readIni(
    [
      '[s]',
      'a = plain ; comment',
      'b = has \\; semicolon',
      'c = "quoted ; kept"',
      "d = 'single'",
      'e =',
      'f = x = y',
    ].join('\n'),
    'a.ini',
  );
  assert.deepEqual(
    doc.entries.map((e) => [e.key, e.value]),
    [
      ['a', 'plain'],
      ['b', 'has ; semicolon'],
      ['c', 'quoted ; kept'],
      ['d', 'single'],
      ['e', ''],
      ['f', 'x = y'],
    ],
  );
});

test('a multi-line array spanning lines, with comments and blank lines inside', () => {
  const text = [
    '[audit]',
    'events_to_log = [',
    '    "a",',
    '',
    '    ; not an element',
    '    \'b\', "c, d"',
    ']',
    'next = 1',
  ];
  const doc = readIni(text.join('\n'), 'a.ini');
  assert.deepEqual(doc.problems, []);
  assert.deepEqual(doc.entries, [
    { section: 'audit', key: 'events_to_log', value: ['a', 'b', 'c, d'], line: 2 },
    { section: 'audit', key: 'next', value: '1', line: 8 },
  ]);
});

test('an array whose ] is forgotten is reported at its opening line; the next section still reads', () => {
  const doc = readIni(
    ['[audit]', 'events_to_log = [', '"a",', '[network]', 'listen_port = 1'].join('\n'),
    'a.ini',
  );
  assert.equal(doc.problems.length, 1);
  assert.equal(doc.problems[0]!.line, 2);
  assert.match(doc.problems[0]!.message, /never closed/);
  assert.deepEqual(doc.entries.at(-1), { section: 'network', key: 'listen_port', value: '1', line: 5 });
});

test('one-line values starting with [ stay text (e.g. an IPv6 address)', () => {
  const doc = readIni('[network]\nbind_address = [::]\n', 'a.ini');
  assert.equal(doc.entries[0]!.value, '[::]');
});

test('syntax problems: key outside a section, line without =, duplicate key', () => {
  const doc = readIni(['x = 1', '[s]', 'just words', 'k = 1', 'k = 2'].join('\n'), 'a.ini');
  assert.deepEqual(
    doc.problems.map((p) => [p.severity, p.line]),
    [
      ['error', 1],
      ['error', 3],
      ['warning', 5],
    ],
  );
  assert.equal(doc.entries.at(-1)!.value, '2');
});

test('splitList accepts bracketed, quoted and bare lists', () => {
  assert.deepEqual(splitList('["a", "b"]'), ['a', 'b']);
  assert.deepEqual(splitList('a, b ,c'), ['a', 'b', 'c']);
  assert.deepEqual(splitList('[]'), []);
  assert.deepEqual(splitList('["x;y", "z]"]'), ['x;y', 'z]']);
});
