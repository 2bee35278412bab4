/**
 * Authentication and authorization end to end: JWTs in HELLO and as REST Bearer tokens, the
 * `permissions` claim on every front door (PERMISSION_DENIED keeps the connection open), request/reply
 * through private inboxes, token expiry on a live connection, token issuing and refresh (REST and CLI),
 * MESSAGING_TOKEN / --token in the CLI, API_KEY on the admin API, and RS256 with key files.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { connect, type Connection } from '../../src/client/index.ts';
import { encodeControl, encodePub, FrameType } from '../../src/protocol/index.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { hsToken, rsaKeys, runCli, SECRET, startCaptured, tempDir, type CapturedServer } from './helpers.ts';

const API_KEY = 'test-api-key-0123456789abcdef';
const text = (s: string): Uint8Array => new TextEncoder().encode(s);

async function hello(port: number, token?: string): Promise<RawClient> {
  const c = await RawClient.connect(port);
  c.write(encodeControl(FrameType.HELLO, 1, { version: 1, ...(token !== undefined ? { token } : {}) }));
  return c;
}

async function ready(port: number, token: string): Promise<RawClient> {
  const c = await hello(port, token);
  await c.next((f) => f.type === FrameType.WELCOME);
  return c;
}

const LIMITED = {
  publish: ['orders.*', 'svc.echo'],
  subscribe: ['orders.#', 'svc.echo'],
  queues: ['orders', 'tmp-*'],
  streams: ['audit-trail'],
};

describe('JWT (HS256) authentication and permissions', () => {
  let ts: CapturedServer;
  let free: string;
  let limited: string;
  before(async () => {
    ts = await startCaptured({
      'security.enable_auth': 'true',
      'security.jwt_secret': SECRET,
      'security.api_key': API_KEY,
      'security.auth.token_expiry': '600',
    });
    free = await hsToken({ sub: 'admin' });
    limited = await hsToken({ sub: 'alice', permissions: LIMITED });
  });
  after(() => ts.close());

  it('refuses HELLO without a token (AUTH_REQUIRED) or with a bad one (AUTH_FAILED), then closes', async () => {
    const none = await hello(ts.port);
    assert.equal((await none.error()).code, 'AUTH_REQUIRED');
    await none.waitClosed();
    const bad = await hello(
      ts.port,
      await hsToken({ sub: 'x' }, { secret: 'another-secret-of-thirty-two-bytes!!' }),
    );
    const err = await bad.error();
    assert.equal(err.code, 'AUTH_FAILED');
    assert.match(err.message, /bad signature/);
    await bad.waitClosed();
    await assert.rejects(connect({ servers: `tcp://127.0.0.1:${ts.port}`, reconnect: false }), {
      code: 'AUTH_REQUIRED',
    });
  });

  it('frames pipelined behind HELLO wait for the check and then run in order', async () => {
    const c = await RawClient.connect(ts.port);
    c.write(
      Buffer.concat([
        encodeControl(FrameType.HELLO, 1, { version: 1, token: free }),
        encodeControl(FrameType.SUB, 2, { sid: 1, pattern: 'pipe.x' }),
        encodePub(3, 'pipe.x', text('first')),
      ]),
    );
    await c.next((f) => f.type === FrameType.WELCOME);
    const msg = await c.next((f) => f.type === FrameType.MSG);
    assert.ok(msg.type === FrameType.MSG && new TextDecoder().decode(msg.payload) === 'first');
    c.close();
  });

  it('a permission violation answers PERMISSION_DENIED and the connection stays open', async () => {
    const c = await ready(ts.port, limited);
    c.write(encodePub(7, 'payments.refund', text('x')));
    const denied = await c.error();
    assert.equal(denied.reqId, 7);
    assert.equal(denied.code, 'PERMISSION_DENIED');
    c.write(encodeControl(FrameType.SUB, 8, { sid: 1, pattern: '#' }));
    assert.equal((await c.error()).code, 'PERMISSION_DENIED');
    c.write(encodeControl(FrameType.SUB, 9, { sid: 2, pattern: 'orders.eu.*' }));
    await c.next((f) => f.type === FrameType.OK);
    c.write(encodePub(10, 'orders.created', text('ok')));
    await c.next((f) => f.type === FrameType.OK);
    assert.equal(c.closed, false);
    c.close();
  });

  it('subscribing needs the pattern to be inside a permitted pattern', async () => {
    const conn = await connect({ servers: `tcp://127.0.0.1:${ts.port}`, token: limited, reconnect: false });
    await conn.subscribe('orders.*').ready();
    await conn.subscribe('orders.eu.#').ready();
    await assert.rejects(conn.subscribe('*.created').ready(), { code: 'PERMISSION_DENIED' });
    await assert.rejects(conn.subscribe('#').ready(), { code: 'PERMISSION_DENIED' });
    assert.equal(conn.isClosed, false);
    await conn.close();
  });

  it('request/reply works with restricted tokens through private _INBOX subscriptions', async () => {
    const responder = await connect({
      servers: `tcp://127.0.0.1:${ts.port}`,
      token: limited,
      reconnect: false,
    });
    const requester = await connect({
      servers: `tcp://127.0.0.1:${ts.port}`,
      token: limited,
      reconnect: false,
    });
    const sub = responder.subscribe('svc.echo', { callback: (m) => void m.respond(`echo:${m.string()}`) });
    await responder.flush();
    const reply = await requester.request('svc.echo', 'hi', { timeoutMs: 3000 });
    assert.equal(reply.string(), 'echo:hi');
    // But nobody may listen on all inboxes.
    const snoop = await ready(ts.port, limited);
    snoop.write(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: '_INBOX.#' }));
    assert.equal((await snoop.error()).code, 'PERMISSION_DENIED');
    snoop.close();
    sub.unsubscribe();
    await responder.close();
    await requester.close();
  });

  it('queues and streams: by name, bindings inside subscribe permissions, lists filtered', async () => {
    const admin = await connect({ servers: `tcp://127.0.0.1:${ts.port}`, token: free, reconnect: false });
    await admin.queues.declare({ name: 'secret-queue', bindings: ['payments.#'] });
    const c = await connect({ servers: `tcp://127.0.0.1:${ts.port}`, token: limited, reconnect: false });
    await c.queues.declare({ name: 'orders', bindings: ['orders.#'] });
    await assert.rejects(c.queues.declare({ name: 'tmp-1', bindings: ['#'] }), { code: 'PERMISSION_DENIED' });
    await assert.rejects(c.queues.declare({ name: 'payments', bindings: ['orders.#'] }), {
      code: 'PERMISSION_DENIED',
    });
    await assert.rejects(c.queues.info('secret-queue'), { code: 'PERMISSION_DENIED' });
    await assert.rejects(c.queues.purge('secret-queue'), { code: 'PERMISSION_DENIED' });
    await assert.rejects(c.command('dlq.list', { queue: 'secret-queue' }), { code: 'PERMISSION_DENIED' });
    await assert.rejects(c.command('stream.read', { stream: 'other' }), { code: 'PERMISSION_DENIED' });
    // A PUB straight into a queue needs that queue.
    await assert.rejects(c.publishConfirmed('orders.x', 'y', { queue: 'secret-queue' }), {
      code: 'PERMISSION_DENIED',
    });
    const names = ((await c.command('queue.list')) as { queues: Array<{ name: string }> }).queues.map(
      (q) => q.name,
    );
    assert.deepEqual(names, ['orders']);
    const all = ((await admin.command('queue.list')) as { queues: Array<{ name: string }> }).queues.map(
      (q) => q.name,
    );
    assert.ok(all.includes('secret-queue'));
    await c.close();
    await admin.close();
  });

  it('REST: Bearer tokens, 401 without, 403 outside the permissions', async () => {
    const url = `http://127.0.0.1:${ts.port}`;
    const post = (path: string, body: unknown, token?: string): Promise<Response> =>
      fetch(`${url}${path}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify(body),
      });
    const none = await post('/v1/publish', { topic: 'orders.x', payload: 'a' });
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { code: string }).code, 'AUTH_REQUIRED');
    assert.match(none.headers.get('www-authenticate') ?? '', /Bearer/);
    assert.equal((await post('/v1/publish', { topic: 'orders.x', payload: 'a' }, 'garbage')).status, 401);
    assert.equal((await post('/v1/publish', { topic: 'orders.x', payload: 'a' }, limited)).status, 202);
    const denied = await post('/v1/publish', { topic: 'payments.x', payload: 'a' }, limited);
    assert.equal(denied.status, 403);
    assert.equal(((await denied.json()) as { code: string }).code, 'PERMISSION_DENIED');
    const list = await fetch(`${url}/v1/queues`, { headers: { authorization: `Bearer ${limited}` } });
    const names = ((await list.json()) as { queues: Array<{ name: string }> }).queues.map((q) => q.name);
    assert.ok(!names.includes('secret-queue'));
    assert.equal(
      (await fetch(`${url}/v1/queues/secret-queue`, { headers: { authorization: `Bearer ${limited}` } }))
        .status,
      403,
    );
  });

  it('an expired token is refused, and a token expiring on a live connection closes it with TOKEN_EXPIRED', async () => {
    const expired = await hello(ts.port, await hsToken({ sub: 'late' }, { expS: -60 }));
    assert.equal((await expired.error()).code, 'TOKEN_EXPIRED');
    const c = await ready(ts.port, await hsToken({ sub: 'brief' }, { expS: 2 }));
    c.write(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: 'x.y' }));
    await c.next((f) => f.type === FrameType.OK);
    const err = await c.error(5000);
    assert.equal(err.code, 'TOKEN_EXPIRED');
    await c.waitClosed();
  });

  it('issues and refreshes tokens through POST /v1/auth/token for holders of API_KEY', async () => {
    const url = `http://127.0.0.1:${ts.port}/v1/auth/token`;
    const wrong = await fetch(url, {
      method: 'POST',
      headers: { authorization: 'Bearer nope', 'content-type': 'application/json' },
      body: JSON.stringify({ subject: 'svc' }),
    });
    assert.equal(wrong.status, 401);
    const res = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ subject: 'svc', permissions: { publish: ['orders.*'] }, expires_in: 120 }),
    });
    assert.equal(res.status, 200);
    const tokens = (await res.json()) as { access_token: string; refresh_token: string; expires_in: number };
    assert.equal(tokens.expires_in, 120);
    const c = await connect({
      servers: `tcp://127.0.0.1:${ts.port}`,
      token: tokens.access_token,
      reconnect: false,
    });
    await c.publishConfirmed('orders.issued', 'x');
    await assert.rejects(c.publishConfirmed('other.topic', 'x'), { code: 'PERMISSION_DENIED' });
    await c.close();
    // The refresh token cannot connect, only be exchanged.
    const asAccess = await hello(ts.port, tokens.refresh_token);
    assert.equal((await asAccess.error()).code, 'AUTH_FAILED');
    const refreshed = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token }),
    });
    assert.equal(refreshed.status, 200);
    const again = (await refreshed.json()) as { access_token: string };
    const c2 = await connect({
      servers: `tcp://127.0.0.1:${ts.port}`,
      token: again.access_token,
      reconnect: false,
    });
    await assert.rejects(c2.publishConfirmed('other.topic', 'x'), { code: 'PERMISSION_DENIED' });
    await c2.close();
    const badRefresh = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: tokens.access_token }),
    });
    assert.equal(badRefresh.status, 401);
  });

  it('the CLI: `auth token` with API_KEY, then --token and MESSAGING_TOKEN', async () => {
    const server = `tcp://127.0.0.1:${ts.port}`;
    const issued = await runCli(
      ['--server', server, 'auth', 'token', '--subject', 'cli', '--publish', 'orders.*'],
      { API_KEY },
    );
    assert.equal(issued.code, 0, issued.stderr);
    const token = issued.stdout.trim();
    assert.match(token, /^ey[\w-]+\.[\w-]+\.[\w-]+$/);
    const viaEnv = await runCli(['--server', server, 'pub', 'orders.cli', 'x'], { MESSAGING_TOKEN: token });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    const viaFlag = await runCli(['--server', server, '--token', token, 'pub', 'orders.cli', 'x']);
    assert.equal(viaFlag.code, 0, viaFlag.stderr);
    const denied = await runCli([
      '--server',
      server,
      '--token',
      token,
      'pub',
      'payments.cli',
      'x',
      '--confirm',
    ]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /PERMISSION_DENIED|permission|may not/i);
    const none = await runCli(['--server', server, 'pub', 'orders.cli', 'x']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /requires authentication/);
    const json = await runCli(
      ['--server', server, 'auth', 'token', '--subject', 'cli', '--unrestricted', '--json'],
      { API_KEY },
    );
    const pair = JSON.parse(json.stdout) as { refresh_token: string };
    const refreshed = await runCli(['--server', server, 'auth', 'refresh', pair.refresh_token]);
    assert.equal(refreshed.code, 0, refreshed.stderr);
    const noKey = await runCli([
      '--server',
      server,
      'auth',
      'token',
      '--subject',
      'cli',
      '--api-key',
      'wrong',
    ]);
    assert.equal(noKey.code, 2);
  });

  it('API_KEY protects the admin API; health, readiness and metrics stay open for probes', async () => {
    const admin = `http://127.0.0.1:${ts.adminPort}`;
    for (const path of ['/health', '/ready', '/metrics', '/health/detailed']) {
      assert.equal((await fetch(`${admin}${path}`)).status, 200, path);
    }
    const none = await fetch(`${admin}/v1/connections`);
    assert.equal(none.status, 401);
    assert.equal(
      (await fetch(`${admin}/v1/connections`, { headers: { authorization: 'Bearer wrong' } })).status,
      401,
    );
    // With the key the request reaches the admin routes (none is registered here: 404).
    assert.equal((await fetch(`${admin}/v1/connections`, { headers: { 'x-api-key': API_KEY } })).status, 404);
  });
});

describe('JWT (RS256) with key files', () => {
  let ts: CapturedServer;
  let dir: string;
  let keys: ReturnType<typeof rsaKeys>;
  before(async () => {
    dir = tempDir('rsa');
    keys = rsaKeys(dir);
    ts = await startCaptured({
      'security.enable_auth': 'true',
      'security.auth.algorithm': 'RS256',
      'security.auth.public_key_file': keys.publicFile,
      'security.auth.private_key_file': keys.privateFile,
      'security.api_key': API_KEY,
    });
  });
  after(async () => {
    await ts.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('issues RS256 tokens with private_key_file and accepts them; HS256 tokens are refused', async () => {
    const res = await fetch(`http://127.0.0.1:${ts.port}/v1/auth/token`, {
      method: 'POST',
      headers: { 'x-api-key': API_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ subject: 'rs' }),
    });
    assert.equal(res.status, 200);
    const { access_token } = (await res.json()) as { access_token: string };
    assert.equal(JSON.parse(Buffer.from(access_token.split('.')[0]!, 'base64url').toString()).alg, 'RS256');
    const c: Connection = await connect({
      servers: `tcp://127.0.0.1:${ts.port}`,
      token: access_token,
      reconnect: false,
    });
    await c.close();
    const hs = await hello(ts.port, await hsToken({ sub: 'x' }));
    assert.equal((await hs.error()).code, 'AUTH_FAILED');
  });
});
