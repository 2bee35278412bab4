/**
 * The `messaging` binary's queue, dlq and stream commands and the durable side of `pub`, run as child
 * processes against the real server (file storage engine, started in this process on a free port).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { connect, type Connection } from '../../src/client/index.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const BIN = fileURLToPath(new URL('../../bin/messaging.js', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface Running {
  /** Resolves once stderr matches `re`. */
  stderrMatch(re: RegExp, timeoutMs?: number): Promise<void>;
  done: Promise<Result>;
}

let server: TestServer;
let sdk: Connection;
let unique = 0;
/** A name no other test uses (valid as a queue, stream and topic token). */
const name = (what: string): string => `c${process.pid}-${++unique}-${what}`;

function start(args: string[]): Running {
  // A clean environment: the developer's MESSAGING_URL must not leak into the tests.
  const child = spawn(process.execPath, [BIN, ...args, '--server', server.url], {
    env: { PATH: process.env['PATH'] ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const watchers: Array<() => void> = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    for (const w of watchers) w();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const done = new Promise<Result>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
  return {
    done,
    stderrMatch(re, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`stderr never matched ${re}; stderr:\n${stderr}`)),
          timeoutMs,
        );
        const check = (): void => {
          if (re.test(stderr)) {
            clearTimeout(t);
            resolve();
          }
        };
        watchers.push(check);
        check();
        void done.then(() => {
          if (!re.test(stderr)) {
            clearTimeout(t);
            reject(new Error(`exited before stderr matched ${re}; stderr:\n${stderr}`));
          }
        });
      });
    },
  };
}

const run = (args: string[]): Promise<Result> => start(args).done;

/** Runs and asserts exit code 0, showing stderr otherwise. */
async function ok(args: string[]): Promise<Result> {
  const r = await run(args);
  assert.equal(r.code, 0, `messaging ${args.join(' ')} failed:\n${r.stderr}`);
  return r;
}

const lines = (text: string): string[] => text.split('\n').filter((l) => l.length > 0);
const jsonLines = (text: string): Array<Record<string, unknown>> =>
  lines(text).map((l) => JSON.parse(l) as Record<string, unknown>);

before(async () => {
  server = await startTestServer({ 'message_bus.storage': 'file' });
  sdk = await connect({ servers: server.url, timeoutMs: 3000 });
});

after(async () => {
  await sdk.close();
  await server.close();
});

describe('messaging queue', () => {
  it('add, ls, info, purge and rm', async () => {
    const q = name('q');
    const add = await ok([
      'queue',
      'add',
      q,
      '--bind',
      `${q}.#`,
      '--bind',
      `x${q}.*`,
      '--max-length',
      '50',
      '--ack-timeout',
      '2m',
      '--max-deliveries',
      '3',
    ]);
    assert.match(add.stderr, new RegExp(`queue '${q}' ready, bound to ${q}\\.#, x${q}\\.\\*`));
    // Idempotent with the same settings; a clear error with others.
    await ok([
      'queue',
      'add',
      q,
      '--bind',
      `${q}.#`,
      '--bind',
      `x${q}.*`,
      '--max-length',
      '50',
      '--ack-timeout',
      '2m',
      '--max-deliveries',
      '3',
    ]);
    const clash = await run(['queue', 'add', q, '--bind', 'other']);
    assert.equal(clash.code, 1);
    assert.match(
      clash.stderr,
      new RegExp(`^error: queue '${q}' already exists with other settings — .*messaging queue rm ${q}`, 'm'),
    );

    await sdk.publish(`${q}.a`, 'one', { confirm: true });
    await sdk.publish(`${q}.b`, 'two', { confirm: true });

    const ls = await ok(['queue', 'ls']);
    const [header, , ...rows] = lines(ls.stdout);
    assert.match(header!, /^NAME\s+BINDINGS\s+DEPTH\s+IN FLIGHT\s+DELAYED\s+DEAD LETTERS\s+OLDEST$/);
    const row = rows.find((r) => r.startsWith(`${q} `));
    assert.ok(row, `a row for ${q} in:\n${ls.stdout}`);
    assert.match(row, new RegExp(`^${q}\\s+${q}\\.#, x${q}\\.\\*\\s+2\\s+0\\s+0\\s+0\\s+\\S+$`));

    const info = await ok(['queue', 'info', q]);
    assert.match(info.stdout, new RegExp(`^queue\\s+${q}$`, 'm'));
    assert.match(info.stdout, /^max length\s+50$/m);
    assert.match(info.stdout, /^ack timeout\s+2m$/m);
    assert.match(info.stdout, /^max deliveries\s+3$/m);
    assert.match(info.stdout, /^depth\s+2$/m);
    assert.match(info.stdout, /^published total\s+2$/m);
    assert.match(info.stdout, /^publish rate\s+\S+\/s$/m);
    const json = JSON.parse((await ok(['queue', 'info', q, '--json'])).stdout) as {
      name: string;
      max_length: number;
      ack_timeout_ms: number;
      stats: Record<string, unknown>;
    };
    assert.equal(json.name, q);
    assert.equal(json.max_length, 50);
    assert.equal(json.ack_timeout_ms, 120_000);
    assert.equal(json.stats['depth'], 2);
    for (const key of [
      'in_flight',
      'delayed',
      'dead_letters',
      'oldest_message_age_ms',
      'acked_total',
      'ack_rate',
    ]) {
      assert.ok(key in json.stats, `stats.${key}`);
    }

    const purge = await ok(['queue', 'purge', q]);
    assert.match(purge.stderr, new RegExp(`purged 2 messages from queue '${q}'`));
    await ok(['queue', 'rm', q]);
    const gone = await run(['queue', 'info', q]);
    assert.equal(gone.code, 1);
    assert.match(
      gone.stderr,
      new RegExp(
        `^error: queue '${q}' does not exist — create it with: messaging queue add ${q} --bind 'orders\\.#'$`,
        'm',
      ),
    );
  });

  it('rejects bad arguments before connecting', async () => {
    const r = await run(['queue', 'add', name('bad'), '--overflow', 'sideways']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--overflow is reject-publish or drop-oldest/);
    const d = await run(['dlq', 'purge', name('bad'), '--older-than', 'soon']);
    assert.equal(d.code, 1);
    assert.match(d.stderr, /--older-than takes a duration such as 90s, 10m, 2h, 7d/);
  });

  it('consume --count N --ack --json prints N deliveries and acks them all before exiting', async () => {
    const q = name('consume');
    await ok(['queue', 'add', q, '--bind', `${q}.*`]);
    for (let i = 1; i <= 5; i++)
      await sdk.publish(`${q}.e`, `m${i}`, { confirm: true, headers: { i: String(i) } });
    const r = await ok(['queue', 'consume', q, '--count', '3', '--ack', '--json', '--prefetch', '2']);
    const msgs = jsonLines(r.stdout);
    assert.deepEqual(
      msgs.map((m) => m['payload']),
      ['m1', 'm2', 'm3'],
    );
    for (const m of msgs) {
      assert.equal(m['topic'], `${q}.e`);
      assert.equal(m['queue'], q);
      assert.equal(typeof m['delivery_id'], 'string');
      assert.equal(m['delivery_count'], 1);
      assert.match(String(m['id']), /^[0-9A-HJKMNP-TV-Z]{26}$/);
    }
    assert.deepEqual(msgs[0]!['headers'], { i: '1' });
    assert.match(r.stderr, /acked 3 messages/);
    const info = await sdk.queues.info(q);
    assert.equal(info.stats.acked_total, 3);
    assert.equal(info.stats.depth, 2);
  });

  it('consume without --ack leaves the messages queued, delivered again next time', async () => {
    const q = name('peek');
    await ok(['queue', 'add', q, '--bind', `${q}.*`]);
    await sdk.publish(`${q}.e`, 'hello', { confirm: true });
    const first = await ok(['queue', 'consume', q, '--count', '1']);
    assert.match(first.stderr, /NOT acked: they return to the queue/);
    assert.match(
      first.stdout,
      new RegExp(`^\\[${q}\\.e\\] hello  \\(delivery_id=\\S+ delivery_count=1\\)\n$`),
    );
    const second = await ok(['queue', 'consume', q, '--count', '1', '--ack']);
    assert.match(second.stdout, /hello {2}\(delivery_id=\S+ delivery_count=\d\)/);
    assert.equal((await sdk.queues.info(q)).stats.depth, 0);
  });

  it('consume of a missing queue says how to create it', async () => {
    const q = name('nope');
    const r = await run(['queue', 'consume', q, '--count', '1']);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`queue '${q}' does not exist — create it with: messaging queue add ${q}`),
    );
  });
});

describe('messaging pub (durable)', () => {
  it('--confirm exits 1 unless every message was stored: a full queue refuses the second', async () => {
    const q = name('full');
    await ok(['queue', 'add', q, '--bind', `${q}.in`, '--max-length', '1']);
    const r = await run(['pub', `${q}.in`, 'x', '--count', '2', '--confirm']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`^error: 1 of 2 messages to ${q}\\.in not confirmed: .*QUEUE_FULL`, 'm'),
    );
    assert.equal((await sdk.queues.info(q)).stats.depth, 1);
  });

  it('--confirm says where the messages were stored', async () => {
    const q = name('stored');
    const s = name('stored-s');
    await ok(['queue', 'add', q, '--bind', `${q}.#`]);
    await ok(['stream', 'add', s, '--bind', `${q}.#`]);
    const r = await ok(['pub', `${q}.x`, 'x', '--count', '2', '--confirm']);
    assert.match(
      r.stderr,
      new RegExp(
        `published 2 messages to ${q}\\.x \\(all confirmed\\); stored in queue ${q} and stream ${s}`,
      ),
    );
    const none = await run(['pub', `${q}-unbound.x`, 'x', '--confirm']);
    assert.equal(none.code, 1, 'nothing durable stored it, so it was not confirmed durable');
    assert.match(none.stderr, /not stored: no queue or stream is bound to/);
  });

  it('--queue publishes directly (confirmed) with priority, ttl and delay', async () => {
    const q = name('direct');
    await ok(['queue', 'add', q]);
    const low = await ok(['pub', 'any.topic', 'low', '--queue', q, '--priority', 'low', '--ttl', '1h']);
    assert.match(low.stderr, new RegExp(`published 1 message to queue '${q}' \\(all confirmed\\); stored`));
    await ok(['pub', 'any.topic', 'high', '--queue', q, '--priority', '4']);
    // Long enough that the next CLI start (slow on a loaded machine) still finds it delayed.
    await ok(['pub', 'any.topic', 'later', '--queue', q, '--delay', '4000']);
    assert.equal((await sdk.queues.info(q)).stats.delayed, 1);
    const [a, b] = await sdk.queues.pull(q, { max: 5 });
    assert.equal(a!.string(), 'high');
    assert.equal(a!.priority, 4);
    assert.equal(b!.string(), 'low');
    assert.equal(b!.ttlMs, 3_600_000);
    assert.equal(b!.topic, 'any.topic');
    await Promise.all([a!.ack(), b!.ack()]);
    const later = await ok(['queue', 'consume', q, '--count', '1', '--ack', '--json']);
    const [m] = jsonLines(later.stdout);
    assert.equal(m!['payload'], 'later');
    assert.ok(Number(m!['deliver_at']) <= Date.now());

    const missing = name('missing');
    const r = await run(['pub', 'any.topic', 'x', '--queue', missing]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `not confirmed: queue '${missing}' does not exist — create it with: messaging queue add ${missing}`,
      ),
    );
    const bad = await run(['pub', 'any.topic', 'x', '--priority', 'urgent']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /priority is 0-5 or one of lowest, low, normal, high, highest, critical/);
  });
});

describe('messaging dlq', () => {
  it('ls, replay by id and purge', async () => {
    const q = name('dlq');
    await ok(['queue', 'add', q, '--bind', `${q}.in`]);
    for (const p of ['bad-1', 'bad-2']) await sdk.publish(`${q}.in`, p, { confirm: true });
    for (const m of await sdk.queues.pull(q, { max: 2 }))
      await m.nack({ requeue: false, error: `cannot parse ${m.string()}` });

    const table = await ok(['dlq', 'ls', q]);
    const [header, , ...rows] = lines(table.stdout);
    assert.match(header!, /^ID\s+REASON\s+FAILURES\s+AGE\s+TOPIC\s+LAST ERROR\s+PAYLOAD$/);
    assert.equal(rows.length, 2);
    assert.match(
      rows[0]!,
      new RegExp(`rejected\\s+1\\s+\\S+\\s+${q}\\.in\\s+cannot parse bad-\\d\\s+bad-\\d$`),
    );

    const dead = jsonLines((await ok(['dlq', 'ls', q, '--json'])).stdout);
    assert.equal(dead.length, 2);
    const first = dead.find((d) => (d['message'] as Record<string, unknown>)['payload'] === 'bad-1')!;
    assert.equal(first['reason'], 'rejected');
    assert.equal(first['failures'], 1);
    assert.equal(first['last_error'], 'cannot parse bad-1');
    assert.equal(typeof first['dead_lettered_at'], 'number');

    const replay = await ok(['dlq', 'replay', q, '--id', String(first['id'])]);
    assert.match(replay.stderr, new RegExp(`replayed 1 dead letter into queue '${q}'`));
    const back = await ok(['queue', 'consume', q, '--count', '1', '--ack', '--json']);
    assert.equal(jsonLines(back.stdout)[0]!['payload'], 'bad-1');

    const keep = await ok(['dlq', 'purge', q, '--older-than', '1h']);
    assert.match(keep.stderr, /purged 0 dead letters .*older than 1h/);
    const purge = await ok(['dlq', 'purge', q]);
    assert.match(purge.stderr, new RegExp(`purged 1 dead letter from queue '${q}'`));
    const empty = await ok(['dlq', 'ls', q]);
    assert.match(empty.stderr, /has no dead letters/);

    await sdk.publish(`${q}.in`, 'again', { confirm: true });
    const [m] = await sdk.queues.pull(q);
    await m!.nack({ requeue: false });
    const all = await ok(['dlq', 'replay', q]);
    assert.match(all.stderr, /replayed 1 dead letter/);
  });
});

describe('messaging stream', () => {
  it('add, ls, info, read from earliest / a sequence / a time / last, and rm', async () => {
    const s = name('s');
    const t = `${s}.ev`;
    await ok(['stream', 'add', s, '--bind', `${s}.#`, '--max-age', '7d', '--max-msgs', '1000']);
    for (let i = 1; i <= 3; i++) await sdk.publish(t, `m${i}`, { confirm: true });
    await new Promise((r) => setTimeout(r, 30));
    const midpoint = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 30));
    for (let i = 4; i <= 5; i++) await sdk.publish(t, `m${i}`, { confirm: true });

    const all = await ok(['stream', 'read', s, '--from', 'earliest']);
    assert.deepEqual(
      lines(all.stdout),
      [1, 2, 3, 4, 5].map((i) => `#${i} [${t}] m${i}`),
    );
    const json = jsonLines((await ok(['stream', 'read', s, '--from', '2', '--count', '2', '--json'])).stdout);
    assert.deepEqual(
      json.map((m) => [m['stream'], m['seq'], m['payload']]),
      [
        [s, 2, 'm2'],
        [s, 3, 'm3'],
      ],
    );
    const byTime = await ok(['stream', 'read', s, '--from', midpoint]);
    assert.deepEqual(lines(byTime.stdout), [`#4 [${t}] m4`, `#5 [${t}] m5`]);
    const last = await ok(['stream', 'read', s, '--from', 'last']);
    assert.deepEqual(lines(last.stdout), [`#5 [${t}] m5`]);
    const latest = await ok(['stream', 'read', s, '--from', 'latest']);
    assert.equal(latest.stdout, '');

    const ls = await ok(['stream', 'ls']);
    assert.match(ls.stdout, /^NAME\s+BINDINGS\s+MESSAGES\s+BYTES\s+FIRST SEQ\s+LAST SEQ\s+READERS$/m);
    assert.match(ls.stdout, new RegExp(`^${s}\\s+${s}\\.#\\s+5\\s+.+\\s+1\\s+5\\s+-$`, 'm'));
    const info = await ok(['stream', 'info', s]);
    assert.match(info.stdout, /^retention\s+max age 7d, max 1,000 messages$/m);
    assert.match(info.stdout, /^last seq\s+5$/m);

    await ok(['stream', 'rm', s]);
    const gone = await run(['stream', 'read', s]);
    assert.equal(gone.code, 1);
    assert.match(
      gone.stderr,
      new RegExp(`stream '${s}' does not exist — create it with: messaging stream add ${s} --bind`),
    );
    const bad = await run(['stream', 'read', s, '--from', 'yesterday']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--from is earliest, latest, last, a sequence number, or an ISO time/);
  });

  it('a durable reader continues across runs', async () => {
    const s = name('reader');
    await ok(['stream', 'add', s, '--bind', `${s}.#`]);
    for (let i = 1; i <= 5; i++) await sdk.publish(`${s}.e`, `m${i}`, { confirm: true });
    const first = await ok(['stream', 'read', s, '--reader', 'export', '--count', '2']);
    assert.deepEqual(lines(first.stdout), [`#1 [${s}.e] m1`, `#2 [${s}.e] m2`]);
    const second = await ok(['stream', 'read', s, '--reader', 'export']);
    assert.deepEqual(
      lines(second.stdout),
      [3, 4, 5].map((i) => `#${i} [${s}.e] m${i}`),
    );
    const third = await ok(['stream', 'read', s, '--reader', 'export']);
    assert.equal(third.stdout, '');
    assert.match(third.stderr, /no messages to read .* for reader 'export'/);
    const info = JSON.parse((await ok(['stream', 'info', s, '--json'])).stdout) as {
      readers: Record<string, number>;
    };
    assert.deepEqual(info.readers, { export: 6 });
  });

  it('read --follow tails live messages and saves the reader position', async () => {
    const s = name('follow');
    await ok(['stream', 'add', s, '--bind', `${s}.#`]);
    await sdk.publish(`${s}.e`, 'old', { confirm: true });
    const tail = start([
      'stream',
      'read',
      s,
      '--follow',
      '--count',
      '2',
      '--reader',
      'live',
      '--from',
      'latest',
    ]);
    await tail.stderrMatch(/following stream/);
    await sdk.publish(`${s}.e`, 'new-1', { confirm: true });
    await sdk.publish(`${s}.e`, 'new-2', { confirm: true });
    const r = await tail.done;
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r.stdout), [`#2 [${s}.e] new-1`, `#3 [${s}.e] new-2`]);
    assert.equal(await sdk.streams.readerPosition(s, 'live'), 4);
    // The next run with the reader continues from there.
    await sdk.publish(`${s}.e`, 'new-3', { confirm: true });
    const next = await ok(['stream', 'read', s, '--reader', 'live']);
    assert.deepEqual(lines(next.stdout), [`#4 [${s}.e] new-3`]);
  });
});
