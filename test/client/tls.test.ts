/**
 * The client side of `tls://` in isolation: certificate verification against a given CA, refusal without
 * it, and a client certificate presented when asked. The peer is a Node `tls.createServer` speaking just
 * enough protocol (HELLO → WELCOME, PUB confirm → OK) so client failures are not mixed up with server
 * ones; the real server's TLS is tested in test/security/tls.test.ts with the same per-run PKI.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { FrameParser, FrameType, encodeControl } from '../../src/protocol/index.ts';
import { ConnectionClosedError, connect } from '../../src/client/index.ts';
import { makePki } from '../security/helpers.ts';

let dir: string;
let pem: Record<'ca' | 'serverKey' | 'serverCert' | 'clientKey' | 'clientCert', string>;
let server: tls.Server;
let port: number;
const peers: string[] = [];

let haveOpenssl = true;
try {
  execFileSync('openssl', ['version'], { stdio: 'pipe' });
} catch {
  haveOpenssl = false;
}

before(async () => {
  if (!haveOpenssl) return;
  // The same test PKI as the server's TLS tests (CA, server for localhost/127.0.0.1, client).
  const pki = makePki();
  dir = pki.dir;
  const read = pki.read;
  pem = {
    ca: read('ca.crt'),
    serverKey: read('server.key'),
    serverCert: read('server.crt'),
    clientKey: read('client.key'),
    clientCert: read('client.crt'),
  };
  server = tls.createServer(
    { key: pem.serverKey, cert: pem.serverCert, ca: pem.ca, requestCert: true, rejectUnauthorized: false },
    (socket) => {
      peers.push(String(socket.getPeerCertificate()?.subject?.CN ?? ''));
      const parser = new FrameParser(1 << 20, (f) => {
        if (f.type === FrameType.HELLO) {
          socket.write(
            encodeControl(FrameType.WELCOME, f.reqId, { version: 1, server: 'tls-fake', max_payload: 1024 }),
          );
        } else if (f.type === FrameType.PUB && f.reqId !== 0) {
          socket.write(encodeControl(FrameType.OK, f.reqId, { delivered: 0 }));
        }
      });
      socket.on('data', (chunk: Buffer) => parser.push(chunk));
      socket.on('error', () => {});
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  if (!haveOpenssl) return;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

describe('tls:// transport', { skip: haveOpenssl ? false : 'openssl is not installed' }, () => {
  it('verifies the server against the given CA and presents the client certificate', async () => {
    const c = await connect({
      servers: `tls://localhost:${port}`,
      tls: { ca: pem.ca, cert: pem.clientCert, key: pem.clientKey },
      reconnect: false,
    });
    assert.equal(c.info.server, 'tls-fake');
    assert.deepEqual(await c.publishConfirmed('a.b', 'x'), { delivered: 0 });
    await c.close();
    assert.ok(peers.includes('test-client'));
  });

  it('verifies an IP address against the certificate IP SAN', async () => {
    const c = await connect({ servers: `tls://127.0.0.1:${port}`, tls: { ca: pem.ca }, reconnect: false });
    assert.equal(c.info.server, 'tls-fake');
    await c.close();
  });

  it('refuses a server whose certificate it cannot verify', async () => {
    await assert.rejects(
      connect({ servers: `tls://localhost:${port}`, reconnect: false }),
      (err: unknown) => {
        assert.ok(err instanceof ConnectionClosedError);
        assert.match(err.message, /cannot reach tls:\/\/localhost:\d+: .*(certificate|issuer)/i);
        return true;
      },
    );
  });
});
