/**
 * The schema flattened for generators (docs/operations.md, --help text): one row per key, patterned
 * keys written with their placeholder (`levels.<module>`, `replica<N>.host`).
 */
import type { KeyDef, Members } from './define.ts';
import { ENV_VARS } from './env.ts';
import { SECTIONS } from './schema.ts';

export interface ConfigKeyMeta {
  /** INI section, e.g. `security.ssl`. */
  readonly section: string;
  /** Key inside the section, e.g. `min_version`, `file.path`, `levels.<module>`, `replica<N>.host`. */
  readonly key: string;
  /** `section.key`. */
  readonly id: string;
  /** integer, boolean, string, path, host, url, enum, list or range. */
  readonly type: string;
  /** Accepted values of enums and of list elements. */
  readonly allowed?: readonly string[];
  /** The default as it would be written in INI, or a description of a computed default. */
  readonly default: string;
  readonly description: string;
  readonly secret: boolean;
  /** Present when the key has no effect on Node.js: the reason, as given in the warning. */
  readonly node_meaningless?: string;
  /** Environment variables that set this key. */
  readonly env: readonly string[];
}

export interface ConfigSectionMeta {
  readonly section: string;
  readonly description: string;
}

function defaultText(def: KeyDef<unknown>): string {
  if (def.docDefault !== undefined) return def.docDefault;
  const raw = def.format(def.default);
  return typeof raw === 'string' ? raw : raw.join(', ');
}

function row(section: string, key: string, def: KeyDef<unknown>): ConfigKeyMeta {
  const id = `${section}.${key}`;
  return {
    section,
    key,
    id,
    type: def.type,
    ...(def.allowed ? { allowed: def.allowed } : {}),
    default: defaultText(def),
    description: def.description,
    secret: def.secret,
    ...(def.nodeMeaningless !== undefined ? { node_meaningless: def.nodeMeaningless } : {}),
    env: ENV_VARS.filter((v) => v.keys.includes(id)).map((v) => v.name),
  };
}

function rows(section: string, members: Members, prefix: string): ConfigKeyMeta[] {
  const out: ConfigKeyMeta[] = [];
  for (const [name, member] of Object.entries(members)) {
    if (member.kind === 'key') out.push(row(section, prefix + name, member));
    else if (member.kind === 'group') out.push(...rows(section, member.members, `${prefix}${name}.`));
    else if (member.kind === 'map')
      out.push(row(section, `${prefix}${name}.${member.placeholder}`, member.item));
    else if (member.kind === 'indexed')
      out.push(...rows(section, member.members, `${prefix}${member.prefix}<N>.`));
  }
  return out;
}

export const CONFIG_SECTIONS: readonly ConfigSectionMeta[] = SECTIONS.map((s) => ({
  section: s.name,
  description: s.def.description,
}));

export const CONFIG_KEYS: readonly ConfigKeyMeta[] = SECTIONS.flatMap((s) => rows(s.name, s.def.members, ''));
