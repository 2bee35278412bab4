/**
 * Hostile tokens: `alg: none`, HS/RS confusion, bad signatures, expired and not-yet-valid tokens, wrong
 * audience or issuer, missing claims, refresh tokens used to connect, malformed permission claims and
 * absurd sizes. Each is refused with AUTH_FAILED (or TOKEN_EXPIRED) and a reason that names no secret.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { SignJWT } from 'jose';
import { encodeControl, FrameType, MessagingError } from '../../src/protocol/index.ts';
import { JwtService, type JwtSettings } from '../../src/security/jwt.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { hsToken, rsaKeys, SECRET, startCaptured, tempDir } from './helpers.ts';

const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
const now = (): number => Math.floor(Date.now() / 1000);

const base: JwtSettings = {
  algorithm: 'HS256',
  secret: SECRET,
  publicKeyFile: '',
  privateKeyFile: '',
  tokenExpiry: 3600,
  refreshTokenExpiry: 86400,
  audience: '',
  issuer: '',
};

async function refused(
  service: JwtService,
  token: string,
  code = 'AUTH_FAILED',
  reason?: RegExp,
): Promise<void> {
  await assert.rejects(service.verifyAccess(token, '127.0.0.1'), (err: MessagingError) => {
    assert.equal(err.code, code, err.message);
    if (reason) assert.match(err.message, reason);
    assert.ok(!err.message.includes(SECRET));
    return true;
  });
}

describe('hostile JWTs (HS256 server)', () => {
  const hs = new JwtService(base);

  it('accepts a good token', async () => {
    const id = await hs.verifyAccess(await hsToken({ sub: 'ok' }), '10.0.0.1');
    assert.equal(id.subject, 'ok');
    assert.equal(id.address, '10.0.0.1');
  });

  it('refuses alg: none, with or without a signature', async () => {
    const payload = b64({ sub: 'root', exp: now() + 600 });
    await refused(hs, `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.`);
    await refused(hs, `${b64({ alg: 'none' })}.${payload}.${Buffer.from('x').toString('base64url')}`);
    await refused(hs, `${b64({ alg: 'NONE' })}.${payload}.`);
  });

  it('refuses a bad signature, a tampered payload and another algorithm', async () => {
    const good = await hsToken({ sub: 'a' });
    const [h, p, s] = good.split('.');
    await refused(hs, `${h}.${p}.${s!.slice(0, -2)}xx`, 'AUTH_FAILED', /bad signature/);
    await refused(hs, `${h}.${b64({ sub: 'root', exp: now() + 600 })}.${s}`, 'AUTH_FAILED', /bad signature/);
    const hs512 = await new SignJWT({ sub: 'a', exp: now() + 60 })
      .setProtectedHeader({ alg: 'HS512' })
      .sign(new TextEncoder().encode(SECRET));
    await refused(hs, hs512, 'AUTH_FAILED', /algorithm/);
  });

  it('refuses expired and not-yet-valid tokens, and tokens without exp or sub', async () => {
    await refused(hs, await hsToken({ sub: 'a' }, { expS: -60 }), 'TOKEN_EXPIRED');
    await refused(hs, await hsToken({ sub: 'a', nbf: now() + 3600 }), 'AUTH_FAILED', /nbf/);
    const noExp = await new SignJWT({ sub: 'a' })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(SECRET));
    await refused(hs, noExp, 'AUTH_FAILED', /exp/);
    await refused(hs, await hsToken({}), 'AUTH_FAILED', /sub/);
  });

  it('refuses malformed tokens, absurd sizes and malformed permission claims', async () => {
    for (const junk of ['x', 'a.b.c', '...', `${b64({ alg: 'HS256' })}.!!!.abc`, 'ey'.repeat(10_000)])
      await refused(hs, junk);
    await refused(
      hs,
      await hsToken({ sub: 'a', permissions: { publish: 'orders.*' } }),
      'AUTH_FAILED',
      /permissions/,
    );
    await refused(
      hs,
      await hsToken({ sub: 'a', permissions: { subscribe: ['a..b'] } }),
      'AUTH_FAILED',
      /permissions/,
    );
  });

  it('a refresh token cannot be used to connect', async () => {
    const pair = await hs.issue('svc', undefined);
    await refused(hs, pair.refresh_token, 'AUTH_FAILED', /refresh token/);
    const again = await hs.verifyRefresh(pair.refresh_token);
    assert.equal(again.subject, 'svc');
    await assert.rejects(hs.verifyRefresh(pair.access_token), { code: 'AUTH_FAILED' });
  });

  it('audience and issuer are enforced when configured', async () => {
    const strict = new JwtService({ ...base, audience: 'messaging', issuer: 'https://idp.example' });
    await refused(strict, await hsToken({ sub: 'a' }), 'AUTH_FAILED', /aud|iss/);
    await refused(
      strict,
      await hsToken({ sub: 'a', aud: 'other', iss: 'https://idp.example' }),
      'AUTH_FAILED',
      /aud/,
    );
    await refused(
      strict,
      await hsToken({ sub: 'a', aud: 'messaging', iss: 'https://evil.example' }),
      'AUTH_FAILED',
      /iss/,
    );
    await strict.verifyAccess(
      await hsToken({ sub: 'a', aud: 'messaging', iss: 'https://idp.example' }),
      '1.2.3.4',
    );
    const issued = await strict.issue('b', undefined);
    await strict.verifyAccess(issued.access_token, '1.2.3.4');
  });
});

describe('hostile JWTs (RS256 server)', () => {
  let dir: string;
  let keys: ReturnType<typeof rsaKeys>;
  before(() => {
    dir = tempDir('jwt');
    keys = rsaKeys(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses HS256 tokens "signed" with the public key (algorithm confusion)', async () => {
    const rs = new JwtService({
      ...base,
      algorithm: 'RS256',
      secret: '',
      publicKeyFile: keys.publicFile,
      privateKeyFile: keys.privateFile,
    });
    const confused = await new SignJWT({ sub: 'root', exp: now() + 600 })
      .setProtectedHeader({ alg: 'HS256' })
      .sign(new TextEncoder().encode(keys.publicPem));
    await refused(rs, confused, 'AUTH_FAILED', /algorithm/);
    const good = await rs.issue('svc', { publish: ['a.*'] });
    const id = await rs.verifyAccess(good.access_token, '::1');
    assert.deepEqual(id.permissions?.publish, ['a.*']);
  });

  it('an unusable key file is a start-up error that does not echo the key', () => {
    assert.throws(
      () =>
        new JwtService({
          ...base,
          algorithm: 'RS256',
          publicKeyFile: keys.privateFile.replace('private', 'missing'),
        }),
      /cannot read \[security\.auth\] public_key_file/,
    );
    assert.throws(
      () =>
        new JwtService({
          ...base,
          algorithm: 'RS256',
          publicKeyFile: keys.publicFile,
          privateKeyFile: keys.publicFile,
        }),
      (err: Error) => /private_key_file/.test(err.message) && !err.message.includes('BEGIN'),
    );
  });
});

describe('hostile JWTs against a running server with [security.auth] audience', () => {
  it('refuses a token for another audience in HELLO and over REST', async () => {
    const ts = await startCaptured({
      'security.enable_auth': 'true',
      'security.jwt_secret': SECRET,
      'security.auth.audience': 'messaging-prod',
    });
    try {
      const c = await RawClient.connect(ts.port);
      c.write(
        encodeControl(FrameType.HELLO, 1, {
          version: 1,
          token: await hsToken({ sub: 'a', aud: 'messaging-dev' }),
        }),
      );
      assert.equal((await c.error()).code, 'AUTH_FAILED');
      await c.waitClosed();
      const wrongType = await RawClient.connect(ts.port);
      wrongType.write(encodeControl(FrameType.HELLO, 1, { version: 1, token: { sub: 'root' } }));
      assert.equal((await wrongType.error()).code, 'AUTH_FAILED');
      const res = await fetch(`http://127.0.0.1:${ts.port}/v1/publish`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await hsToken({ sub: 'a', aud: 'messaging-prod' })}` },
        body: JSON.stringify({ topic: 'a.b', payload: 'x' }),
      });
      assert.equal(res.status, 202);
    } finally {
      await ts.close();
    }
  });
});
