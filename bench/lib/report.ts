/** Turns outcomes into the printed table (plain text or markdown) with ratios. */
import type { Scenario } from '../suites.ts';
import type { Measurement } from '../scenarios/measurement.ts';
import type { SystemInfo } from '../types.ts';
import type { MachineFacts } from './machine.ts';
import { median } from './stats.ts';

export type Outcome =
  | { status: 'ok'; result: Measurement; rounds: Measurement[] }
  | { status: 'skipped'; reason: string }
  | { status: 'failed'; reason: string; rounds: Measurement[] };

export interface Row {
  scenario: Scenario;
  system: SystemInfo & { fsync?: string };
  outcome: Outcome;
}

/** Median over rounds of every field (value, p99, mean, delivered), each taken separately. */
export function medianOf(rounds: readonly Measurement[]): Measurement {
  const pick = (f: (m: Measurement) => number | undefined): number | undefined => {
    const xs = rounds.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x));
    return xs.length ? median(xs) : undefined;
  };
  const out: Measurement = { value: pick((m) => m.value) ?? Number.NaN, detail: { rounds: rounds.length } };
  const p99 = pick((m) => m.p99);
  const mean = pick((m) => m.mean);
  const delivered = pick((m) => m.delivered);
  if (p99 !== undefined) out.p99 = p99;
  if (mean !== undefined) out.mean = mean;
  if (delivered !== undefined) out.delivered = delivered;
  return out;
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function num(x: number): string {
  if (!Number.isFinite(x)) return '—';
  if (Math.abs(x) >= 100) return int.format(x);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function resultText(s: Scenario, m: Measurement): string {
  if (s.kind === 'throughput') return `${num(m.value)} ${s.unit}`;
  const parts = [`p50 ${num(m.value)}`];
  if (m.p99 !== undefined) parts.push(`p99 ${num(m.p99)}`);
  if (m.mean !== undefined) parts.push(`mean ${num(m.mean)}`);
  return `${parts.join(' · ')} ${s.unit}`;
}

/** Spread of the rounds around their median, e.g. "±3%"; empty for one round. */
function spread(rounds: readonly Measurement[]): string {
  if (rounds.length < 2) return '';
  const xs = rounds.map((r) => r.value);
  const mid = median(xs);
  const half = (Math.max(...xs) - Math.min(...xs)) / 2;
  return mid > 0 ? `±${Math.round((half / mid) * 100)}%` : '';
}

/** Delivered fraction; rounds cut at the time limit while messages were still arriving say so. */
function deliveredText(rounds: readonly Measurement[], m: Measurement): string {
  const cut = rounds.filter((r) => r.detail['cut'] === 1).length;
  const pct = m.delivered === undefined ? '' : `${(m.delivered * 100).toFixed(m.delivered < 1 ? 2 : 0)}%`;
  if (cut === 0) return pct;
  const note = `${cut}/${rounds.length} cut at time limit`;
  return pct ? `${pct}, ${note}` : note;
}

function ratio(a: Measurement | undefined, b: Measurement | undefined): string {
  if (!a || !b || !(b.value > 0) || !Number.isFinite(a.value)) return '—';
  return `${(a.value / b.value).toFixed(2)}×`;
}

function okResult(rows: readonly Row[], scenarioId: string, systemId: string): Measurement | undefined {
  const r = rows.find((x) => x.scenario.id === scenarioId && x.system.id === systemId);
  return r?.outcome.status === 'ok' ? r.outcome.result : undefined;
}

export interface Table {
  header: string[];
  rows: string[][];
}

export function buildTable(rows: readonly Row[]): Table {
  const header = [
    'Scenario',
    'System',
    'Result (median)',
    'Rounds',
    'Delivered',
    'vs reference',
    'ours ÷ this',
  ];
  const out: string[][] = [];
  for (const r of rows) {
    const s = r.scenario;
    const name = r.system.label;
    if (r.outcome.status !== 'ok') {
      const what =
        r.outcome.status === 'skipped' ? `skipped: ${r.outcome.reason}` : `FAILED: ${r.outcome.reason}`;
      out.push([s.title, name, what, '', '', '', '']);
      continue;
    }
    const m = r.outcome.result;
    const base = okResult(rows, s.id, s.baseline);
    const ours = okResult(rows, s.id, 'ours');
    const baseLabel =
      rows.find((x) => x.scenario.id === s.id && x.system.id === s.baseline)?.system.label ?? s.baseline;
    out.push([
      s.title,
      name,
      resultText(s, m),
      `${r.outcome.rounds.length} ${spread(r.outcome.rounds)}`.trim(),
      deliveredText(r.outcome.rounds, m),
      r.system.id === s.baseline ? `reference (${baseLabel})` : base ? `${ratio(m, base)} ${baseLabel}` : '—',
      r.system.id === 'ours' ? '' : ratio(ours, m),
    ]);
  }
  return { header, rows: out };
}

export function formatText(t: Table): string {
  const widths = t.header.map((h, i) => Math.max(h.length, ...t.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  const lines = [line(t.header), sep];
  let last = '';
  for (const r of t.rows) {
    // A blank scenario cell after the first row of a group keeps the table readable.
    const cells = [...r];
    if (cells[0] === last) cells[0] = '';
    else if (last !== '') lines.push('');
    last = r[0] ?? '';
    lines.push(line(cells));
  }
  return lines.join('\n');
}

export function formatMarkdown(t: Table): string {
  const esc = (c: string): string => c.replaceAll('|', '\\|');
  const lines = [`| ${t.header.join(' | ')} |`, `| ${t.header.map(() => '---').join(' | ')} |`];
  for (const r of t.rows) lines.push(`| ${r.map(esc).join(' | ')} |`);
  return lines.join('\n');
}

export function formatFacts(f: MachineFacts, versions: Record<string, string>): string[] {
  const v = Object.entries(versions)
    .map(([k, x]) => `${k} ${x}`)
    .join(', ');
  return [
    `Machine: ${f.cpu}, ${f.cores} cores, ${f.memoryGiB} GiB RAM, ${f.os}`,
    `Node ${f.node}; run ${f.date}; load average at start ${f.loadAtStart.toFixed(2)}`,
    ...(v ? [`Servers: ${v}`] : []),
  ];
}

/** One line per system: its client and how it is driven (the method column would be too wide). */
export function formatSystems(rows: readonly Row[], markdown: boolean): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const r of rows) {
    const key = `${r.scenario.suite}/${r.system.id}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const fsync = r.system.fsync ? `; fsync: ${r.system.fsync}` : '';
    const text = `${r.scenario.suite} · ${r.system.label} (${r.system.client}): ${r.system.notes}${fsync}`;
    out.push(markdown ? `- ${text}` : `  ${text}`);
  }
  return out;
}

/**
 * Durable queues: each of our rows against the rivals that promise the same durability — confirm after
 * fsync; confirm after the write reached the OS (a server crash loses nothing, a power loss may); memory
 * only (a restart loses everything).
 */
const DURABLE_PAIRS: ReadonlyArray<readonly [ours: string, rival: string]> = [
  ['ours', 'rabbitmq'],
  ['ours', 'redis-streams-aof'],
  ['ours-nofsync', 'jetstream'],
  ['ours-nofsync', 'redis-streams-everysec'],
  ['ours-memory', 'redis-streams'],
];

/** The issues' targets, checked against this run (each only when both of its rows ran). */
export function formatTargets(rows: readonly Row[]): string[] {
  const out: string[] = [];
  const label = (scenario: string, system: string): string =>
    rows.find((x) => x.scenario.id === scenario && x.system.id === system)?.system.label ?? system;
  for (const [oursId, rivalId] of DURABLE_PAIRS) {
    const ours = okResult(rows, 'durable-1x1', oursId);
    const rival = okResult(rows, 'durable-1x1', rivalId);
    if (!ours || !rival) continue;
    const r = ours.value / rival.value;
    out.push(
      `durable queue, same durability: ${label('durable-1x1', oursId)} ÷ ${label('durable-1x1', rivalId)} = ${r.toFixed(2)}× — target ahead: ${r > 1 ? 'met' : 'NOT met'}`,
    );
  }
  for (const id of ['pubsub-1x1', 'pubsub-1x4', 'reqrep']) {
    const ours = okResult(rows, id, 'ours');
    const nats = okResult(rows, id, 'nats');
    const s = rows.find((r) => r.scenario.id === id)?.scenario;
    if (!s || !ours || !nats) continue;
    const r = ours.value / nats.value;
    const met = s.kind === 'throughput' ? r >= 1 : r <= 1;
    const goal = s.kind === 'throughput' ? 'throughput ≥ NATS' : 'p50 ≤ NATS';
    out.push(`${s.title}: ours/NATS = ${r.toFixed(2)}× — target ${goal}: ${met ? 'met' : 'NOT met'}`);
  }
  return out;
}
