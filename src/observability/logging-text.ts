/**
 * `[logging] format = text`: pino's JSON line rendered for people reading a terminal or `journalctl`.
 *
 *     2025-01-02T03:04:05.678Z INFO  [network] connection closed conn=7 reason=slow_consumer
 *
 * Rendering happens after pino has serialised the line, so redaction and secret scrubbing have already
 * been applied and every output (console, file, syslog) sees the same fields. Fields every line carries
 * (`pid`, `hostname`, `service`, `instance_id`) are left out: they never change within one process.
 */

/** Fields rendered in the line's fixed prefix or dropped as constant for the process. */
const OMITTED: ReadonlySet<string> = new Set([
  'level',
  'time',
  'msg',
  'module',
  'pid',
  'hostname',
  'service',
  'instance_id',
]);

/** A bare word stays bare; anything with spaces, quotes or `=` is JSON-quoted so the line stays parseable. */
function renderValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (value === null || typeof value !== 'object') return String(value);
  return JSON.stringify(value);
}

/** Renders one JSON log line as text (with a trailing newline). Lines that are not JSON pass through. */
export function formatTextLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return line;
    record = parsed as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof record['time'] === 'string' ? record['time'] : new Date().toISOString();
  const level = String(record['level'] ?? 'info').toUpperCase();
  const module = typeof record['module'] === 'string' ? ` [${record['module']}]` : '';
  const msg = typeof record['msg'] === 'string' ? ` ${record['msg']}` : '';
  let fields = '';
  let stack = '';
  for (const [key, value] of Object.entries(record)) {
    if (OMITTED.has(key)) continue;
    // pino's error serializer gives {type, message, stack}: the stack reads best on its own lines.
    if (key === 'err' && value !== null && typeof value === 'object') {
      const err = value as Record<string, unknown>;
      if (typeof err['stack'] === 'string') stack = `\n    ${err['stack'].replaceAll('\n', '\n    ')}`;
      fields += ` err=${renderValue(err['message'] ?? err['type'] ?? 'error')}`;
      continue;
    }
    fields += ` ${key}=${renderValue(value)}`;
  }
  return `${time} ${level.padEnd(5)}${module}${msg}${fields}${stack}\n`;
}
