/**
 * Token refresh in the SDK: `token` as a provider function is asked on every (re)connect, so a
 * connection whose token expires (the server closes it with TOKEN_EXPIRED) comes back with a fresh one
 * — here obtained through the server's own refresh-token grant — and its subscriptions with it. A fixed
 * token still ends the connection for good, and a failing provider fails the attempt with a clear error.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Connection, type MessagingError } from '../../src/client/index.ts';
import { until } from '../tasks/helpers.ts';
import { hsToken, SECRET, startCaptured, type CapturedServer } from './helpers.ts';

const API_KEY = 'refresh-test-api-key-0123456789';

describe('SDK token refresh', () => {
  let ts: CapturedServer;
  let admin: Connection;
  before(async () => {
    ts = await startCaptured({
      'security.enable_auth': 'true',
      'security.jwt_secret': SECRET,
      'security.api_key': API_KEY,
      'security.auth.token_expiry': '600',
    });
    admin = await connect({
      servers: `tcp://127.0.0.1:${ts.port}`,
      token: await hsToken({ sub: 'admin' }),
      reconnect: false,
    });
  });
  after(async () => {
    await admin.close();
    await ts.close();
  });

  it('a provider gives a fresh token after TOKEN_EXPIRED: the connection and its subscriptions come back', async () => {
    const tokenUrl = `http://127.0.0.1:${ts.port}/v1/auth/token`;
    const grants: string[] = [];
    let refreshToken: string | undefined;
    // What an application does: the first token from its credentials, later ones from the refresh token.
    const provider = async (): Promise<string> => {
      const grant = refreshToken ? 'refresh_token' : 'api_key';
      grants.push(grant);
      const res = await fetch(tokenUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(refreshToken ? {} : { authorization: `Bearer ${API_KEY}` }),
        },
        body: JSON.stringify(
          refreshToken
            ? { grant_type: 'refresh_token', refresh_token: refreshToken }
            : { subject: 'svc', expires_in: 2 },
        ),
      });
      assert.equal(res.status, 200, await res.clone().text());
      const body = (await res.json()) as { access_token: string; refresh_token: string };
      refreshToken = body.refresh_token;
      return body.access_token;
    };
    const c = await connect({
      servers: `tcp://127.0.0.1:${ts.port}`,
      token: provider,
      reconnectBackoff: { initialMs: 10, maxMs: 100 },
    });
    const disconnects: string[] = [];
    c.on('disconnect', (e) => disconnects.push(e.error?.code ?? ''));
    const got: string[] = [];
    const sub = c.subscribe('refresh.x', { callback: (m) => void got.push(m.string()) });
    await sub.ready();
    await admin.publishConfirmed('refresh.x', 'before');
    await until(() => got.includes('before'), 5000, 'the first message');

    // The 2-second token expires; the server closes the connection; the provider is asked again.
    await until(() => disconnects.includes('TOKEN_EXPIRED'), 10_000, 'the TOKEN_EXPIRED close');
    await until(() => !c.isReconnecting && grants.length >= 2, 10_000, 'the reconnect');
    assert.equal(c.isClosed, false);
    assert.deepEqual(grants.slice(0, 2), ['api_key', 'refresh_token']);
    await until(
      async () => {
        await admin.publishConfirmed('refresh.x', 'after');
        return got.includes('after');
      },
      5000,
      'a message on the resubscribed subscription',
    );
    await c.close();
  });

  it('a fixed token closes the connection for good when it expires', async () => {
    const c = await connect({
      servers: `tcp://127.0.0.1:${ts.port}`,
      token: await hsToken({ sub: 'fixed' }, { expS: 1 }),
      reconnectBackoff: { initialMs: 10, maxMs: 100 },
    });
    const reason = await c.closed();
    assert.equal(reason?.code, 'TOKEN_EXPIRED');
    assert.equal(c.isClosed, true);
  });

  it('a provider that fails makes the attempt fail with a readable error', async () => {
    await assert.rejects(
      connect({
        servers: `tcp://127.0.0.1:${ts.port}`,
        token: () => Promise.reject(new Error('vault is sealed')),
        reconnect: false,
      }),
      (err: MessagingError) => {
        assert.equal(err.code, 'CONNECTION_CLOSED');
        assert.match(err.message, /token provider failed: vault is sealed/);
        return true;
      },
    );
  });
});
