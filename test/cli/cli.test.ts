/**
 * The `messaging` binary, run as a child process against the real server (started in this process on a
 * free port): pub/sub, req/reply, bench, help texts, error messages and exit codes.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const BIN = fileURLToPath(new URL('../../bin/messaging.js', import.meta.url));

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface Running {
  child: ChildProcess;
  /** Resolves once stderr matches `re` (e.g. the "subscribed to" line). */
  stderrMatch(re: RegExp, timeoutMs?: number): Promise<void>;
  done: Promise<Result>;
}

let server: TestServer;
let unique = 0;
const topic = (name: string): string => `cli.${process.pid}.${++unique}.${name}`;

function start(
  args: string[],
  options: { env?: Record<string, string>; input?: Uint8Array | string } = {},
): Running {
  // A clean environment: the developer's MESSAGING_URL must not leak into the tests.
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '', ...options.env };
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const watchers: Array<() => void> = [];
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    for (const w of watchers) w();
  });
  if (options.input !== undefined) child.stdin!.end(options.input);
  else child.stdin!.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const done = new Promise<Result>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  return {
    child,
    done,
    stderrMatch(re, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (re.test(stderr)) {
            clearTimeout(t);
            resolve();
          }
        };
        const t = setTimeout(
          () => reject(new Error(`stderr never matched ${re}; stderr so far:\n${stderr}`)),
          timeoutMs,
        );
        watchers.push(check);
        check();
        void done.then(() => {
          if (!re.test(stderr)) {
            clearTimeout(t);
            reject(new Error(`process exited before stderr matched ${re}; stderr:\n${stderr}`));
          }
        });
      });
    },
  };
}

function run(
  args: string[],
  options: { env?: Record<string, string>; input?: Uint8Array | string } = {},
): Promise<Result> {
  return start(args, options).done;
}

const withServer = (args: string[]): string[] => [...args, '--server', server.url];

before(async () => {
  server = await startTestServer();
});

after(async () => {
  await server.close();
});

describe('messaging --help', () => {
  it('lists every command with examples, environment and exit codes', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    for (const cmd of ['pub', 'sub', 'req', 'reply', 'bench'])
      assert.match(r.stdout, new RegExp(`\\n  ${cmd} `));
    assert.match(r.stdout, /--server <url>/);
    assert.match(r.stdout, /MESSAGING_URL/);
    assert.match(r.stdout, /Exit codes:/);
    assert.match(r.stdout, /\$ messaging sub 'orders\.\*'/);
  });

  it('gives each command its options, the global options and an example', async () => {
    const cases: Array<[string[], RegExp[]]> = [
      [
        ['pub', '--help'],
        [/--count <n>/, /--header <k=v>/, /--confirm/, /\$ messaging pub /],
      ],
      [
        ['sub', '--help'],
        [/--queue <group>/, /--count <n>/, /--json/, /\$ messaging sub /],
      ],
      [
        ['req', '--help'],
        [/--header <k=v>/, /--timeout <ms>/, /\$ messaging req /],
      ],
      [
        ['reply', '--help'],
        [/--echo/, /--data <text>/, /--queue <group>/, /\$ messaging reply /],
      ],
      [
        ['bench', 'pub-sub', '--help'],
        [
          /--messages <n>.*default: 100000/,
          /--size <bytes>.*default: 128/,
          /--subscribers <k>.*default: 1/,
          /\$ messaging bench pub-sub/,
        ],
      ],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args)));
    results.forEach((r, i) => {
      const [args, patterns] = cases[i]!;
      assert.equal(r.code, 0, args.join(' '));
      assert.match(r.stdout, /Global Options:[\s\S]*--server <url>/);
      for (const p of patterns) assert.match(r.stdout, p, `${args.join(' ')} help should match ${p}`);
    });
  });
});

describe('messaging pub / sub', () => {
  it('sub --count --json prints one JSON object per message and exits 0', async () => {
    const t = topic('orders.created');
    const sub = start(withServer(['sub', t.replace(/created$/, '*'), '--count', '3', '--json']));
    await sub.stderrMatch(/subscribed to/);
    const pub = await run(
      withServer(['pub', t, 'héllo', '--count', '3', '--header', 'source=cli', '-H', 'k=v']),
    );
    assert.equal(pub.code, 0, pub.stderr);
    assert.match(pub.stderr, new RegExp(`published 3 messages to ${t.replace(/\./g, '\\.')}`));
    const r = await sub.done;
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 3);
    for (const line of lines) {
      const m = JSON.parse(line) as Record<string, unknown>;
      assert.equal(m['topic'], t);
      assert.equal(m['payload'], 'héllo');
      assert.deepEqual(m['headers'], { source: 'cli', k: 'v' });
      assert.equal(m['reply'], null);
      assert.match(String(m['id']), /^[0-9A-Z]{26}$/);
    }
  });

  it('plain sub prints "[topic] payload"; binary payloads become payload_base64 in --json; stdin with -', async () => {
    const t = topic('bin');
    const plain = start(withServer(['sub', t, '--count', '2']));
    const json = start(withServer(['sub', t, '--count', '2', '--json']));
    await Promise.all([plain.stderrMatch(/subscribed to/), json.stderrMatch(/subscribed to/)]);
    assert.equal((await run(withServer(['pub', t, 'text line']))).code, 0);
    const pub = await run(withServer(['pub', t, '-']), { input: new Uint8Array([0xff, 0xfe, 0x00]) });
    assert.equal(pub.code, 0, pub.stderr);
    const p = await plain.done;
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stdout.split('\n')[0], `[${t}] text line`);
    const j = await json.done;
    const second = JSON.parse(j.stdout.trim().split('\n')[1]!) as Record<string, unknown>;
    assert.equal(second['payload'], undefined);
    assert.equal(second['payload_base64'], Buffer.from([0xff, 0xfe, 0x00]).toString('base64'));
  });

  it('sub --queue splits messages between CLI subscribers', async () => {
    const t = topic('q');
    const a = start(withServer(['sub', t, '--queue', 'g', '--count', '1']));
    const b = start(withServer(['sub', t, '--queue', 'g', '--count', '1']));
    await Promise.all([a.stderrMatch(/queue group 'g'/), b.stderrMatch(/queue group 'g'/)]);
    // Each member leaves after one message; keep publishing until both have left.
    const both = Promise.all([a.done, b.done]);
    let finished = false;
    void both.then(() => (finished = true));
    for (let i = 0; i < 50 && !finished; i++) {
      await run(withServer(['pub', t, `m${i}`]));
    }
    const [ra, rb] = await both;
    assert.equal(ra.code, 0);
    assert.equal(rb.code, 0);
    assert.notEqual(ra.stdout, rb.stdout, 'each member got a different message');
  });

  it('sub exits 0 on Ctrl-C (SIGINT) after draining', async () => {
    const sub = start(withServer(['sub', topic('forever')]));
    await sub.stderrMatch(/subscribed to/);
    sub.child.kill('SIGINT');
    const r = await sub.done;
    assert.equal(r.code, 0, r.stderr);
  });

  it('pub --confirm exits 0 only when every message was stored durably', async () => {
    const bound = topic('c');
    const add = await run(withServer(['queue', 'add', `q-${bound.replace(/\./g, '-')}`, '--bind', bound]));
    assert.equal(add.code, 0, add.stderr);
    const ok = await run(withServer(['pub', bound, 'x', '--count', '2', '--confirm']));
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /published 2 messages to .* \(all confirmed\)/);
    const unbound = await run(withServer(['pub', topic('nobody'), 'x', '--confirm']));
    assert.equal(unbound.code, 1, 'a message no queue or stream stored was not confirmed durable');
    assert.match(unbound.stderr, /not stored: no queue or stream is bound/);
    const bad = await run(withServer(['pub', 'bad..topic', 'x', '--confirm']));
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^error: 1 of 1 message to bad\.\.topic not confirmed: .*INVALID_TOPIC/m);
  });

  it('works over WebSocket with --server ws://', async () => {
    const t = topic('ws');
    const sub = start(['sub', t, '--count', '1', '--server', server.wsUrl]);
    await sub.stderrMatch(/subscribed to/);
    const pub = await run(['pub', t, 'via ws', '--server', server.wsUrl]);
    assert.equal(pub.code, 0, pub.stderr);
    const r = await sub.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `[${t}] via ws\n`);
  });
});

describe('messaging req / reply', () => {
  it('reply --echo answers; req prints the reply payload (server from MESSAGING_URL)', async () => {
    const t = topic('echo');
    const reply = start(['reply', t, '--echo', '--count', '1'], { env: { MESSAGING_URL: server.url } });
    await reply.stderrMatch(/answering requests/);
    const req = await run(['req', t, 'ping'], { env: { MESSAGING_URL: server.url } });
    assert.equal(req.code, 0, req.stderr);
    assert.equal(req.stdout, 'ping\n');
    const r = await reply.done;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `[${t}] ping\n`);
  });

  it('reply --data answers with fixed data', async () => {
    const t = topic('fixed');
    const reply = start(withServer(['reply', t, '--data', 'pong', '--count', '1']));
    await reply.stderrMatch(/answering requests/);
    const req = await run(withServer(['req', t, 'ping', '--header', 'a=b']));
    assert.equal(req.stdout, 'pong\n');
    assert.equal((await reply.done).code, 0);
  });

  it('req with nobody listening exits 1 with "no responders"', async () => {
    const t = topic('nobody');
    const r = await run(withServer(['req', t, 'x']));
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `error: no responders for '${t}' — is a service subscribed?\n`);
  });

  it('req that gets no answer in time exits 1 with the timeout', async () => {
    const t = topic('silent');
    // A plain subscriber takes the request but never answers.
    const sub = start(withServer(['sub', t, '--count', '1']));
    await sub.stderrMatch(/subscribed to/);
    const r = await run(withServer(['req', t, 'x', '--timeout', '300']));
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`^error: no reply from '${t.replace(/\./g, '\\.')}' within 300 ms — .*raise --timeout`),
    );
    await sub.done;
  });
});

describe('messaging errors', () => {
  it('says how to fix an unreachable server and exits 2', async () => {
    const probe = await startTestServer();
    const url = probe.url;
    await probe.close();
    const cases = [
      ['pub', 't', 'x', '--server', url],
      ['sub', 't', '--server', url],
      ['req', 't', 'x', '--server', url],
    ];
    const results = await Promise.all(cases.map((args) => run(args)));
    for (const r of results) {
      assert.equal(r.code, 2);
      assert.match(
        r.stderr,
        new RegExp(
          `^error: cannot reach ${url} — is messaging_server running\\? set --server or MESSAGING_URL\\n`,
        ),
      );
      assert.match(r.stderr, /ECONNREFUSED/);
    }
  });

  it('uses MESSAGING_URL for the default server', async () => {
    const r = await run(['pub', 't', 'x'], { env: { MESSAGING_URL: 'tcp://127.0.0.1:1' } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot reach tcp:\/\/127\.0\.0\.1:1 /);
  });

  it('exits 1 on usage errors with a pointer to --help', async () => {
    const missing = await run(['pub', 'only-topic']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /error: missing required argument 'data'/);
    assert.match(missing.stderr, /--help/);
    const badCount = await run(['sub', 't', '--count', 'zero']);
    assert.equal(badCount.code, 1);
    assert.match(badCount.stderr, /--count must be a positive integer/);
    const badHeader = await run(['pub', 't', 'x', '--header', 'novalue']);
    assert.equal(badHeader.code, 1);
    assert.match(badHeader.stderr, /key=value/);
  });
});

describe('messaging bench pub-sub', () => {
  it('runs 2000 messages, exits 0 and prints a result table', async () => {
    const r = await run(
      withServer(['bench', 'pub-sub', '--messages', '2000', '--subscribers', '2', '--size', '64']),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pub-sub benchmark: 2000 messages × 64 B, 2 subscribers/);
    assert.match(r.stdout, /role\s+messages\s+msgs\/s\s+MB\/s\s+elapsed/);
    assert.match(r.stdout, /publisher\s+2,000\s+[\d,.]+\s+[\d,.]+\s+[\d.]+ s/);
    assert.match(r.stdout, /subscribers \(2\)\s+4,000\s+/);
    // stderr is not a TTY here: no progress bar escape codes.
    assert.ok(!r.stderr.includes('\u001b['), 'no ANSI escape codes');
  });
});
