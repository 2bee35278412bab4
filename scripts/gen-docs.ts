/**
 * Regenerates the generated parts of docs/ from the code so they cannot drift:
 * the error table in docs/protocol.md. Run: `node --import tsx scripts/gen-docs.ts` (`--check` fails on drift).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { ERROR_CATALOGUE } from '../src/protocol/errors.ts';

export function errorTable(): string {
  const rows = Object.entries(ERROR_CATALOGUE).map(
    ([code, spec]) =>
      `| \`${code}\` | ${spec.http} | ${spec.fatal ? 'yes' : 'no'} | ${spec.retryable ? 'yes' : 'no'} | ${spec.description} |`,
  );
  return [
    '| code | HTTP | closes connection | retryable | meaning |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

export function renderProtocolDoc(doc: string): string {
  return doc.replace(
    /<!-- error-table:start -->[\s\S]*<!-- error-table:end -->/,
    `<!-- error-table:start -->\n${errorTable()}\n<!-- error-table:end -->`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const path = new URL('../docs/protocol.md', import.meta.url);
  const before = readFileSync(path, 'utf8');
  const after = renderProtocolDoc(before);
  if (process.argv.includes('--check')) {
    if (before !== after) {
      console.error('docs/protocol.md is out of date: run node --import tsx scripts/gen-docs.ts');
      process.exit(1);
    }
  } else writeFileSync(path, after);
}
