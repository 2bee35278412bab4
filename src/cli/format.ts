/** Parsing and printing of durations, ages, sizes and key/value blocks for the queue and stream commands. */
import { InvalidArgumentError } from 'commander';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `10m`, `2h`, `7d`, `250ms` or plain milliseconds → milliseconds; undefined when malformed. */
export function parseDuration(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(text);
  if (!match) return undefined;
  const ms = Number(match[1]) * UNIT_MS[(match[2] ?? 'ms').toLowerCase()]!;
  return Number.isFinite(ms) ? Math.round(ms) : undefined;
}

/** commander argument parser for durations (see `parseDuration`); `allowZero` for delays. */
export function durationArg(name: string, allowZero = false): (value: string) => number {
  return (value) => {
    const ms = parseDuration(value);
    if (ms === undefined || ms < 0 || (ms === 0 && !allowZero)) {
      throw new InvalidArgumentError(
        `${name} takes a duration such as 90s, 10m, 2h, 7d or plain milliseconds.`,
      );
    }
    return ms;
  };
}

/** commander argument parser for integers ≥ 0 (e.g. an offset). */
export function nonNegativeInt(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be an integer ≥ 0.`);
    return n;
  };
}

/** commander collector for repeatable string options (`--bind a --bind b`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** 1500 → `1.5s`, 600000 → `10m`, 90061000 → `1d 1h`; null/undefined → `-`. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
  const parts: Array<[number, string]> = [
    [Math.floor(s / 86_400), 'd'],
    [Math.floor((s % 86_400) / 3600), 'h'],
    [Math.floor((s % 3600) / 60), 'm'],
    [Math.floor(s % 60), 's'],
  ];
  const first = parts.findIndex(([n]) => n > 0);
  // The two most significant units are enough for people.
  return parts
    .slice(first, first + 2)
    .filter(([n]) => n > 0)
    .map(([n, u]) => `${n}${u}`)
    .join(' ');
}

/** 1536 → `1.5 KiB`. */
export function formatBytes(n: number | undefined): string {
  if (n === undefined) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** Integers with thousands separators: counts never get decimals. */
export function formatCount(n: number | undefined): string {
  return n === undefined ? '-' : n.toLocaleString('en-US');
}

/** `key   value` lines with the keys padded to one column. */
export function renderKeyValues(rows: Array<[string, string]>): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}

/** Cuts `text` to `max` characters with an ellipsis, on one line. */
export function preview(text: string, max = 40): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** The `Examples:` block of a command's help. */
export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`;
}
