/**
 * The SDK in a real browser: bundled for the browser with esbuild (so a Node-only import would fail the
 * build or the page), loaded into headless Debian Chromium, talking to a real server over WebSocket.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';
import { startTestServer, type TestServer } from '../helpers/server.ts';

const CHROMIUM = '/usr/bin/chromium';

const PAGE_SCRIPT = `
import { connect } from './sdk-entry.ts';
window.runChecks = async (url) => {
  const nc = await connect({ servers: url, reconnect: false });
  const got = [];
  const sub = nc.subscribe('browser.*', { callback: (m) => got.push(m.topic + '=' + m.string()) });
  await sub.ready();
  const responder = nc.subscribe('browser.echo.svc', { callback: (m) => m.respond('echo:' + m.string()) });
  await responder.ready();
  nc.publish('browser.hello', 'from the page');
  const reply = await nc.request('browser.echo.svc', 'ping', { timeoutMs: 3000 });
  let noResponders = '';
  try { await nc.request('nobody.here', 'x', { timeoutMs: 3000 }); } catch (e) { noResponders = e.name + ':' + e.code; }
  await nc.flush();
  const result = { got, reply: reply.string(), noResponders, server: nc.info.server };
  await nc.drain();
  return result;
};
`;

describe(
  'SDK in a browser over WebSocket',
  { skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM}: apt-get install chromium` },
  () => {
    let ts: TestServer;
    let page: Server;
    let pageUrl = '';
    let browser: Browser;

    before(async () => {
      ts = await startTestServer();
      const bundle = await build({
        stdin: { contents: PAGE_SCRIPT, resolveDir: new URL('.', import.meta.url).pathname, loader: 'ts' },
        bundle: true,
        format: 'esm',
        platform: 'browser',
        write: false,
        logLevel: 'error',
      });
      const js = bundle.outputFiles[0]!.text;
      page = createServer((req, res) => {
        if (req.url === '/app.js') {
          res.writeHead(200, { 'content-type': 'text/javascript' });
          res.end(js);
        } else {
          res.writeHead(200, { 'content-type': 'text/html' });
          res.end('<!doctype html><script type="module" src="/app.js"></script>');
        }
      });
      await new Promise<void>((r) => page.listen(0, '127.0.0.1', r));
      const address = page.address();
      pageUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/`;
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
          '--no-first-run',
        ],
      });
    });

    after(async () => {
      await browser?.close();
      await new Promise((r) => page?.close(r));
      await ts?.close();
    });

    it('publishes, subscribes, requests and gets typed errors from a page', async () => {
      const tab = await browser.newPage();
      const errors: string[] = [];
      tab.on('pageerror', (e) => errors.push(e.message));
      await tab.goto(pageUrl);
      await tab.waitForFunction(
        () => typeof (window as unknown as { runChecks?: unknown }).runChecks === 'function',
        undefined,
        {
          timeout: 20_000,
        },
      );
      const checks = tab.evaluate(
        (url) => (window as unknown as { runChecks: (u: string) => Promise<unknown> }).runChecks(url),
        ts.wsUrl,
      );
      const timeout = new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error('page checks timed out')), 20_000).unref(),
      );
      const result = (await Promise.race([checks, timeout])) as {
        got: string[];
        reply: string;
        noResponders: string;
        server: string;
      };
      assert.deepEqual(errors, []);
      assert.deepEqual(result.got, ['browser.hello=from the page']);
      assert.equal(result.reply, 'echo:ping');
      assert.equal(result.noResponders, 'NoRespondersError:NO_RESPONDERS');
      assert.equal(result.server, 'messaging-system');
    });
  },
);
