// Helpers for config tests: real files in a fresh temporary directory, removed after the test file.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { ConfigProblem } from '../../src/config/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'messaging-config-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

/** Writes `text` to a new file named `name` (unique per call) and returns its path. */
export function writeConfig(text: string, name = 'config.ini'): string {
  const path = join(dir, `${++counter}-${name}`);
  writeFileSync(path, text);
  return path;
}

export const FIXTURES = new URL('../fixtures/config/', import.meta.url).pathname;

export function errors(problems: readonly ConfigProblem[]): ConfigProblem[] {
  return problems.filter((p) => p.severity === 'error');
}

export function warnings(problems: readonly ConfigProblem[]): ConfigProblem[] {
  return problems.filter((p) => p.severity === 'warning');
}
