/**
 * The whole schema and the lookups over it.
 *
 * Mapping from INI to the config object: each section is a property named after the section, a
 * `[parent.child]` section is nested (`[security.ssl] min_version` → `config.security.ssl.min_version`),
 * and so are dotted keys (`file.path` → `config.logging.file.path`). Patterned keys become collections:
 * `levels.<module>` → `config.logging.levels[module]`, and `replicaN.*` / `shardN.*` → arrays ordered by
 * N (`config.database_replicas.replicas`, `config.database_sharding.shards`). Names stay snake_case,
 * exactly as operators write them.
 *
 * A setting's id is `section.key` as written in INI (`security.ssl.min_version`, `logging.levels.network`,
 * `database_replicas.replica1.host`); problems, environment mappings and `overrides` all use ids.
 */
import type { IndexedDef, InferMembers, KeyDef, Members, SectionDef } from './define.ts';
import {
  audit,
  clustering,
  database,
  message_bus,
  monitoring,
  network,
  redis,
  security,
  system,
} from './schema-main.ts';
import {
  database_pool,
  database_replicas,
  database_sharding,
  logging,
  memory,
  network_optimization,
  thread_pool,
} from './schema-tuning.ts';
import { nearest } from './suggest.ts';

/** Every section, in the order `formatConfig` prints them (the guide's order). */
export const SCHEMA = {
  system,
  network,
  database,
  message_bus,
  monitoring,
  security,
  clustering,
  redis,
  thread_pool,
  memory,
  network_optimization,
  database_pool,
  logging,
  database_replicas,
  database_sharding,
  audit,
} as const;

/** The effective configuration: frozen, fully defaulted, typed from the schema. */
export type ServerConfig = InferMembers<typeof SCHEMA>;

export interface SectionInfo {
  /** INI name, e.g. `security.ssl`. */
  readonly name: string;
  /** Property path in ServerConfig, e.g. `['security', 'ssl']`. */
  readonly path: readonly string[];
  readonly def: SectionDef<Members>;
}

/** Where in ServerConfig a value goes: property names, or one numbered item of a `replicaN` collection. */
export type TargetSegment =
  string | { readonly list: string; readonly prefix: string; readonly index: number };

export interface ResolvedKey {
  /** `section.key`, the setting's id. */
  readonly id: string;
  readonly section: string;
  /** The key as written inside its section, e.g. `levels.network`, `replica1.host`. */
  readonly key: string;
  readonly def: KeyDef<unknown>;
  readonly target: readonly TargetSegment[];
}

function collectSections(): SectionInfo[] {
  const out: SectionInfo[] = [];
  const visit = (name: string, path: string[], def: SectionDef<Members>): void => {
    out.push({ name, path, def });
    for (const [child, member] of Object.entries(def.members)) {
      if (member.kind === 'section') visit(`${name}.${child}`, [...path, child], member);
    }
  };
  for (const [name, def] of Object.entries(SCHEMA)) visit(name, [name], def);
  return out;
}

export const SECTIONS: readonly SectionInfo[] = collectSections();
const SECTION_BY_NAME = new Map(SECTIONS.map((s) => [s.name, s]));
// Longest first, so `security.ssl.x` is tried in [security.ssl] before [security].
const SECTIONS_BY_LENGTH = [...SECTIONS].sort((a, b) => b.name.length - a.name.length);

export function findSection(name: string): SectionInfo | undefined {
  return SECTION_BY_NAME.get(name);
}

const MAP_KEY_RE = /^[A-Za-z0-9_-]+$/;

function indexedMatch(member: IndexedDef<Members>, head: string): number | undefined {
  if (!head.startsWith(member.prefix)) return undefined;
  const digits = head.slice(member.prefix.length);
  // No leading zeros: `replica01` and `replica1` must not be two names for one replica.
  return /^[1-9]\d*$/.test(digits) ? Number(digits) : undefined;
}

function resolveIn(
  members: Members,
  parts: readonly string[],
  target: readonly TargetSegment[],
): Pick<ResolvedKey, 'def' | 'target'> | undefined {
  const [head, ...rest] = parts;
  if (head === undefined) return undefined;
  const member = Object.hasOwn(members, head) ? members[head] : undefined;
  if (member) {
    if (member.kind === 'key' && rest.length === 0) return { def: member, target: [...target, head] };
    if (member.kind === 'group' && rest.length > 0) return resolveIn(member.members, rest, [...target, head]);
    const [name] = rest;
    if (member.kind === 'map' && rest.length === 1 && name !== undefined && MAP_KEY_RE.test(name)) {
      return { def: member.item, target: [...target, head, name] };
    }
    return undefined;
  }
  for (const [list, candidate] of Object.entries(members)) {
    if (candidate.kind !== 'indexed') continue;
    const index = indexedMatch(candidate, head);
    const [sub] = rest;
    if (index === undefined || rest.length !== 1 || sub === undefined) continue;
    const def = Object.hasOwn(candidate.members, sub) ? candidate.members[sub] : undefined;
    if (def?.kind === 'key') {
      return { def, target: [...target, { list, prefix: candidate.prefix, index }, sub] };
    }
  }
  return undefined;
}

/** Finds the definition of `key` inside INI section `section`. */
export function resolveKey(section: string, key: string): ResolvedKey | undefined {
  const info = SECTION_BY_NAME.get(section);
  if (!info) return undefined;
  const found = resolveIn(info.def.members, key.split('.'), info.path);
  return found && { id: `${section}.${key}`, section, key, ...found };
}

/** Finds a setting by id (`network.listen_port`, `security.ssl.min_version`, `logging.levels.network`). */
export function resolveId(id: string): ResolvedKey | undefined {
  for (const s of SECTIONS_BY_LENGTH) {
    if (!id.startsWith(`${s.name}.`)) continue;
    const found = resolveKey(s.name, id.slice(s.name.length + 1));
    if (found) return found;
  }
  return undefined;
}

/** Key names of a section for "did you mean"; patterned keys are filled in from the misspelt key. */
function keyCandidates(members: Members, typed: string, prefix = ''): string[] {
  const out: string[] = [];
  const [typedHead = '', ...typedRest] = typed.split('.');
  const number = /\d+/.exec(typedHead)?.[0] ?? '1';
  for (const [name, member] of Object.entries(members)) {
    if (member.kind === 'key') out.push(prefix + name);
    else if (member.kind === 'group') out.push(...keyCandidates(member.members, '', `${prefix}${name}.`));
    else if (member.kind === 'map') out.push(`${prefix}${name}.${typedRest.join('.') || member.placeholder}`);
    else if (member.kind === 'indexed') {
      for (const sub of Object.keys(member.members)) out.push(`${prefix}${member.prefix}${number}.${sub}`);
    }
  }
  return out;
}

export function suggestKey(section: string, key: string): string | undefined {
  const info = SECTION_BY_NAME.get(section);
  return info ? nearest(key, keyCandidates(info.def.members, key)) : undefined;
}

export function suggestSection(name: string): string | undefined {
  return nearest(
    name,
    SECTIONS.map((s) => s.name),
  );
}

export function suggestId(id: string): string | undefined {
  const ids: string[] = [];
  for (const s of SECTIONS) {
    const rest = id.startsWith(`${s.name}.`) ? id.slice(s.name.length + 1) : '';
    ids.push(...keyCandidates(s.def.members, rest).map((k) => `${s.name}.${k}`));
  }
  return nearest(id, ids);
}

/** Every fixed (non-patterned) key with its definition, for defaults and printing. */
export function fixedKeys(): ResolvedKey[] {
  const out: ResolvedKey[] = [];
  const walk = (info: SectionInfo, members: Members, prefix: string, target: TargetSegment[]): void => {
    for (const [name, member] of Object.entries(members)) {
      if (member.kind === 'key') {
        const key = prefix + name;
        out.push({
          id: `${info.name}.${key}`,
          section: info.name,
          key,
          def: member,
          target: [...target, name],
        });
      } else if (member.kind === 'group') {
        walk(info, member.members, `${prefix}${name}.`, [...target, name]);
      }
    }
  };
  for (const info of SECTIONS) walk(info, info.def.members, '', [...info.path]);
  return out;
}
