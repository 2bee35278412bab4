/** What one round of one scenario on one system yields. */
export interface Measurement {
  /** msgs/s for throughput scenarios, p50 µs (or ms) for latency scenarios. The ratio column uses it. */
  value: number;
  /** Latency scenarios only. */
  p99?: number;
  mean?: number;
  /** Fraction of the expected deliveries that arrived (1 = none lost). */
  delivered?: number;
  /** Everything else worth keeping in the JSON output. */
  detail: Record<string, number>;
}
