import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeControl, encodePub, FrameType } from '../../src/protocol/index.ts';
import { RawClient } from '../helpers/raw-client.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';

function metricValue(text: string, name: string, labels = ''): number {
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name}{`)));
  return line ? Number(line.split(' ').at(-1)) : NaN;
}

describe('admin port of a running server', () => {
  let ts: TestServer;
  before(async () => {
    ts = await startTestServer();
  });
  after(() => ts.close());

  it('/health has the guide shape with the instance id', async () => {
    const res = await fetch(`${ts.adminUrl}/health`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown> & { components: Record<string, unknown> };
    assert.equal(body.status, 'healthy');
    assert.equal(typeof body.uptime, 'number');
    assert.equal(body.version, '1.0.0');
    for (const c of ['database', 'queue', 'cache']) assert.ok(c in body.components, c);
    assert.equal(typeof body.instance_id, 'string');
  });

  it('/ready is 200 while serving and 503 while draining', async () => {
    assert.equal((await fetch(`${ts.adminUrl}/ready`)).status, 200);
    const other = await startTestServer();
    const c = await RawClient.ready(other.port);
    const closing = other.server.close({ deadlineMs: 1500 });
    c.socket.pause(); // keeps the drain waiting a moment
    const during = await fetch(`${other.adminUrl}/ready`).catch(() => undefined);
    if (during) assert.equal(during.status, 503);
    await closing;
    c.close();
  });

  it('/metrics counts connections, bytes and messages as they happen', async () => {
    const sub = await RawClient.ready(ts.port);
    sub.write(encodeControl(FrameType.SUB, 2, { sid: 1, pattern: 'm.*' }));
    await sub.next((f) => f.type === FrameType.OK);
    const pub = await RawClient.ready(ts.port);
    for (let i = 0; i < 50; i++) pub.write(encodePub(0, 'm.x', new Uint8Array(100)));
    pub.write(encodePub(1, 'm.sync', new Uint8Array(0)));
    await pub.next((f) => f.type === FrameType.OK);
    const text = await (await fetch(`${ts.adminUrl}/metrics`)).text();
    for (const name of [
      'messaging_system_uptime_seconds',
      'messaging_system_cpu_usage_percent',
      'messaging_system_memory_usage_bytes',
      'messaging_system_thread_count',
      'messaging_messages_processed_total',
      'messaging_messages_failed_total',
      'messaging_message_processing_duration_seconds',
      'messaging_message_queue_size',
      'messaging_connections_active',
      'messaging_connections_total',
      'messaging_bytes_sent_total',
      'messaging_bytes_received_total',
      'messaging_db_connections_active',
      'messaging_db_queries_total',
      'messaging_db_query_duration_seconds',
      'messaging_db_errors_total',
    ]) {
      assert.ok(text.includes(`# TYPE ${name} `), `missing ${name}`);
    }
    assert.ok(metricValue(text, 'messaging_connections_active', '{transport="tcp"}') >= 2);
    assert.ok(metricValue(text, 'messaging_bytes_received_total') > 50 * 100);
    assert.ok(metricValue(text, 'messaging_messages_processed_total', '{kind="pubsub",queue=""}') >= 51);
    sub.close();
    pub.close();
  });
});
