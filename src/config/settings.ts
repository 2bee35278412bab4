/**
 * The flat store the loader fills layer by layer, and the step that turns it into the nested,
 * frozen ServerConfig. Settings are kept flat (by id) until the end because precedence and the
 * "same setting, two names" rules need to know, per id, which layer a value came from.
 */
import { fixedKeys, SECTIONS, type ResolvedKey, type ServerConfig } from './schema.ts';
import type { Members } from './define.ts';

/** Precedence: a higher rank wins. */
export const RANK = { default: 0, file: 1, env: 2, override: 3 } as const;
export type Rank = (typeof RANK)[keyof typeof RANK];

export interface ValueSource {
  readonly layer: keyof typeof RANK;
  readonly file?: string;
  readonly line?: number;
  /** The environment variable, for layer `env`. */
  readonly env?: string;
  /** Set when the value was copied from another setting (e.g. [logging] level from [system] log_level). */
  readonly derivedFrom?: string;
}

export interface Setting {
  readonly key: ResolvedKey;
  readonly value: unknown;
  readonly rank: Rank;
  readonly source: ValueSource;
  /** `${VAR}` references in the value whose variable was unset. */
  readonly unset: readonly string[];
}

export class Settings {
  private readonly byId = new Map<string, Setting>();

  constructor() {
    for (const key of fixedKeys()) {
      this.byId.set(key.id, {
        key,
        value: key.def.default,
        rank: RANK.default,
        source: { layer: 'default' },
        unset: [],
      });
    }
  }

  get(id: string): Setting | undefined {
    return this.byId.get(id);
  }

  set(setting: Setting): void {
    this.byId.set(setting.key.id, setting);
  }

  /** Copies `from`'s value (optionally transformed) into `to`, keeping `from`'s rank. */
  copy(from: Setting, to: Setting, transform: (v: unknown) => unknown = (v) => v): void {
    this.set({
      key: to.key,
      value: transform(from.value),
      rank: from.rank,
      source: { ...from.source, derivedFrom: from.key.id },
      unset: from.unset,
    });
  }

  all(): IterableIterator<Setting> {
    return this.byId.values();
  }

  /** Where a setting was written, for attaching a problem to a file and line. */
  where(id: string): { file?: string; line?: number } {
    const s = this.byId.get(id)?.source;
    if (s?.file === undefined) return {};
    return s.line === undefined ? { file: s.file } : { file: s.file, line: s.line };
  }
}

type Tree = Record<string, unknown>;

function isTree(value: unknown): value is Tree {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function defaultsOf(members: Members): Tree {
  const out: Tree = {};
  for (const [name, member] of Object.entries(members)) {
    if (member.kind === 'key') out[name] = member.default;
    else if (member.kind === 'group' || member.kind === 'section') out[name] = defaultsOf(member.members);
    else if (member.kind === 'map') out[name] = {};
    else out[name] = [];
  }
  return out;
}

function itemDefaults(members: Members, name: string, index: number): Tree {
  const item: Tree = { name, index };
  for (const [sub, def] of Object.entries(members)) {
    if (def.kind === 'key') item[sub] = def.default;
  }
  return item;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** Builds the nested config from the settings; numbered items are ordered by their number. */
export function buildConfig(settings: Settings): ServerConfig {
  const root: Tree = {};
  for (const s of SECTIONS) {
    if (s.path.length === 1) root[s.name] = defaultsOf(s.def.members);
  }
  const lists = new Set<unknown[]>();
  for (const setting of settings.all()) {
    let node: Tree = root;
    const target = setting.key.target;
    for (let i = 0; i < target.length - 1; i++) {
      const seg = target[i];
      if (seg === undefined) break;
      if (typeof seg === 'string') {
        const next = node[seg];
        if (!isTree(next)) throw new Error(`config target ${setting.key.id} crosses a non-object at ${seg}`);
        node = next;
        continue;
      }
      const list = node[seg.list];
      if (!Array.isArray(list)) throw new Error(`config target ${setting.key.id} has no list ${seg.list}`);
      let item = list.find((x: unknown) => isTree(x) && x['index'] === seg.index);
      if (!isTree(item)) {
        const def = findIndexedMembers(setting.key.section, seg.list);
        item = itemDefaults(def, `${seg.prefix}${seg.index}`, seg.index);
        list.push(item);
        lists.add(list);
      }
      node = item;
    }
    const last = target[target.length - 1];
    if (typeof last === 'string') node[last] = setting.value;
  }
  for (const list of lists) list.sort((a, b) => indexOf(a) - indexOf(b));
  // The tree mirrors the schema by construction (defaults walked from it, values set by resolved paths).
  return deepFreeze(root) as unknown as ServerConfig;
}

function indexOf(item: unknown): number {
  return isTree(item) && typeof item['index'] === 'number' ? item['index'] : 0;
}

function findIndexedMembers(section: string, list: string): Members {
  const info = SECTIONS.find((s) => s.name === section);
  const member = info?.def.members[list];
  if (member?.kind !== 'indexed') throw new Error(`no numbered collection ${list} in [${section}]`);
  return member.members;
}
