/**
 * Encryption at rest: no plaintext in the file engine's raw segment files, key ids stored with each
 * record, rotation on demand (CLI, on a running server) and by age, old records readable after rotation
 * and restart, clear start-up errors for a missing or wrong key, decrypt-only mode, and the memory engine
 * through the same decorator, and the PostgreSQL engine (ciphertext in the tables, its key ledger in them).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type Connection } from '../../src/client/index.ts';
import { MemoryStorage } from '../../src/storage/index.ts';
import { EncryptedStorage, seal, unseal } from '../../src/security/encrypted-storage.ts';
import { KeyStore } from '../../src/security/keystore.ts';
import { UnrecoverableError, Worker } from '../../src/worker/index.ts';
import pg from 'pg';
import { createDatabase, dropDatabase, PG, uniqueDatabase } from '../helpers/postgres.ts';
import { runCli, startCaptured, tempDir, waitFor, type CapturedServer } from './helpers.ts';

/** Every byte of every file under `dir`. */
function rawBytes(dir: string): Buffer {
  const parts: Buffer[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else parts.push(readFileSync(p));
    }
  };
  walk(dir);
  return Buffer.concat(parts);
}

describe('encryption at rest (file engine)', () => {
  let root: string;
  let data: string;
  let keys: string;
  let audit: string;
  const secretA = `PLAINTEXT-A-${randomBytes(8).toString('hex')}`;
  const secretB = `PLAINTEXT-B-${randomBytes(8).toString('hex')}`;
  const overrides = (): Record<string, string> => ({
    'message_bus.storage': 'file',
    'message_bus.fsync': 'always',
    'security.encryption.data_at_rest': 'true',
    'security.encryption.key_store': keys,
    'audit.enabled': 'true',
    'audit.log_file': audit,
  });
  const open = async (extra: Record<string, string> = {}): Promise<{ ts: CapturedServer; c: Connection }> => {
    const ts = await startCaptured({ ...overrides(), ...extra }, { dataDir: data });
    const c = await connect({ servers: `tcp://127.0.0.1:${ts.port}`, reconnect: false });
    return { ts, c };
  };

  before(() => {
    root = tempDir('enc');
    data = join(root, 'data');
    keys = join(root, 'keys');
    audit = join(root, 'audit.log');
    mkdirSync(data);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('stores only ciphertext (queues and streams) and hands consumers the plaintext', async () => {
    const { ts, c } = await open();
    await c.queues.declare({ name: 'vault', bindings: ['vault.#'] });
    await c.streams.declare({ name: 'vault-log', bindings: ['vault.#'] });
    await c.publishConfirmed('vault.a', secretA);
    const first = KeyStore.open(keys).current.id;
    const raw = rawBytes(data);
    assert.ok(raw.length > 0);
    assert.equal(raw.includes(secretA), false, 'plaintext found in the raw segment files');
    assert.ok(raw.includes(Buffer.from(first)), 'the key id is stored with the record');
    const stream = (await c.command('stream.read', { stream: 'vault-log' })) as {
      messages: Array<{ payload_base64: string }>;
    };
    assert.equal(Buffer.from(stream.messages[0]!.payload_base64, 'base64').toString(), secretA);
    await c.close();
    await ts.close();
    const mode = statSync(join(keys, `${first}.key`)).mode & 0o777;
    assert.equal(mode, 0o600, 'key files are private');
  });

  it('rotates on demand (messaging keys rotate) on a running server: new writes use the new key, old stay readable', async () => {
    const { ts, c } = await open();
    const before = KeyStore.open(keys).current.id;
    const rotated = await runCli(['keys', 'rotate', '--key-store', keys]);
    assert.equal(rotated.code, 0, rotated.stderr);
    const after = KeyStore.open(keys).current.id;
    assert.notEqual(after, before);
    // The server looks at the key store at most once a second, on a write.
    await new Promise((r) => setTimeout(r, 1100));
    await c.publishConfirmed('vault.b', secretB);
    await waitFor(() => rawBytes(data).includes(Buffer.from(after)), 3000, 'the new key id in the segments');
    const raw = rawBytes(data);
    assert.equal(raw.includes(secretB), false);
    const got = await c.queues.pull('vault', { max: 10 });
    assert.deepEqual(
      got.map((m) => m.string()),
      [secretA, secretB],
    );
    for (const m of got) await m.nack({ requeue: true });
    await c.close();
    await ts.close();
    assert.match(
      readFileSync(audit, 'utf8'),
      /"event":"configuration_change","action":"encryption.key_rotation"/,
    );
    const list = await runCli(['keys', 'list', '--key-store', keys, '--json']);
    assert.equal(list.stdout.trim().split('\n').length, 2);
    assert.ok(
      !list.stdout.includes(readFileSync(join(keys, `${after}.key`), 'utf8').trim()),
      'never prints key bytes',
    );
  });

  it('reads everything after a restart; decrypt-only mode keeps old records readable', async () => {
    const { ts, c } = await open({ 'security.encryption.data_at_rest': 'false' });
    const got = await c.queues.pull('vault', { max: 10 });
    assert.deepEqual(got.map((m) => m.string()).sort(), [secretA, secretB].sort());
    for (const m of got) await m.nack({ requeue: true });
    await c.close();
    await ts.close();
    await assert.rejects(
      startCaptured(
        { ...overrides(), 'security.encryption.data_at_rest': 'false', 'security.encryption.key_store': '' },
        { dataDir: data },
      ),
      /is encrypted .* key_store is not set/,
    );
  });

  it('a missing or wrong key stops the start with a clear error, never garbage', async () => {
    const store = KeyStore.open(keys);
    // The first key, which the earliest records were sealed with — not the current one (two keys made
    // within one second may sort either way by id).
    const oldest = store.list().find((k) => !k.current)!.id;
    const file = join(keys, `${oldest}.key`);
    const saved = readFileSync(file, 'utf8');
    writeFileSync(file, randomBytes(32).toString('base64'));
    await assert.rejects(
      startCaptured(overrides(), { dataDir: data }),
      new RegExp(`key "${oldest}" .* is not the key`),
    );
    rmSync(file);
    await assert.rejects(
      startCaptured(overrides(), { dataDir: data }),
      new RegExp(`encrypted with key "${oldest}", which is not in key_store`),
    );
    writeFileSync(file, saved, { mode: 0o600 });
    const { ts, c } = await open();
    assert.equal((await c.queues.pull('vault', { max: 10 })).length, 2);
    await c.close();
    await ts.close();
  });

  it('rotates by age (key_rotation_days) at start', async () => {
    const dir = join(root, 'old-keys');
    mkdirSync(dir);
    writeFileSync(join(dir, '20200101T000000Z-aaaaaa.key'), randomBytes(32).toString('base64'), {
      mode: 0o600,
    });
    writeFileSync(join(dir, 'current'), '20200101T000000Z-aaaaaa\n');
    const ts = await startCaptured({
      'security.encryption.data_at_rest': 'true',
      'security.encryption.key_store': dir,
      'security.encryption.key_rotation_days': '30',
    });
    await ts.close();
    const store = KeyStore.open(dir);
    assert.notEqual(store.current.id, '20200101T000000Z-aaaaaa');
    assert.equal(store.list().length, 2);
  });
});

describe('encryption at rest (memory engine, through the decorator)', () => {
  it('the engine holds ciphertext; reads decrypt; a tampered record is an error', async () => {
    const dir = tempDir('enc-mem');
    try {
      const keys = KeyStore.open(join(dir, 'keys'), { create: true });
      const inner = new MemoryStorage();
      const storage = new EncryptedStorage(inner, keys, { encrypt: true }).asStorage();
      await storage.declareQueue({ name: 'q' });
      await storage.append('q', { topic: 't', payload: new TextEncoder().encode('hello memory') });
      const sealed = await inner.take('q', 'spy', 1);
      assert.equal(Buffer.from(sealed[0]!.message.payload).includes('hello memory'), false);
      await inner.releaseConsumer('spy');
      const open = await storage.take('q', 'c', 1);
      assert.equal(new TextDecoder().decode(open[0]!.message.payload), 'hello memory');
      assert.equal(storage.engine, 'memory');

      const key = keys.current.key;
      const env = seal(new TextEncoder().encode('x'), keys.current.id, key);
      env[env.length - 1]! ^= 1;
      assert.throws(() => unseal(env, key));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('encryption at rest: task data (file engine)', () => {
  it('task args, results, errors, workflow values and schedule templates are stored only as ciphertext', async () => {
    const root = tempDir('enc-tasks');
    const data = join(root, 'data');
    mkdirSync(data);
    const secret = (what: string): string => `SECRET-${what}-${randomBytes(6).toString('hex')}`;
    const s = {
      args: secret('args'),
      result: secret('result'),
      error: secret('error'),
      step: secret('step'),
      member: secret('member'),
      schedule: secret('schedule'),
    };
    const config = {
      'message_bus.storage': 'file',
      'message_bus.fsync': 'always',
      'security.encryption.data_at_rest': 'true',
      'security.encryption.key_store': join(root, 'keys'),
    };
    let ts = await startCaptured(config, { dataDir: data, keepData: true });
    let c = await connect({ servers: `tcp://127.0.0.1:${ts.port}`, reconnect: false });
    const w = new Worker(
      c,
      {
        echo: async (args) => ({ got: args, result: s.result }),
        fail: async () => {
          throw new UnrecoverableError(`cannot: ${s.error}`);
        },
        member: async () => s.member,
        // A callback declared without args receives the group's results as its args.
        collect: async (args) => ({ all: args }),
      },
      { queues: ['enc'], concurrency: 2 },
    );
    try {
      await w.ready();
      const echo = await c.tasks.submit('echo', { secret: s.args }, { queue: 'enc' });
      assert.deepEqual(await echo.wait(10_000), { got: { secret: s.args }, result: s.result });
      const failed = await c.tasks.submit('fail', {}, { queue: 'enc' });
      await assert.rejects(failed.wait(10_000), (err: Error) => err.message.includes(s.error));
      const chord = await c.tasks.chord(
        [
          c.tasks.sig('member', { q: 'enc' }, { queue: 'enc' }),
          c.tasks.sig('echo', s.step, { queue: 'enc' }),
        ],
        c.tasks.sig('collect', undefined, { queue: 'enc' }),
      );
      const all = (await chord.wait(10_000)) as { all: unknown[] };
      assert.deepEqual(all.all, [s.member, { got: s.step, result: s.result }]);
      await c.tasks.schedules.create({
        id: 'enc-nightly',
        cron: '0 3 * * *',
        task: c.tasks.sig('echo', { secret: s.schedule }, { queue: 'enc' }),
      });

      const raw = rawBytes(data);
      for (const [what, value] of Object.entries(s))
        assert.equal(raw.includes(value), false, `the ${what} secret is in the raw segment files`);
      assert.ok(raw.includes(Buffer.from('"echo"')), 'task names stay clear (the engine schedules by them)');

      await w.close({ timeoutMs: 500 });
      await c.close();
      await ts.close();
      // After a restart everything reads back as plaintext.
      ts = await startCaptured(config, { dataDir: data, keepData: true });
      c = await connect({ servers: `tcp://127.0.0.1:${ts.port}`, reconnect: false });
      const got = await c.tasks.get(echo.id);
      assert.deepEqual(got.args, { secret: s.args });
      assert.deepEqual(got.result, { got: { secret: s.args }, result: s.result });
      assert.match(String((await c.tasks.get(failed.id)).error?.message), new RegExp(s.error));
      const sched = await c.tasks.schedules.get('enc-nightly');
      assert.deepEqual(sched.task.args, { secret: s.schedule });
    } finally {
      await w.close({ timeoutMs: 500 }).catch(() => undefined);
      await c.close().catch(() => undefined);
      await ts.close();
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('encryption at rest (PostgreSQL engine)', () => {
  it('the database holds only ciphertext and the key ledger; a missing or wrong key stops the start', async () => {
    const database = uniqueDatabase('enc');
    await createDatabase(database);
    const root = tempDir('enc-pg');
    const keys = join(root, 'keys');
    const secret = `PG-SECRET-${randomBytes(6).toString('hex')}`;
    const config = {
      'message_bus.storage': 'postgres',
      'database.host': PG.host,
      'database.port': String(PG.port),
      'database.database': database,
      'database.username': PG.user,
      'security.encryption.data_at_rest': 'true',
      'security.encryption.key_store': keys,
    };
    const db = new pg.Client({ ...PG, database, password: PG.password ?? '' });
    try {
      let ts = await startCaptured(config);
      let c = await connect({ servers: `tcp://127.0.0.1:${ts.port}`, reconnect: false });
      await c.queues.declare({ name: 'vault', bindings: ['vault.#'] });
      await c.publishConfirmed('vault.a', secret);
      const task = await c.tasks.submit('archive', { secret }, { queue: 'pg-enc' });
      await c.close();
      await ts.close();

      await db.connect();
      const raw = await db.query<{ text: string }>(
        `SELECT encode(payload, 'escape') AS text FROM messaging.messages
         UNION ALL SELECT rec::text FROM messaging.tasks`,
      );
      assert.ok(raw.rows.length >= 2);
      for (const r of raw.rows) assert.equal(r.text.includes(secret), false, 'plaintext in the database');
      const ledger = await db.query<{ name: string }>('SELECT name FROM messaging.meta');
      const id = KeyStore.open(keys).current.id;
      assert.deepEqual(
        ledger.rows.map((r) => r.name),
        [`encryption-key:${id}`],
      );

      const file = join(keys, `${id}.key`);
      const saved = readFileSync(file, 'utf8');
      writeFileSync(file, randomBytes(32).toString('base64'));
      await assert.rejects(
        startCaptured(config),
        new RegExp(`key "${id}" .* is not the key the data in the postgres store`),
      );
      rmSync(file);
      await assert.rejects(
        startCaptured(config),
        new RegExp(`encrypted with key "${id}", which is not in key_store`),
      );
      writeFileSync(file, saved, { mode: 0o600 });

      ts = await startCaptured(config);
      c = await connect({ servers: `tcp://127.0.0.1:${ts.port}`, reconnect: false });
      const [m] = await c.queues.pull('vault', { max: 1 });
      assert.equal(m?.string(), secret);
      assert.deepEqual((await c.tasks.get(task.id)).args, { secret });
      await c.close();
      await ts.close();
    } finally {
      await db.end().catch(() => undefined);
      await dropDatabase(database);
      rmSync(root, { recursive: true, force: true });
    }
  });
});
