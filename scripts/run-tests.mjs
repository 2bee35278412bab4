#!/usr/bin/env node
// Runs every test file under test/ with node's built-in runner.
// Node 20's `node --test` does not expand globs for .ts files, so we list them ourselves;
// an empty list is an error, never a silent pass.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...collect(path));
    else if (name.endsWith('.test.ts')) out.push(relative(root, path));
  }
  return out;
}

let files = collect(join(root, 'test'));
if (filters.length) files = files.filter((f) => filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('run-tests: no test files found' + (filters.length ? ` matching ${filters.join(', ')}` : ''));
  process.exit(1);
}

const args = ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=300000'];
if (process.env.CI) args.push('--test-reporter=spec');
const child = spawn(process.execPath, [...args, ...files], { cwd: root, stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(signal ? 1 : (code ?? 1)));
