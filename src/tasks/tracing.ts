/**
 * Traces of tasks, like those of messages (observability/tracing.ts): a submitter that starts a trace
 * passes its span's W3C `traceparent` with the task; the server records a `task.submit <name>` span under
 * it and stores that span's traceparent with the task; every attempt is a `task.run <name>` span under
 * the submit span, from the claim to the end of the attempt (succeeded, failed, retrying, released, lost
 * or cancelled), and the worker receives the run span's traceparent (`ctx.traceparent`) so its own
 * handler span continues the same trace in another process. Tasks without a traceparent are not traced.
 */
import type { MessageTracer } from '../core/broker.ts';
import type { TaskRecord } from '../storage/task-types.ts';

type Span = ReturnType<MessageTracer['startSpan']>;

/** Runs whose end was never seen (a server restart loses them) are dropped past this many. */
const MAX_OPEN_RUNS = 100_000;

export class TaskTracing {
  /** Task id → its open run span and the attempt it belongs to. */
  private readonly runs = new Map<string, { attempt: number; span: Span }>();

  constructor(private readonly tracer: MessageTracer) {}

  /**
   * Starts the submit spans of new records that carry a traceparent and re-parents the records onto
   * them (the records are fresh objects, not yet stored). Returns the function that ends them.
   */
  submitting(records: readonly TaskRecord[]): ((error?: unknown) => void) | undefined {
    if (!this.tracer.enabled) return undefined;
    const spans: Span[] = [];
    for (const r of records) {
      if (!r.traceparent) continue;
      const span = this.tracer.startSpan(`task.submit ${r.name}`, {
        parent: r.traceparent,
        kind: 'producer',
        attributes: { 'task.id': r.id, 'task.name': r.name, 'task.queue': r.queue },
      });
      r.traceparent = span.traceparent;
      spans.push(span);
    }
    if (spans.length === 0) return undefined;
    return (error) => {
      for (const s of spans) s.end(error);
    };
  }

  /** An attempt starts: its run span, and the copies to deliver that carry the run's traceparent. */
  started(claimed: TaskRecord[]): TaskRecord[] {
    if (!this.tracer.enabled) return claimed;
    return claimed.map((t) => {
      if (!t.traceparent) return t;
      this.runs.get(t.id)?.span.end('superseded by a new attempt');
      const span = this.tracer.startSpan(`task.run ${t.name}`, {
        parent: t.traceparent,
        kind: 'consumer',
        attributes: {
          'task.id': t.id,
          'task.name': t.name,
          'task.queue': t.queue,
          'task.attempt': t.attempts,
          ...(t.worker ? { 'task.worker': t.worker } : {}),
        },
      });
      if (this.runs.size >= MAX_OPEN_RUNS) this.runs.delete(this.runs.keys().next().value!);
      this.runs.set(t.id, { attempt: t.attempts, span });
      return { ...t, traceparent: span.traceparent };
    });
  }

  /** A task changed state: an attempt that is no longer running ends its span with the outcome. */
  changed(t: TaskRecord): void {
    const run = this.runs.get(t.id);
    if (!run || (t.state === 'running' && t.attempts === run.attempt)) return;
    this.runs.delete(t.id);
    run.span.setAttribute('task.outcome', t.state);
    const failed = t.state === 'failed' || t.state === 'retrying';
    run.span.end(failed ? `${t.error?.name ?? 'Error'}: ${t.error?.message ?? 'failed'}` : undefined);
  }
}
