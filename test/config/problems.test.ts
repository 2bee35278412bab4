// Problems instead of exceptions: unknown names with suggestions, bad values with what was expected,
// checks across keys, and the aggregated start-up error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertNoErrors, ConfigError, formatProblems, loadConfig } from '../../src/config/index.ts';
import { MessagingError } from '../../src/protocol/errors.ts';
import { errors, writeConfig } from './tmp.ts';

function problemsOf(text: string, env: Record<string, string> = {}) {
  const path = writeConfig(text);
  return { path, problems: loadConfig({ path, env }).problems };
}

test('unknown key: error with file, line and the nearest known key', () => {
  const { path, problems } = problemsOf('[network]\nbind_address = 127.0.0.1\n\nlisten_prot = 8081\n');
  const [e] = errors(problems);
  assert.equal(e!.file, path);
  assert.equal(e!.line, 4);
  assert.equal(e!.key, 'network.listen_prot');
  assert.equal(e!.message, "unknown key 'listen_prot' in [network] — did you mean 'listen_port'?");
  assert.equal(
    formatProblems([e!]),
    `error: ${path}:4: unknown key 'listen_prot' in [network] — did you mean 'listen_port'?`,
  );
});

test('unknown key with nothing close: no suggestion', () => {
  const { problems } = problemsOf('[network]\ncompletely_different = 1\n');
  assert.equal(errors(problems)[0]!.message, "unknown key 'completely_different' in [network]");
});

test('patterned keys get suggestions too, and a subsection key in its parent is pointed home', () => {
  const { problems } = problemsOf(
    '[logging]\nlevel.network = debug\n[database_replicas]\nreplca2.host = x\n[security]\nssl.enabled = true\n',
  );
  assert.deepEqual(
    errors(problems).map((p) => p.message),
    [
      "unknown key 'level.network' in [logging] — did you mean 'levels.network'?",
      "unknown key 'replca2.host' in [database_replicas] — did you mean 'replica2.host'?",
      "unknown key 'ssl.enabled' in [security] — did you mean 'enabled' in section [security.ssl]?",
    ],
  );
});

test('unknown section: one error at the header with a suggestion; its keys are not reported again', () => {
  const { problems } = problemsOf(
    '[netwrok]\nlisten_port = 1\nmax_connections = 2\n\n[bogus_stuff]\nx = 1\n',
  );
  assert.deepEqual(
    errors(problems).map((p) => [p.line, p.message]),
    [
      [1, 'unknown section [netwrok] — did you mean [network]?'],
      [5, 'unknown section [bogus_stuff]'],
    ],
  );
});

test('bad values: error naming file, line and the expected type or allowed values', () => {
  const { path, problems } = problemsOf(
    [
      '[network]',
      'listen_port = abc',
      'enable_ssl = maybe',
      'max_connections = 0',
      '[message_bus]',
      'fsync = sometimes',
      '[audit]',
      'events_to_log = ["authentication", "lunch"]',
    ].join('\n'),
  );
  const errs = errors(problems);
  assert.deepEqual(
    errs.map((e) => [e.file, e.line, e.key]),
    [
      [path, 2, 'network.listen_port'],
      [path, 3, 'network.enable_ssl'],
      [path, 4, 'network.max_connections'],
      [path, 6, 'message_bus.fsync'],
      [path, 8, 'audit.events_to_log'],
    ],
  );
  assert.match(
    errs[0]!.message,
    /invalid value 'abc' for listen_port in \[network\]: expected a whole number from 0 to 65535/,
  );
  assert.match(errs[1]!.message, /true or false/);
  assert.match(errs[2]!.message, /at least 1/);
  assert.match(errs[3]!.message, /'sometimes'.*one of: always, batch, none/);
  assert.match(errs[4]!.message, /element 'lunch'/);
});

test('a bad value leaves the default in place', () => {
  const path = writeConfig('[network]\nlisten_port = abc\n');
  assert.equal(loadConfig({ path, env: {} }).config.network.listen_port, 8080);
});

test('a missing file is an error, not an exception', () => {
  const { problems } = loadConfig({ path: '/nonexistent/dir/config.ini', env: {} });
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.file, '/nonexistent/dir/config.ini');
  assert.match(problems[0]!.message, /cannot read/);
});

test('unknown override id: error with suggestion', () => {
  const { problems } = loadConfig({ env: {}, overrides: { 'network.listen_prot': 1 } });
  assert.equal(
    errors(problems)[0]!.message,
    "unknown setting 'network.listen_prot' given on the command line — did you mean 'network.listen_port'?",
  );
});

test('enabled features must have what they need', () => {
  const cases: [string, RegExp][] = [
    ['[network]\nenable_ssl = true\nssl_key_file = k\n', /no certificate/],
    ['[security.ssl]\nenabled = true\ncert_file = a\nkey_file = b\nverify_client = true\n', /ca_file/],
    ['[security]\nenable_auth = true\n', /jwt_secret is empty/],
    ['[security]\nenable_auth = true\n[security.auth]\nalgorithm = RS256\n', /public_key_file/],
    ['[monitoring]\nmetrics_port = 8080\n', /different ports/],
    ['[monitoring]\nmetrics_path = metrics\n', /start with '\/'/],
    ['[clustering]\nenable = true\nheartbeat_interval_s = 10\nelection_timeout_s = 10\n', /shorter than/],
    ['[clustering]\nenable = true\ndiscovery_method = consul\n', /consul_endpoint/],
    ['[clustering]\nenable = true\ndiscovery_method = database\n', /storage = postgres/],
    ['[security.encryption]\ndata_at_rest = true\n', /key_store/],
    ['[database_pool]\nmin_connections = 30\nmax_connections = 20\n', /more than max_connections/],
    ['[database_replicas]\nreplica1.port = 5433\n', /replica1 has no host/],
    [
      '[database_sharding]\nenable = true\nshard_count = 2\nshard1.range = 0-40\nshard1.host = a\nshard2.range = 50-100\nshard2.host = b\n',
      /41-49 belong to no shard/,
    ],
    [
      '[database_sharding]\nenable = true\nshard_count = 2\nshard1.range = 0-60\nshard1.host = a\nshard2.range = 50-100\nshard2.host = b\n',
      /overlaps/,
    ],
    [
      '[database_sharding]\nenable = true\nshard_count = 3\nshard1.range = 0-100\nshard1.host = a\n',
      /shard_count = 3 but 1/,
    ],
    ['[database_sharding]\nshard1.range = 30-10\n', /FROM <= TO/],
  ];
  for (const [text, pattern] of cases) {
    const errs = errors(problemsOf(text).problems);
    assert.equal(errs.length, 1, `${text}\n${formatProblems(errs)}`);
    assert.match(errs[0]!.message, pattern, text);
    assert.ok(errs[0]!.line !== undefined, `no line for ${text}`);
  }
});

test('assertNoErrors: throws one readable ConfigError listing every error; warnings pass', () => {
  const { problems } = problemsOf(
    '[network]\nlisten_port = abc\nlisten_prot = 1\n[memory]\narena_count = 2\n',
  );
  assert.throws(
    () => assertNoErrors(problems),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(err instanceof MessagingError);
      assert.match(err.message, /invalid configuration \(2 errors\)/);
      assert.match(err.message, /listen_port/);
      assert.match(err.message, /listen_prot/);
      assert.doesNotMatch(err.message, /arena_count/);
      assert.equal(err.problems, problems);
      return true;
    },
  );
  const onlyWarnings = problemsOf('[memory]\narena_count = 2\n').problems;
  assert.equal(onlyWarnings.length, 1);
  assertNoErrors(onlyWarnings);
});

test('formatProblems: one line per problem, location only when known', () => {
  assert.equal(
    formatProblems([
      { severity: 'error', file: 'config.ini', line: 12, message: 'bad' },
      { severity: 'warning', message: 'from env' },
      { severity: 'warning', file: 'x.ini', message: 'no line' },
    ]),
    'error: config.ini:12: bad\nwarning: from env\nwarning: x.ini: no line',
  );
});
