import { readFileSync } from 'node:fs';

/** The package version, reported in WELCOME, /health and logs. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
