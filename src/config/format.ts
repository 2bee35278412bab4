/**
 * `messaging_server --print-config`: the effective configuration as INI that this loader reads back to
 * the same values, with secrets replaced by asterisks.
 */
import { safe } from 'ini';
import type { KeyDef, Members, RawValue } from './define.ts';
import { escapeSubstitution } from './env.ts';
import { SECTIONS, type ServerConfig } from './schema.ts';

export const REDACTED = '********';

function isRecord(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** INI text for one value: escaped so that reading it back gives the same string. */
function quote(text: string): string {
  return escapeSubstitution(text === '' ? '' : safe(text));
}

function renderValue(def: KeyDef<unknown>, value: unknown): string {
  if (def.secret && value !== '' && value !== undefined) return REDACTED;
  const raw: RawValue = def.format(value);
  if (typeof raw === 'string') return quote(raw);
  if (raw.length === 0) return '[]';
  // Multi-line, as the guide writes `events_to_log`; elements are JSON-quoted so any text survives.
  return `[\n${raw.map((item) => `    ${escapeSubstitution(JSON.stringify(item))}`).join(',\n')}\n]`;
}

function line(key: string, value: string): string {
  return value === '' ? `${key} =` : `${key} = ${value}`;
}

function sectionLines(members: Members, values: unknown, prefix: string): string[] {
  const out: string[] = [];
  if (!isRecord(values)) return out;
  for (const [name, member] of Object.entries(members)) {
    const value = values[name];
    if (member.kind === 'key') {
      out.push(line(`${prefix}${name}`, renderValue(member, value)));
    } else if (member.kind === 'group') {
      out.push(...sectionLines(member.members, value, `${prefix}${name}.`));
    } else if (member.kind === 'map' && isRecord(value)) {
      for (const [k, v] of Object.entries(value))
        out.push(line(`${prefix}${name}.${k}`, renderValue(member.item, v)));
    } else if (member.kind === 'indexed' && Array.isArray(value)) {
      for (const item of value) {
        if (!isRecord(item)) continue;
        out.push(...sectionLines(member.members, item, `${prefix}${String(item['name'])}.`));
      }
    }
  }
  return out;
}

function valueAt(config: ServerConfig, path: readonly string[]): unknown {
  let node: unknown = config;
  for (const seg of path) node = isRecord(node) ? node[seg] : undefined;
  return node;
}

/** The effective config as INI, sections in the guide's order, secrets redacted. */
export function formatConfig(config: ServerConfig): string {
  const blocks = SECTIONS.map((s) => {
    const lines = sectionLines(s.def.members, valueAt(config, s.path), '');
    return [`[${s.name}]`, ...lines].join('\n');
  });
  return `; effective configuration of messaging_server (secrets redacted)\n\n${blocks.join('\n\n')}\n`;
}
