/** Versions of the npm clients in use, read from their package.json (some packages' `exports` hide it). */
import { readFileSync } from 'node:fs';

const root = new URL('../../', import.meta.url);

export function clientVersion(pkg: string): string {
  try {
    const text = readFileSync(new URL(`node_modules/${pkg}/package.json`, root), 'utf8');
    const version = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === 'string' ? `${pkg} ${version}` : pkg;
  } catch {
    return pkg;
  }
}
