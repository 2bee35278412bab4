/** Plain-text tables for command results (bench now; queue and stream listings later). */

export type Align = 'left' | 'right';

/** Renders rows under headers with columns padded to fit; numbers are right-aligned by default. */
export function renderTable(headers: string[], rows: Array<Array<string | number>>, align?: Align[]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const alignOf = (i: number): Align =>
    align?.[i] ?? (rows.length > 0 && typeof rows[0]![i] === 'number' ? 'right' : 'left');
  const line = (r: string[]): string =>
    r
      .map((c, i) => (alignOf(i) === 'right' ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(headers), rule, ...cells.map(line)].join('\n');
}

/** 1234567.8 → "1,234,568"; small values keep two decimals. */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(2);
}
