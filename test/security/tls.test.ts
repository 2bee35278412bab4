/**
 * TLS on the messaging port, with certificates this test makes with openssl: native (tls://), HTTPS and
 * WSS on the one port; TLS 1.3 minimum and cipher suites; mutual TLS with verify_client; plaintext and
 * bad client certificates refused cleanly; the CLI's tls:// address with --ca/--cert/--key.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { rmSync } from 'node:fs';
import { WebSocket } from 'ws';
import { connect, type WebSocketConstructor } from '../../src/client/index.ts';
import { encodeControl, FrameParser, FrameType, type Frame } from '../../src/protocol/index.ts';
import { makePki, runCli, startCaptured, type CapturedServer, type Pki } from './helpers.ts';

let pki: Pki;

/** Opens a raw TLS connection and collects frames; resolves once the handshake is done or failed. */
async function rawTls(
  port: number,
  options: ConnectionOptions,
): Promise<{ frames: Frame[]; closed: Promise<void>; write(b: Uint8Array): void; error?: Error }> {
  const frames: Frame[] = [];
  const parser = new FrameParser(1 << 20, (f) => frames.push(f));
  const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ...options });
  let error: Error | undefined;
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.on('data', (d: Buffer) => parser.push(d));
  await new Promise<void>((resolve) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', (e) => {
      error = e;
      resolve();
    });
  });
  socket.on('error', () => {});
  return { frames, closed, write: (b) => socket.write(b), ...(error ? { error } : {}) };
}

function httpsGet(
  port: number,
  path: string,
  ca: string,
  extra: Record<string, unknown> = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        ca,
        servername: 'localhost',
        headers: { 'content-type': 'application/json' },
        ...extra,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ topic: 'tls.rest', payload: 'hi' }));
  });
}

function wsWith(options: Record<string, unknown>): WebSocketConstructor {
  return class extends WebSocket {
    constructor(url: string) {
      super(url, options);
    }
  } as unknown as WebSocketConstructor;
}

before(() => {
  pki = makePki();
});
after(() => rmSync(pki.dir, { recursive: true, force: true }));

describe('TLS without client certificates', () => {
  let ts: CapturedServer;
  before(async () => {
    ts = await startCaptured({
      'security.ssl.enabled': 'true',
      'security.ssl.cert_file': pki.path('server.crt'),
      'security.ssl.key_file': pki.path('server.key'),
      'security.ssl.min_version': 'TLSv1.3',
      'security.ssl.cipher_suites': 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
      'network.connection_timeout_ms': '1000',
    });
  });
  after(() => ts.close());

  it('serves the native protocol over tls:// (SDK) with TLS 1.3 and a configured suite', async () => {
    const c = await connect({
      servers: `tls://localhost:${ts.port}`,
      tls: { ca: pki.read('ca.crt') },
      reconnect: false,
    });
    const sub = c.subscribe('tls.native');
    await c.flush();
    c.publish('tls.native', 'secret payload');
    for await (const m of sub) {
      assert.equal(m.string(), 'secret payload');
      break;
    }
    await c.close();
    const raw = await rawTls(ts.port, { ca: pki.read('ca.crt') });
    assert.equal(raw.error, undefined);
  });

  it('serves REST over https:// and WebSocket over wss:// on the same port', async () => {
    const res = await httpsGet(ts.port, '/v1/publish', pki.read('ca.crt'));
    assert.equal(res.status, 202, res.body);
    const c = await connect({
      servers: `wss://localhost:${ts.port}/v1/ws`,
      webSocket: wsWith({ ca: pki.read('ca.crt') }),
      reconnect: false,
    });
    assert.equal(c.info.server, 'messaging-system');
    assert.deepEqual((await c.publishConfirmed('tls.ws', 'x')).delivered, 0);
    await c.close();
  });

  it('refuses TLS 1.2 clients and suites outside cipher_suites', async () => {
    const old = await rawTls(ts.port, { ca: pki.read('ca.crt'), maxVersion: 'TLSv1.2' });
    assert.ok(old.error, 'a TLS 1.2 client must not get in');
    const weak = await rawTls(ts.port, { ca: pki.read('ca.crt'), ciphers: 'TLS_AES_128_GCM_SHA256' });
    assert.ok(weak.error, 'TLS_AES_128_GCM_SHA256 is not in cipher_suites');
    assert.match(ts.logs(), /refused TLS connection: handshake failed/);
  });

  it("refuses plaintext on the TLS port in the client's own protocol, with a clear log line", async () => {
    const native = netConnect(ts.port, '127.0.0.1');
    const frames: Frame[] = [];
    const parser = new FrameParser(1 << 20, (f) => frames.push(f));
    native.on('data', (d) => parser.push(d));
    await new Promise((r) => native.once('connect', r));
    native.write(encodeControl(FrameType.HELLO, 1, { version: 1 }));
    await new Promise((r) => native.once('close', r));
    const err = frames.find((f) => f.type === FrameType.ERR);
    assert.ok(err && err.type === FrameType.ERR);
    assert.equal(err.body.code, 'PROTOCOL_ERROR');
    assert.match(String(err.body.message), /requires TLS/);

    const http = await fetch(`http://127.0.0.1:${ts.port}/v1/publish`, { method: 'POST', body: '{}' });
    assert.equal(http.status, 400);
    assert.match(await http.text(), /requires TLS/);
    assert.match(ts.logs(), /refused plaintext connection on the TLS port/);
  });

  it('cuts a client that never finishes the TLS handshake (slow-loris)', async () => {
    const s = netConnect(ts.port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a ClientHello, then nothing
    const started = Date.now();
    await new Promise((r) => s.once('close', r));
    assert.ok(Date.now() - started < 4000);
  });

  it('the CLI publishes and subscribes over tls:// with --ca', async () => {
    const sub = runCli([
      '--server',
      `tls://localhost:${ts.port}`,
      '--ca',
      pki.path('ca.crt'),
      'sub',
      'tls.cli',
      '--count',
      '1',
    ]);
    await new Promise((r) => setTimeout(r, 800));
    const pub = await runCli([
      '--server',
      `tls://localhost:${ts.port}`,
      '--ca',
      pki.path('ca.crt'),
      'pub',
      'tls.cli',
      'over-tls',
    ]);
    assert.equal(pub.code, 0, pub.stderr);
    const got = await sub;
    assert.equal(got.code, 0, got.stderr);
    assert.match(got.stdout, /over-tls/);
    const wss = await runCli([
      '--server',
      `wss://localhost:${ts.port}/v1/ws`,
      '--ca',
      pki.path('ca.crt'),
      'pub',
      'tls.cli',
      'x',
    ]);
    assert.equal(wss.code, 0, wss.stderr);
    const bad = await runCli(['--server', `tls://localhost:${ts.port}`, 'pub', 'tls.cli', 'x']);
    assert.notEqual(bad.code, 0, 'without --ca the self-made CA is not trusted');
  });
});

describe('mutual TLS (verify_client)', () => {
  let ts: CapturedServer;
  before(async () => {
    ts = await startCaptured({
      'network.enable_ssl': 'true',
      'network.ssl_cert_file': pki.path('server.crt'),
      'network.ssl_key_file': pki.path('server.key'),
      'security.ssl.ca_file': pki.path('ca.crt'),
      'security.ssl.verify_client': 'true',
    });
  });
  after(() => ts.close());

  it('accepts a client certificate from ca_file', async () => {
    const c = await connect({
      servers: `tls://localhost:${ts.port}`,
      tls: { ca: pki.read('ca.crt'), cert: pki.read('client.crt'), key: pki.read('client.key') },
      reconnect: false,
    });
    assert.equal(c.info.server, 'messaging-system');
    await c.close();
  });

  it('refuses a client without a certificate or with one from another CA, saying why', async () => {
    let explained = 0;
    for (const creds of [{}, { cert: pki.read('rogue.crt'), key: pki.read('rogue.key') }]) {
      const raw = await rawTls(ts.port, { ca: pki.read('ca.crt'), ...creds });
      // TLS 1.3 clients learn of the refusal after their side of the handshake: the server says why.
      if (!raw.error) {
        explained++;
        raw.write(encodeControl(FrameType.HELLO, 1, { version: 1 }));
        await raw.closed;
        const err = raw.frames.find((f) => f.type === FrameType.ERR);
        assert.ok(err && err.type === FrameType.ERR, 'an ERR frame explains the refusal');
        assert.equal(err.body.code, 'AUTH_FAILED');
        assert.match(String(err.body.message), /client certificate refused/);
        assert.ok(!raw.frames.some((f) => f.type === FrameType.WELCOME));
      }
    }
    assert.equal(explained, 2);
    await assert.rejects(
      connect({
        servers: `tls://localhost:${ts.port}`,
        tls: { ca: pki.read('ca.crt') },
        reconnect: false,
        timeoutMs: 2000,
      }),
    );
    assert.match(ts.logs(), /client certificate did not verify/);
  });

  it('the CLI presents --cert/--key', async () => {
    const args = ['--server', `tls://localhost:${ts.port}`, '--ca', pki.path('ca.crt')];
    const ok = await runCli([
      ...args,
      '--cert',
      pki.path('client.crt'),
      '--key',
      pki.path('client.key'),
      'pub',
      'mtls.cli',
      'x',
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const refused = await runCli([...args, 'pub', 'mtls.cli', 'x']);
    assert.notEqual(refused.code, 0);
  });
});

describe('TLS start-up errors', () => {
  it('a missing certificate file stops the start with a clear message', async () => {
    await assert.rejects(
      startCaptured({
        'security.ssl.enabled': 'true',
        'security.ssl.cert_file': pki.path('nope.crt'),
        'security.ssl.key_file': pki.path('server.key'),
      }),
      /cannot read \[security\.ssl\] cert_file .*nope\.crt/,
    );
  });

  it('a key that does not match the certificate stops the start', async () => {
    await assert.rejects(
      startCaptured({
        'security.ssl.enabled': 'true',
        'security.ssl.cert_file': pki.path('server.crt'),
        'security.ssl.key_file': pki.path('client.key'),
      }),
      /invalid TLS configuration/,
    );
  });
});
