/**
 * Metric primitives for the hot path.
 *
 * prom-client's `counter.inc(labels)` costs about 250 ns and `histogram.observe` about 400 ns (they hash the
 * label object on every call); at a few hundred thousand messages a second that is a noticeable share of a
 * core. These classes make the per-message operation a map lookup and an add on a plain number, and move
 * the prom-client work to scrape time (every 15 s by default), where it runs once per series instead of
 * once per message.
 */
import { Counter, type Histogram, type Registry } from 'prom-client';

/** The value a capped label takes once it has seen `limit` distinct values. */
export const OTHER_LABEL_VALUE = '_other';

/**
 * Caps how many distinct values a label may take.
 *
 * Why: every distinct label value is one more time series, held in memory here and in Prometheus, and
 * queue and task names come from clients — a client creating queues in a loop would otherwise grow
 * `/metrics` without bound. The first `limit` values keep their own series; later ones fold into `_other`.
 * Slots are never given back: an exported counter series must keep counting, and reusing slots would let
 * name churn exceed the cap. The empty string (used for "no name", e.g. pub/sub) never takes a slot.
 */
export class LabelValueCap {
  readonly #seen = new Set<string>();
  #overflowed = false;

  constructor(
    readonly limit = 1000,
    private readonly onFirstOverflow?: (value: string) => void,
  ) {}

  /** Returns `value` if it has (or can get) its own series, otherwise `_other`. */
  admit(value: string): string {
    if (value === '' || this.#seen.has(value)) return value;
    if (this.#seen.size < this.limit) {
      this.#seen.add(value);
      return value;
    }
    if (!this.#overflowed) {
      this.#overflowed = true;
      this.onFirstOverflow?.(value);
    }
    return OTHER_LABEL_VALUE;
  }

  /** Distinct values holding a slot. */
  get size(): number {
    return this.#seen.size;
  }
}

/** Label values by label name. A missing optional label is exported as `""`, which PromQL treats as absent. */
export type LabelValues = { readonly [name: string]: string | undefined };

/** Which labels of a metric go through a cap, by label name. */
export type LabelCaps<T extends LabelValues> = Partial<Record<keyof T & string, LabelValueCap>>;

interface TreeNode<C> {
  /** The (capped) label values on the path to this node. */
  readonly labels: Record<string, string>;
  readonly children: Map<string, TreeNode<C>>;
  cell?: C;
}

/**
 * Finds the cell for a label set by walking nested maps, one level per label name.
 * Why nested maps rather than a joined string key: the caller's label strings are usually interned
 * constants whose hash V8 caches, so each level is a cheap lookup and nothing is allocated per call.
 */
class LabelTree<T extends LabelValues, C> {
  readonly cells: C[] = [];
  readonly #root: TreeNode<C> = { labels: {}, children: new Map() };

  constructor(
    private readonly names: readonly (keyof T & string)[],
    private readonly caps: LabelCaps<T>,
    private readonly make: (labels: Record<string, string>) => C,
  ) {
    if (names.length === 0) this.#root.cell = this.#newCell(this.#root.labels);
  }

  get(labels: T): C {
    let node = this.#root;
    const last = this.names.length - 1;
    for (let i = 0; i <= last; i++) {
      const name = this.names[i] as keyof T & string;
      const raw = labels[name] ?? '';
      node = node.children.get(raw) ?? this.#branch(node, name, raw, i === last);
    }
    const cell = node.cell;
    if (cell === undefined) throw new Error('label tree: leaf without a cell');
    return cell;
  }

  #branch(node: TreeNode<C>, name: keyof T & string, raw: string, last: boolean): TreeNode<C> {
    const value = this.caps[name]?.admit(raw) ?? raw;
    // An overflowing value is looked up under `_other` and never stored under its own name, so the maps
    // stay as bounded as the exported series.
    const existing = node.children.get(value);
    if (existing) return existing;
    const child: TreeNode<C> = { labels: { ...node.labels, [name]: value }, children: new Map() };
    if (last) child.cell = this.#newCell(child.labels);
    node.children.set(value, child);
    return child;
  }

  #newCell(labels: Record<string, string>): C {
    const cell = this.make(labels);
    this.cells.push(cell);
    return cell;
  }
}

/**
 * A running total kept by another module (a plain `number` field it bumps on its own hot path), read at
 * scrape time; the counter gets the increase since the previous read. A total that went down means its
 * owner started over (e.g. was recreated), so the whole new value counts as the increase.
 */
class TotalSource {
  #last = 0;
  constructor(private readonly read: () => number) {}

  take(): number {
    const now = this.read();
    const delta = now >= this.#last ? now - this.#last : now;
    this.#last = now;
    return delta;
  }
}

/** A counter with no labels whose `inc` is one add; prom-client reads it at scrape time. */
export class BatchedCounter {
  readonly metric: Counter;
  #pending = 0;
  readonly #sources = new Set<TotalSource>();

  constructor(registry: Registry, name: string, help: string) {
    this.metric = new Counter({
      name,
      help,
      registers: [registry],
      collect: () => this.#flush(),
    });
  }

  /** Adds `n` (default 1). `n` must be ≥ 0; anything else is dropped at scrape time. */
  inc(n = 1): void {
    this.#pending += n;
  }

  /**
   * Feeds the counter from a running total another module keeps (see `TotalSource`), instead of calling
   * `inc`. Returns a function that stops reading it.
   */
  addTotalSource(read: () => number): () => void {
    const source = new TotalSource(read);
    this.#sources.add(source);
    return () => this.#sources.delete(source);
  }

  #flush(): void {
    let n = this.#pending;
    this.#pending = 0;
    for (const source of this.#sources) n += source.take();
    // A bad value (NaN, Infinity, negative) must not make prom-client throw and fail the whole scrape.
    if (n > 0 && Number.isFinite(n)) this.metric.inc(n);
  }
}

interface CounterCell {
  readonly labels: Record<string, string>;
  pending: number;
}

/** A counter with labels whose `inc` is a few map lookups and an add; prom-client reads it at scrape time. */
export class BatchedLabeledCounter<T extends LabelValues> {
  readonly metric: Counter<string>;
  readonly #tree: LabelTree<T, CounterCell>;
  readonly #sources = new Set<{ readonly cell: CounterCell; readonly source: TotalSource }>();

  constructor(
    registry: Registry,
    name: string,
    help: string,
    labelNames: readonly (keyof T & string)[],
    caps: LabelCaps<T> = {},
  ) {
    this.metric = new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect: () => this.#flush(),
    });
    this.#tree = new LabelTree<T, CounterCell>(labelNames, caps, (labels) => {
      // Export the series at 0 as soon as it exists, so `rate()` counts its first increments.
      this.metric.inc(labels, 0);
      return { labels, pending: 0 };
    });
  }

  /** Adds `n` (default 1) to the series for `labels`. `n` must be ≥ 0. */
  inc(labels: T, n = 1): void {
    this.#tree.get(labels).pending += n;
  }

  /** Makes the series for `labels` exist (at 0) before anything is counted in it. */
  touch(labels: T): void {
    this.#tree.get(labels);
  }

  /**
   * Feeds the series for `labels` from a running total another module keeps (see `TotalSource`).
   * Returns a function that stops reading it.
   */
  addTotalSource(labels: T, read: () => number): () => void {
    const cell = this.#tree.get(labels);
    const source = new TotalSource(read);
    const entry = { cell, source };
    this.#sources.add(entry);
    return () => this.#sources.delete(entry);
  }

  #flush(): void {
    for (const { cell, source } of this.#sources) cell.pending += source.take();
    for (const cell of this.#tree.cells) {
      const n = cell.pending;
      cell.pending = 0;
      if (n > 0 && Number.isFinite(n)) this.metric.inc(cell.labels, n);
    }
  }
}

interface HistogramCell {
  readonly labels: Record<string, string>;
  /** Per-bucket counts, not cumulative; the last slot counts values above the largest bound (+Inf). */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

interface ExportedValue {
  readonly metricName: string;
  readonly labels: Record<string, string | number>;
  readonly value: number;
}

/**
 * A histogram whose `observe` is a bucket scan and three adds.
 *
 * prom-client has no way to add many observations at once, so this class keeps the bucket counts itself
 * and is registered in the registry directly: the registry only needs `name`, `type`, `get()` (the
 * documented metric read) and `reset()`. The output is the standard `_bucket`/`_sum`/`_count` layout,
 * checked by the tests with `promtool check metrics`.
 */
export class BatchedHistogram<T extends LabelValues> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: Float64Array;
  readonly #tree: LabelTree<T, HistogramCell>;

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    labelNames: readonly (keyof T & string)[],
    buckets: readonly number[],
    caps: LabelCaps<T> = {},
  ) {
    if (buckets.length === 0) throw new RangeError(`${name}: a histogram needs at least one bucket`);
    for (let i = 1; i < buckets.length; i++) {
      if (!((buckets[i] as number) > (buckets[i - 1] as number))) {
        throw new RangeError(`${name}: bucket bounds must increase`);
      }
    }
    this.#bounds = Float64Array.from(buckets);
    const slots = buckets.length + 1;
    this.#tree = new LabelTree<T, HistogramCell>(labelNames, caps, (labels) => ({
      labels,
      counts: new Float64Array(slots),
      sum: 0,
      count: 0,
    }));
    // The registry's parameter type lists prom-client's own classes; at run time it accepts any object
    // with the members above (see the class comment).
    registry.registerMetric(this as unknown as Histogram);
  }

  /** Records one value (seconds, for durations). Negative, NaN and infinite values are ignored. */
  observe(labels: T, value: number): void {
    if (!(value >= 0 && value < Infinity)) return;
    const cell = this.#tree.get(labels);
    const bounds = this.#bounds;
    // A linear scan: there are ~20 bounds and most observations land in the first few.
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    cell.counts[i] = (cell.counts[i] as number) + 1;
    cell.sum += value;
    cell.count++;
  }

  /** Starts a timer; calling the result observes the elapsed seconds and returns them. */
  startTimer(labels: T): () => number {
    const start = performance.now();
    return () => {
      const seconds = (performance.now() - start) / 1000;
      this.observe(labels, seconds);
      return seconds;
    };
  }

  /** Makes the series for `labels` exist (all buckets at 0) before anything is observed. */
  touch(labels: T): void {
    this.#tree.get(labels);
  }

  /** The registry's read: name, help, type and every sample in the text-format layout. */
  async get(): Promise<{
    name: string;
    help: string;
    type: string;
    aggregator: string;
    values: ExportedValue[];
  }> {
    const values: ExportedValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const cell of this.#tree.cells) {
      let cumulative = 0;
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += cell.counts[i] as number;
        values.push({
          metricName: bucketName,
          labels: { ...cell.labels, le: this.#bounds[i] as number },
          value: cumulative,
        });
      }
      values.push({ metricName: bucketName, labels: { ...cell.labels, le: '+Inf' }, value: cell.count });
      values.push({ metricName: `${this.name}_sum`, labels: cell.labels, value: cell.sum });
      values.push({ metricName: `${this.name}_count`, labels: cell.labels, value: cell.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** Zeroes every series (the registry's `resetMetrics`); series stay exported. */
  reset(): void {
    for (const cell of this.#tree.cells) {
      cell.counts.fill(0);
      cell.sum = 0;
      cell.count = 0;
    }
  }
}
