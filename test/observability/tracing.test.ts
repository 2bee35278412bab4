/**
 * Traces across processes: a publisher span → the server's route and deliver spans → a subscriber's
 * handle span, and a submitter span → the server's task.submit and task.run spans → the handler's span,
 * exported over OTLP/HTTP to a real local receiver that checks the span tree.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect } from '../../src/client/index.ts';
import { createTracing, otlpTracesUrl, type Tracing } from '../../src/observability/tracing.ts';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { Worker } from '../../src/worker/index.ts';
import { until } from '../tasks/helpers.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  service: string;
}

/** A minimal OTLP/HTTP (JSON) trace receiver. */
class Receiver {
  readonly spans: OtlpSpan[] = [];
  readonly contentTypes = new Set<string>();
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.contentTypes.add(String(req.headers['content-type']));
        if (req.url === '/v1/traces' && String(req.headers['content-type']).includes('json')) {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
            resourceSpans: Array<{
              resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
              scopeSpans: Array<{ spans: Array<Omit<OtlpSpan, 'service'>> }>;
            }>;
          };
          for (const rs of body.resourceSpans) {
            const service =
              rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
            for (const ss of rs.scopeSpans) for (const s of ss.spans) this.spans.push({ ...s, service });
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    const address = this.server.address();
    this.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/v1/traces`;
  }

  async waitFor(names: string[], timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!names.every((n) => this.spans.some((s) => s.name === n))) {
      if (Date.now() > deadline) throw new Error(`spans seen: ${this.spans.map((s) => s.name).join(', ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  close(): Promise<void> {
    return new Promise((r) => this.server?.close(() => r()));
  }
}

describe('tracing', () => {
  const receiver = new Receiver();
  let ts: TestServer;
  let app: Tracing;

  before(async () => {
    await receiver.start();
    ts = await startTestServer({
      'monitoring.enable_tracing': 'true',
      'monitoring.jaeger_endpoint': receiver.url,
    });
    app = createTracing({ enabled: true, endpoint: receiver.url, serviceName: 'test-app' });
  });
  after(async () => {
    await app.shutdown();
    await ts.close();
    await receiver.close();
  });

  it('maps the guide’s Jaeger Thrift URL to Jaeger’s OTLP/HTTP endpoint', () => {
    assert.deepEqual(otlpTracesUrl('http://jaeger:14268/api/traces'), {
      url: 'http://jaeger:4318/v1/traces',
      adapted: true,
    });
    assert.deepEqual(otlpTracesUrl('http://collector:4318/v1/traces'), {
      url: 'http://collector:4318/v1/traces',
      adapted: false,
    });
  });

  it('links publish → route → deliver → handle in one trace across processes', async () => {
    const pub = await connect({ servers: ts.url });
    const sub = await connect({ servers: ts.url });
    let handled!: () => void;
    const done = new Promise<void>((r) => (handled = r));
    const s = sub.subscribe('orders.traced', {
      callback: (msg) => {
        const handle = app.startSpan('handle orders.traced', { parent: msg.traceparent, kind: 'consumer' });
        handle.end();
        handled();
      },
    });
    await s.ready();
    const publish = app.startSpan('publish orders.traced', { kind: 'producer' });
    pub.publish('orders.traced', 'hello', { traceparent: publish.traceparent });
    publish.end();
    await done;
    await app.flush();
    // The server exports on its own schedule (every 500 ms): wait for its spans to arrive.
    await receiver.waitFor([
      'publish orders.traced',
      'route orders.traced',
      'deliver orders.traced',
      'handle orders.traced',
    ]);

    const byName = (n: string) => receiver.spans.find((x) => x.name === n)!;
    const [p, r, d, h] = ['publish', 'route', 'deliver', 'handle'].map((n) => byName(`${n} orders.traced`));
    assert.equal(new Set([p!.traceId, r!.traceId, d!.traceId, h!.traceId]).size, 1, 'one trace');
    assert.equal(r!.parentSpanId, p!.spanId, 'route is a child of publish');
    assert.equal(d!.parentSpanId, r!.spanId, 'deliver is a child of route');
    assert.equal(h!.parentSpanId, d!.spanId, 'handle is a child of deliver');
    assert.equal(r!.service, 'messaging_server');
    assert.equal(h!.service, 'test-app');
    await pub.close();
    await sub.close();
  });

  it('links submit → task.submit → task.run (each attempt) → handler in one trace across processes', async () => {
    const submitter = await connect({ servers: ts.url });
    const workerConn = await connect({ servers: ts.url });
    let calls = 0;
    const worker = new Worker(
      workerConn,
      {
        'traced.resize': async (_args, ctx) => {
          const span = app.startSpan(`handle traced.resize #${++calls}`, {
            parent: ctx.traceparent,
            kind: 'consumer',
          });
          span.end();
          // The first attempt fails, so the trace shows a retry as a second run.
          if (calls === 1) throw new Error('first attempt fails');
          return 'ok';
        },
      },
      { queues: ['traced'], concurrency: 1 },
    );
    try {
      await worker.ready();
      const root = app.startSpan('submit traced.resize', { kind: 'producer' });
      const h = await submitter.tasks.submit(
        'traced.resize',
        { w: 1 },
        { queue: 'traced', maxRetries: 1, retryDelayMs: 10, traceparent: root.traceparent },
      );
      root.end();
      assert.equal(await h.wait(10_000), 'ok');
      await app.flush();
      await receiver.waitFor([
        'submit traced.resize',
        'task.submit traced.resize',
        'task.run traced.resize',
        'handle traced.resize #1',
        'handle traced.resize #2',
      ]);
      const named = (n: string) => receiver.spans.filter((x) => x.name === n);
      await until(() => named('task.run traced.resize').length === 2, 5000, 'the second run span');
      const [root2] = named('submit traced.resize');
      const [submit] = named('task.submit traced.resize');
      const runs = named('task.run traced.resize');
      const handles = ['#1', '#2'].map((n) => named(`handle traced.resize ${n}`)[0]!);
      const all = [root2!, submit!, ...runs, ...handles];
      assert.equal(new Set(all.map((x) => x.traceId)).size, 1, 'one trace');
      assert.equal(submit!.parentSpanId, root2!.spanId, 'task.submit is a child of the submitter span');
      for (const r of runs)
        assert.equal(r.parentSpanId, submit!.spanId, 'each run is a child of task.submit');
      assert.deepEqual(
        handles.map((x) => x.parentSpanId).sort(),
        runs.map((x) => x.spanId).sort(),
        'each handler span is a child of its own run',
      );
      const outcome = (x: OtlpSpan) =>
        (x as OtlpSpan & { attributes: { key: string; value: { stringValue?: string } }[] }).attributes.find(
          (a) => a.key === 'task.outcome',
        )?.value.stringValue;
      assert.deepEqual(runs.map(outcome).sort(), ['retrying', 'succeeded']);
      assert.equal(submit!.service, 'messaging_server');
    } finally {
      await worker.close({ timeoutMs: 500 });
      await submitter.close();
      await workerConn.close();
    }
  });

  it('leaves messages without a traceparent untraced', async () => {
    const before = receiver.spans.length;
    const nc = await connect({ servers: ts.url });
    nc.publish('orders.plain', 'x');
    await nc.flush();
    await new Promise((r) => setTimeout(r, 800));
    assert.equal(receiver.spans.filter((s) => s.name.includes('orders.plain')).length, 0);
    assert.ok(receiver.spans.length >= before);
    await nc.close();
  });
});
