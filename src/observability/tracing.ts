/**
 * OpenTelemetry tracing (`[monitoring] enable_tracing`, `jaeger_endpoint`), exported over OTLP/HTTP.
 *
 * Traces follow messages through W3C `traceparent` values carried in message metadata: a client that
 * starts a trace puts its span's traceparent on the message, the server records `route` and `deliver`
 * spans under it and hands subscribers (and stored copies) the `deliver` span's traceparent, so their
 * `handle` span continues the same trace in another process. Messages without a traceparent are not
 * traced, which keeps untraced traffic at full speed.
 */
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider, type SpanExporter } from '@opentelemetry/sdk-trace';

export interface TraceSpan {
  /** The W3C traceparent of this span, to put on the message that continues the trace. */
  readonly traceparent: string;
  setAttribute(key: string, value: string | number | boolean): void;
  end(error?: unknown): void;
}

export interface Tracing {
  readonly enabled: boolean;
  /** Starts a span under `parent` (a W3C traceparent), or a new trace when it is absent or invalid. */
  startSpan(
    name: string,
    options?: { parent?: string; kind?: 'producer' | 'consumer' | 'internal'; attributes?: Attributes },
  ): TraceSpan;
  /** Sends what is buffered (tests, shutdown). */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  enabled: boolean;
  /** `jaeger_endpoint`: an OTLP/HTTP traces URL (see `otlpTracesUrl`). */
  endpoint: string;
  serviceName: string;
  instanceId?: string;
  /** For tests: export somewhere else than OTLP/HTTP. */
  exporter?: SpanExporter;
  /** Called once when the endpoint had to be adapted (e.g. a legacy Jaeger Thrift URL). */
  warn?: (message: string) => void;
}

const KINDS = {
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
  internal: SpanKind.INTERNAL,
} as const;
const propagator = new W3CTraceContextPropagator();
const getter = {
  get: (carrier: Record<string, string>, key: string) => carrier[key],
  keys: (c: Record<string, string>) => Object.keys(c),
};
const setter = {
  set: (carrier: Record<string, string>, key: string, value: string) => void (carrier[key] = value),
};

/**
 * The OTLP/HTTP URL for `jaeger_endpoint`. Jaeger (1.35+) takes OTLP on port 4318 at `/v1/traces`; the
 * guide's example `http://jaeger:14268/api/traces` is Jaeger's legacy Thrift collector, which OTLP cannot
 * speak to, so that form is mapped to the same host's OTLP port.
 */
export function otlpTracesUrl(endpoint: string): { url: string; adapted: boolean } {
  const url = new URL(endpoint);
  if (url.pathname === '/api/traces') {
    url.port = '4318';
    url.pathname = '/v1/traces';
    return { url: url.toString(), adapted: true };
  }
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/v1/traces';
  return { url: url.toString(), adapted: false };
}

class OtelSpan implements TraceSpan {
  readonly traceparent: string;
  constructor(private readonly span: Span) {
    const carrier: Record<string, string> = {};
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, setter);
    this.traceparent = carrier.traceparent ?? '';
  }
  setAttribute(key: string, value: string | number | boolean): void {
    this.span.setAttribute(key, value);
  }
  end(error?: unknown): void {
    if (error !== undefined) {
      this.span.recordException(error instanceof Error ? error : String(error));
      this.span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
    }
    this.span.end();
  }
}

const NOOP_SPAN: TraceSpan = { traceparent: '', setAttribute: () => {}, end: () => {} };

export const NOOP_TRACING: Tracing = {
  enabled: false,
  startSpan: () => NOOP_SPAN,
  flush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};

export function createTracing(options: TracingOptions): Tracing {
  if (!options.enabled) return NOOP_TRACING;
  let exporter = options.exporter;
  if (!exporter) {
    if (!options.endpoint) {
      options.warn?.('enable_tracing is on but jaeger_endpoint is empty: no traces are exported');
      return NOOP_TRACING;
    }
    const { url, adapted } = otlpTracesUrl(options.endpoint);
    if (adapted) {
      options.warn?.(
        `jaeger_endpoint ${options.endpoint} is Jaeger's Thrift collector; exporting OTLP/HTTP to ${url} instead`,
      );
    }
    exporter = new OTLPTraceExporter({ url });
  }
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      'service.name': options.serviceName,
      ...(options.instanceId ? { 'service.instance.id': options.instanceId } : {}),
    }),
    spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: 500 })],
  });
  const tracer = provider.getTracer('messaging-system');
  return {
    enabled: true,
    startSpan(name, opts = {}) {
      const parent = opts.parent
        ? propagator.extract(ROOT_CONTEXT, { traceparent: opts.parent }, getter)
        : ROOT_CONTEXT;
      const span = tracer.startSpan(
        name,
        { kind: KINDS[opts.kind ?? 'internal'], ...(opts.attributes ? { attributes: opts.attributes } : {}) },
        parent,
      );
      return new OtelSpan(span);
    },
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
