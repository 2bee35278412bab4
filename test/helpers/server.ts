/**
 * Starts a real messaging_server in this test process on free ports (port 0), configured through the
 * same loader the binary uses, with logs silenced unless TEST_LOG is set.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { assertNoErrors, loadConfig } from '../../src/config/index.ts';
import { startServer, type RunningServer } from '../../src/server/server.ts';

export interface TestServer {
  server: RunningServer;
  port: number;
  adminPort: number;
  url: string;
  wsUrl: string;
  httpUrl: string;
  adminUrl: string;
  dataDir: string;
  close(): Promise<void>;
}

/** `overrides` use dotted config keys, e.g. `{ 'network.max_connections': '3' }`. */
export async function startTestServer(overrides: Record<string, string> = {}): Promise<TestServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'messaging-test-'));
  const { config, problems } = loadConfig({
    env: {},
    overrides: {
      'network.listen_port': '0',
      'network.bind_address': '127.0.0.1',
      'monitoring.metrics_port': '0',
      'message_bus.persistence_path': dataDir,
      'message_bus.storage': 'memory',
      ...overrides,
    },
  });
  assertNoErrors(problems);
  const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
  const server = await startServer(config, { logger });
  return {
    server,
    port: server.port,
    adminPort: server.adminPort,
    url: `tcp://127.0.0.1:${server.port}`,
    wsUrl: `ws://127.0.0.1:${server.port}/v1/ws`,
    httpUrl: `http://127.0.0.1:${server.port}`,
    adminUrl: `http://127.0.0.1:${server.adminPort}`,
    dataDir,
    async close() {
      await server.close({ deadlineMs: 1000 });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
