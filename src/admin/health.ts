/**
 * Health and readiness as the admin port reports them. The server implements `HealthSource`; this module
 * turns it into the guide's JSON ("Health Checks" → Response format).
 *
 * Liveness (`/health`, the Kubernetes livenessProbe and Docker HEALTHCHECK) fails — 503 — only when the
 * overall status is `unhealthy`, because a failing liveness probe restarts the container. A component
 * therefore reports `unhealthy` only when restarting the process is the cure (e.g. the storage engine
 * failed and cannot recover); an unreachable external dependency is `degraded`, which stays 200 — a restart
 * would not bring the database back and would drop every client. Readiness (`/ready`) is where "do not
 * send me traffic" belongs.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export type ComponentStatus = 'healthy' | 'degraded' | 'unhealthy';

/** One component's state: its status, why (when not healthy, or to say what it is), and any details. */
export interface ComponentHealth {
  status: ComponentStatus;
  reason?: string;
  [detail: string]: unknown;
}

/**
 * What the server tells the admin port. `components()` should include the guide's `database`, `queue` and
 * `cache` (e.g. database "embedded file store", cache "not configured", both `healthy`), and may add
 * more (`cluster`).
 */
export interface HealthSource {
  /** Ready for traffic: start-up finished and not draining. */
  ready(): { ready: boolean; reason?: string };
  components(): Record<string, ComponentHealth>;
  readonly instanceId: string;
  /** Epoch ms when the server started. */
  readonly startedAt: number;
  /** Open client connections by transport, for `/health/detailed`. */
  connections?(): Record<string, number>;
  /** Anything else for `/health/detailed`; its keys never replace the standard ones. */
  extra?(): Record<string, unknown>;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const RANK: Readonly<Record<ComponentStatus, number>> = { healthy: 0, degraded: 1, unhealthy: 2 };

/** The worst of the statuses; `healthy` when there are none. */
export function worstStatus(statuses: Iterable<ComponentStatus>): ComponentStatus {
  let worst: ComponentStatus = 'healthy';
  for (const s of statuses) if (RANK[s] > RANK[worst]) worst = s;
  return worst;
}

/** The guide's `/health` body, plus `instance_id`. */
export interface HealthBody {
  status: ComponentStatus;
  /** Whole seconds since start, as in the guide's example. */
  uptime: number;
  version: string;
  instance_id: string;
  components: Record<string, ComponentStatus>;
}

/** Reads the components once; a source that throws counts as one unhealthy component named `health`. */
function readComponents(source: HealthSource): Record<string, ComponentHealth> {
  try {
    return source.components();
  } catch (err) {
    return { health: { status: 'unhealthy', reason: `health check failed: ${errorMessage(err)}` } };
  }
}

function summary(
  source: HealthSource,
  version: string,
  components: Record<string, ComponentHealth>,
): HealthBody {
  const statuses: Record<string, ComponentStatus> = {};
  for (const [name, c] of Object.entries(components)) statuses[name] = c.status;
  return {
    status: worstStatus(Object.values(statuses)),
    uptime: Math.max(0, Math.floor((Date.now() - source.startedAt) / 1000)),
    version,
    instance_id: source.instanceId,
    components: statuses,
  };
}

/** Readiness; a source that throws is not ready. */
export function readiness(source: HealthSource): { ready: boolean; reason?: string } {
  try {
    const r = source.ready();
    return r.reason === undefined ? { ready: r.ready } : { ready: r.ready, reason: r.reason };
  } catch (err) {
    return { ready: false, reason: `readiness check failed: ${errorMessage(err)}` };
  }
}

export function healthBody(source: HealthSource, version: string): HealthBody {
  return summary(source, version, readComponents(source));
}

/**
 * Event-loop delay for `/health/detailed`: a stalled loop is the first sign of an overloaded broker.
 * The histogram is reset at each read, so each read covers the time since the previous one.
 */
export class EventLoopMonitor {
  readonly #histogram: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  #since = Date.now();

  constructor() {
    this.#histogram.enable();
  }

  read(): { window_s: number; mean_ms: number; p50_ms: number; p99_ms: number; max_ms: number } {
    const h = this.#histogram;
    const ms = (ns: number): number => (Number.isFinite(ns) ? Math.round(ns / 1e4) / 100 : 0);
    const out = {
      window_s: Math.round((Date.now() - this.#since) / 100) / 10,
      mean_ms: ms(h.mean),
      p50_ms: ms(h.percentile(50)),
      p99_ms: ms(h.percentile(99)),
      max_ms: ms(h.max),
    };
    h.reset();
    this.#since = Date.now();
    return out;
  }

  close(): void {
    this.#histogram.disable();
  }
}

/** `/health/detailed`: the `/health` body plus per-component details, readiness, connections, memory, loop delay. */
export function detailedHealthBody(
  source: HealthSource,
  version: string,
  loop: EventLoopMonitor,
): HealthBody & Record<string, unknown> {
  const components = readComponents(source);
  const memory = process.memoryUsage();
  let extra: Record<string, unknown> = {};
  try {
    extra = source.extra?.() ?? {};
  } catch (err) {
    extra = { extra_error: errorMessage(err) };
  }
  return {
    // Spread first so the standard keys below always win.
    ...extra,
    ...summary(source, version, components),
    details: components,
    ready: readiness(source),
    connections: source.connections?.() ?? {},
    memory: {
      rss_bytes: memory.rss,
      heap_total_bytes: memory.heapTotal,
      heap_used_bytes: memory.heapUsed,
      external_bytes: memory.external,
      array_buffers_bytes: memory.arrayBuffers,
    },
    event_loop_delay: loop.read(),
    process: { pid: process.pid, node: process.version, uptime_s: Math.floor(process.uptime()) },
  };
}
