/**
 * Loads the effective configuration: defaults, then each file, then environment variables, then
 * `overrides` (the command-line flags) — later layers win. Nothing here throws for bad input; every
 * finding is returned as a problem (see problems.ts).
 */
import { readFileSync } from 'node:fs';
import { parseValue, type RawValue } from './define.ts';
import { derive } from './derive.ts';
import { ENV_VARS, substitute, type Env } from './env.ts';
import { readIni } from './ini-reader.ts';
import type { ConfigProblem } from './problems.ts';
import {
  findSection,
  resolveId,
  resolveKey,
  suggestId,
  suggestKey,
  suggestSection,
  type ResolvedKey,
  type ServerConfig,
} from './schema.ts';
import { buildConfig, RANK, Settings, type ValueSource } from './settings.ts';
import { validate } from './validate.ts';

/** Where the deployment guide puts the file; the CLI uses it when no path is given and it exists. */
export const DEFAULT_CONFIG_PATH = '/etc/messaging/config.ini';

export type OverrideValue = string | number | boolean | readonly string[];

export interface LoadConfigOptions {
  /** Config file(s), read in order; a later file overrides an earlier one. None: defaults only. */
  readonly path?: string | readonly string[];
  /** Environment for overrides and `${VAR}`; defaults to `process.env`. */
  readonly env?: Env;
  /**
   * Command-line settings by id (`{'network.listen_port': 0}`); they beat everything else. Undefined
   * values are skipped so a CLI can pass every flag whether given or not.
   */
  readonly overrides?: Readonly<Record<string, OverrideValue | undefined>>;
}

export interface LoadConfigResult {
  readonly config: ServerConfig;
  readonly problems: readonly ConfigProblem[];
  /** Where each effective value came from, by id (defaults included). */
  readonly sources: ReadonlyMap<string, ValueSource>;
}

function display(raw: RawValue): string {
  return typeof raw === 'string' ? raw : `[${raw.join(', ')}]`;
}

class Loader {
  readonly settings = new Settings();
  readonly problems: ConfigProblem[] = [];
  private readonly warnedMeaningless = new Set<string>();

  constructor(private readonly env: Env) {}

  /** Parses `raw` for `key` and records it at `rank`; a bad value is reported and leaves the lower layer. */
  private apply(
    key: ResolvedKey,
    raw: RawValue,
    source: ValueSource,
    where: string,
    unset: readonly string[] = [],
  ): void {
    const loc =
      source.file !== undefined ? { file: source.file, ...(source.line ? { line: source.line } : {}) } : {};
    const parsed = parseValue(key.def, raw);
    if (!parsed.ok) {
      const shown = key.def.secret ? '********' : display(raw);
      this.problems.push({
        severity: 'error',
        ...loc,
        key: key.id,
        message: `invalid value '${shown}' for ${key.key} in [${key.section}]${where}: ${parsed.message}`,
      });
      return;
    }
    if (key.def.nodeMeaningless !== undefined && !this.warnedMeaningless.has(key.id)) {
      this.warnedMeaningless.add(key.id);
      this.problems.push({
        severity: 'warning',
        ...loc,
        key: key.id,
        message: `[${key.section}] ${key.key} has no effect: ${key.def.nodeMeaningless}`,
      });
    }
    this.settings.set({ key, value: parsed.value, rank: RANK[source.layer], source, unset });
  }

  loadFile(file: string): void {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      this.problems.push({ severity: 'error', file, message: `cannot read the config file: ${reason}` });
      return;
    }
    const doc = readIni(text, file);
    this.problems.push(...doc.problems);
    for (const header of doc.sections) {
      if (findSection(header.name)) continue;
      const hint = suggestSection(header.name);
      this.problems.push({
        severity: 'error',
        file,
        line: header.line,
        message: `unknown section [${header.name}]` + (hint ? ` — did you mean [${hint}]?` : ''),
      });
    }
    for (const entry of doc.entries) {
      if (!findSection(entry.section)) continue; // reported once, with the header
      const key = resolveKey(entry.section, entry.key);
      if (!key) {
        this.problems.push({
          severity: 'error',
          file,
          line: entry.line,
          key: `${entry.section}.${entry.key}`,
          message: this.unknownKeyMessage(entry.section, entry.key),
        });
        continue;
      }
      const unset: string[] = [];
      const sub = (text: string): string => {
        const r = substitute(text, this.env);
        unset.push(...r.unset);
        return r.value;
      };
      const raw: RawValue = typeof entry.value === 'string' ? sub(entry.value) : entry.value.map(sub);
      for (const name of unset) {
        this.problems.push({
          severity: 'warning',
          file,
          line: entry.line,
          key: key.id,
          message: `environment variable ${name} is not set; ${entry.key} in [${entry.section}] uses '' in its place`,
        });
      }
      this.apply(key, raw, { layer: 'file', file, line: entry.line }, '', unset);
    }
  }

  private unknownKeyMessage(section: string, key: string): string {
    // `ssl.enabled` under [security] belongs in [security.ssl]: say where it goes, not just "unknown".
    const dot = key.indexOf('.');
    if (dot > 0) {
      const child = `${section}.${key.slice(0, dot)}`;
      if (findSection(child) && resolveKey(child, key.slice(dot + 1))) {
        return `unknown key '${key}' in [${section}] — did you mean '${key.slice(dot + 1)}' in section [${child}]?`;
      }
    }
    const hint = suggestKey(section, key);
    return `unknown key '${key}' in [${section}]` + (hint ? ` — did you mean '${hint}'?` : '');
  }

  loadEnv(): void {
    for (const spec of ENV_VARS) {
      const value = this.env[spec.name];
      if (value === undefined || value === '') continue;
      for (const id of spec.keys) {
        const key = resolveId(id);
        if (key)
          this.apply(
            key,
            value,
            { layer: 'env', env: spec.name },
            ` (from environment variable ${spec.name})`,
          );
      }
    }
  }

  loadOverrides(overrides: Readonly<Record<string, OverrideValue | undefined>>): void {
    for (const [id, value] of Object.entries(overrides)) {
      if (value === undefined) continue;
      const key = resolveId(id);
      if (!key) {
        const hint = suggestId(id);
        this.problems.push({
          severity: 'error',
          key: id,
          message:
            `unknown setting '${id}' given on the command line` + (hint ? ` — did you mean '${hint}'?` : ''),
        });
        continue;
      }
      const raw: RawValue = typeof value === 'string' || Array.isArray(value) ? value : String(value);
      this.apply(key, raw, { layer: 'override' }, ' (from the command line)');
    }
  }
}

/**
 * Loads the configuration. Precedence: `overrides` (flags) > environment > file(s) > defaults.
 * Returns the frozen config and every problem found; call `assertNoErrors(problems)` before serving.
 */
export function loadConfig(options: LoadConfigOptions = {}): LoadConfigResult {
  const loader = new Loader(options.env ?? process.env);
  const paths =
    options.path === undefined ? [] : typeof options.path === 'string' ? [options.path] : options.path;
  for (const path of paths) loader.loadFile(path);
  loader.loadEnv();
  loader.loadOverrides(options.overrides ?? {});
  derive(loader.settings, loader.problems);
  const config = buildConfig(loader.settings);
  validate(config, loader.settings, loader.problems);
  const sources = new Map<string, ValueSource>();
  for (const s of loader.settings.all()) sources.set(s.key.id, s.source);
  return { config, problems: loader.problems, sources };
}
