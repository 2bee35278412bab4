/**
 * Regenerates the generated parts of docs/operations.md from the code, so they cannot drift:
 *
 * - the configuration reference: every key of the INI schema with its type, default, environment
 *   variables and effect (`CONFIG_SECTIONS`, `CONFIG_KEYS`);
 * - the environment variables (`ENV_VARS`);
 * - the metrics `/metrics` serves (the registry `createMetrics` builds).
 *
 * Each part sits between `<!-- NAME:start -->` and `<!-- NAME:end -->`; the rest of the file is written
 * by hand. Run `node --import tsx scripts/gen-operations-doc.ts` after changing the schema or a metric
 * (`--check` exits 1 when the file is out of date; test/deploy/operations-doc.test.ts does the same).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { CONFIG_KEYS, CONFIG_SECTIONS, ENV_VARS, type ConfigKeyMeta } from '../src/config/index.ts';
import { createMetrics } from '../src/observability/metrics.ts';

export const DOC_PATH = new URL('../docs/operations.md', import.meta.url);

/** Text safe inside a Markdown table cell. */
function cell(text: string): string {
  return text.replaceAll('|', '\\|').replace(/\s*\n\s*/g, ' ');
}

function code(text: string): string {
  return text === '' ? '*(empty)*' : `\`${text.replaceAll('`', "'")}\``;
}

function effect(key: ConfigKeyMeta): string {
  const parts = [key.description];
  if (key.allowed && key.type === 'enum') parts.push(`One of ${key.allowed.map(code).join(', ')}.`);
  if (key.allowed && key.type === 'list') parts.push(`Elements: ${key.allowed.map(code).join(', ')}.`);
  if (key.secret) parts.push('**Secret**: redacted by `--print-config`, scrubbed from every log line.');
  if (key.node_meaningless)
    parts.push(`*Accepted with a warning, no effect on Node.js:* ${key.node_meaningless}`);
  return cell(parts.join(' '));
}

export function configReference(): string {
  const out: string[] = [];
  for (const section of CONFIG_SECTIONS) {
    const keys = CONFIG_KEYS.filter((k) => k.section === section.section);
    if (keys.length === 0) continue;
    out.push(`### [${section.section}]`, '', section.description, '');
    out.push('| key | type | default | environment | effect |', '| --- | --- | --- | --- | --- |');
    for (const k of keys) {
      const env = k.env.length > 0 ? k.env.map((e) => `\`${e}\``).join(', ') : '';
      out.push(`| \`${k.key}\` | ${k.type} | ${cell(code(k.default))} | ${env} | ${effect(k)} |`);
    }
    out.push('');
  }
  return out.join('\n').trimEnd();
}

export function envTable(): string {
  const rows = ENV_VARS.map(
    (v) =>
      `| \`${v.name}\` | ${v.keys.map((k) => `\`${k}\``).join(', ')} | ${cell(v.description)} | ${v.guide ? 'guide' : 'ours'} |`,
  );
  return ['| variable | sets | meaning | from |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

export async function metricsTable(): Promise<string> {
  const metrics = createMetrics({ startedAt: 0 });
  const rows: string[] = [];
  const described = await metrics.registry.getMetricsAsJSON();
  const byName = new Map(
    (metrics.registry.getMetricsAsArray() as unknown as Array<{ name: string; labelNames?: string[] }>).map(
      (m) => [m.name, m.labelNames ?? []],
    ),
  );
  for (const m of described) {
    const labels = new Set(byName.get(m.name) ?? []);
    for (const v of m.values) for (const l of Object.keys(v.labels)) if (l !== 'le') labels.add(l);
    const shown = labels.size > 0 ? `{${[...labels].join(', ')}}` : '';
    rows.push(`| \`${m.name}\`${shown ? ` \`${shown}\`` : ''} | ${m.type} | ${cell(m.help)} |`);
  }
  return ['| metric | type | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

function replaceBlock(doc: string, name: string, body: string): string {
  const re = new RegExp(`<!-- ${name}:start -->[\\s\\S]*<!-- ${name}:end -->`);
  if (!re.test(doc))
    throw new Error(`docs/operations.md has no <!-- ${name}:start --> … <!-- ${name}:end --> block`);
  return doc.replace(re, () => `<!-- ${name}:start -->\n${body}\n<!-- ${name}:end -->`);
}

/** The document with every generated block brought up to date. */
export async function renderOperationsDoc(doc: string): Promise<string> {
  let out = replaceBlock(doc, 'config-reference', configReference());
  out = replaceBlock(out, 'environment-variables', envTable());
  out = replaceBlock(out, 'metrics', await metricsTable());
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const before = readFileSync(DOC_PATH, 'utf8');
  const after = await renderOperationsDoc(before);
  if (process.argv.includes('--check')) {
    if (before !== after) {
      console.error('docs/operations.md is out of date: run node --import tsx scripts/gen-operations-doc.ts');
      process.exit(1);
    }
  } else writeFileSync(DOC_PATH, after);
}
