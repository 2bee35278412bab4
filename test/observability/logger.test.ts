import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createLogger,
  parseLogLevel,
  setLogLevel,
  type LoggerOptions,
} from '../../src/observability/logger.ts';

/** A destination that keeps each JSON line, parsed. */
function capture(options: Omit<LoggerOptions, 'destination' | 'instanceId'> & { instanceId?: string } = {}) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    instanceId: 'test-01',
    ...options,
    destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const msgs = () => lines.map((l) => l.msg);
  return { logger, lines, msgs };
}

test('every line is JSON with level name, time, msg, instance_id and service', () => {
  const { logger, lines } = capture();
  logger.child({ module: 'network' }).info({ conn: 7 }, 'client connected');
  assert.equal(lines.length, 1);
  const line = lines[0]!;
  assert.equal(line.level, 'info');
  assert.equal(line.msg, 'client connected');
  assert.equal(line.instance_id, 'test-01');
  assert.equal(line.service, 'messaging_server');
  assert.equal(line.module, 'network');
  assert.equal(line.conn, 7);
  assert.equal(typeof line.pid, 'number');
  assert.ok(!Number.isNaN(Date.parse(String(line.time))), 'ISO time');
});

test('errors are serialised with message and stack', () => {
  const { logger, lines } = capture();
  logger.error({ err: new Error('disk full') }, 'append failed');
  const err = lines[0]!.err as Record<string, unknown>;
  assert.equal(err.message, 'disk full');
  assert.match(String(err.stack), /disk full/);
});

test('lines below the level are dropped', () => {
  const { logger, msgs } = capture({ level: 'warn' });
  logger.debug('d');
  logger.info('i');
  logger.warn('w');
  logger.error('e');
  assert.deepEqual(msgs(), ['w', 'e']);
});

test('level names: the guide’s four, trace/fatal, aliases, anything else refused', () => {
  for (const name of ['debug', 'info', 'warn', 'error', 'trace', 'fatal', 'silent'])
    assert.equal(parseLogLevel(name), name);
  assert.equal(parseLogLevel('warning'), 'warn');
  assert.equal(parseLogLevel(' WARN '), 'warn');
  assert.equal(parseLogLevel('Info'), 'info');
  assert.throws(() => parseLogLevel('verbose'), RangeError);
  assert.throws(() => createLogger({ level: 'loud', instanceId: 'x' }), /unknown log level "loud"/);
});

test('setLogLevel changes the root and every existing child at run time', () => {
  const { logger, msgs } = capture({ level: 'info' });
  const net = logger.child({ module: 'network' });
  const conn = net.child({ conn: 1 });
  conn.debug('before');
  setLogLevel(logger, 'debug');
  conn.debug('after');
  net.debug('net after');
  logger.debug('root after');
  setLogLevel(logger, 'error');
  net.warn('hidden');
  assert.deepEqual(msgs(), ['after', 'net after', 'root after']);
  assert.throws(() => setLogLevel(logger, 'nope'), RangeError);
  assert.equal(logger.level, 'error', 'a refused level changes nothing');
});

test('per-module levels apply to module children and their descendants, and reload', () => {
  const { logger, msgs } = capture({ level: 'info', moduleLevels: { network: 'debug', database: 'warn' } });
  const net = logger.child({ module: 'network' });
  const db = logger.child({ module: 'database' });
  const router = logger.child({ module: 'router' });
  const conn = net.child({ conn: 9 });
  net.debug('net debug');
  conn.debug('conn debug');
  db.info('db info');
  db.warn('db warn');
  router.debug('router debug');
  router.info('router info');
  assert.deepEqual(msgs(), ['net debug', 'conn debug', 'db warn', 'router info']);

  // A reload without a network override: network follows the root again.
  setLogLevel(logger, 'info', { database: 'error' });
  net.debug('net debug 2');
  conn.info('conn info 2');
  db.warn('db warn 2');
  const later = logger.child({ module: 'network' });
  later.debug('later debug');
  assert.deepEqual(msgs().slice(4), ['conn info 2']);

  // Module children created after a change get the current levels.
  setLogLevel(logger, 'warn', { router: 'trace' });
  logger.child({ module: 'router' }).trace('new router trace');
  logger.child({ module: 'other' }).info('other info');
  conn.info('conn info 3');
  assert.deepEqual(msgs().slice(5), ['new router trace']);
});

test('module level names are validated', () => {
  assert.throws(() => createLogger({ instanceId: 'x', moduleLevels: { network: 'chatty' } }), RangeError);
});
