/**
 * The small vocabulary the schema is written in. Each key is declared once with its zod schema, default,
 * description and flags; the `ServerConfig` type is inferred from these declarations, and the flat
 * metadata for docs is walked from them, so the type, the parser and the documentation cannot drift.
 *
 * Every schema takes the raw text from INI (a string, or a string list for bracketed arrays) and
 * returns the typed value, because file values, environment variables and command-line overrides all
 * arrive as text and must be checked by the same rules.
 */
import { z } from 'zod';
import { splitList } from './ini-reader.ts';

/** What a value looks like before parsing: INI text, or the elements of a multi-line `[ … ]` array. */
export type RawValue = string | readonly string[];

export interface KeyOptions {
  /** The value is redacted by `formatConfig` and never logged. */
  readonly secret?: boolean;
  /** Why this key has no effect on Node.js; setting it produces a warning with this reason. */
  readonly nodeMeaningless?: string;
  /** Docs text for a default computed at load time (e.g. "the host name"). */
  readonly docDefault?: string;
  /** Inside a `replica<N>.*` / `shard<N>.*` group: the key must be present for the item to be valid. */
  readonly required?: boolean;
}

export interface KeyDef<T> {
  readonly kind: 'key';
  /** Short type name for docs: integer, boolean, string, path, enum, list, range. */
  readonly type: string;
  /** Human description of valid values, used in error messages ("an integer from 0 to 65535"). */
  readonly expected: string;
  readonly allowed?: readonly string[];
  readonly schema: z.ZodType<T>;
  readonly default: T;
  readonly description: string;
  readonly secret: boolean;
  readonly nodeMeaningless?: string;
  readonly docDefault?: string;
  readonly required: boolean;
  /** Renders a value back into INI text (lists as their elements). Declared as a method so that
   * its parameter is bivariant and a KeyDef<number> still fits where KeyDef<unknown> is expected. */
  format(value: T): RawValue;
}

/** Dotted keys sharing a prefix inside one section, e.g. `file.path`, `file.enabled` in [logging]. */
export interface GroupDef<M extends Members> {
  readonly kind: 'group';
  readonly members: M;
}

/** Keys with a free name part, e.g. `levels.<module>` → `Record<module, value>`. */
export interface MapDef<T> {
  readonly kind: 'map';
  readonly placeholder: string;
  readonly item: KeyDef<T>;
}

/** Numbered groups, e.g. `replica1.host`, `replica2.host` → an array ordered by number. */
export interface IndexedDef<M extends Members> {
  readonly kind: 'indexed';
  readonly prefix: string;
  readonly members: M;
}

/** An INI section. A section nested in another is written `[parent.child]` in INI. */
export interface SectionDef<M extends Members> {
  readonly kind: 'section';
  readonly description: string;
  readonly members: M;
}

export type Member =
  KeyDef<unknown> | GroupDef<Members> | MapDef<unknown> | IndexedDef<Members> | SectionDef<Members>;

export interface Members {
  readonly [name: string]: Member;
}

export type Infer<D> =
  D extends KeyDef<infer T>
    ? T
    : D extends MapDef<infer T>
      ? Readonly<Record<string, T>>
      : D extends IndexedDef<infer M>
        ? ReadonlyArray<IndexedItem<M>>
        : D extends GroupDef<infer M>
          ? InferMembers<M>
          : D extends SectionDef<infer M>
            ? InferMembers<M>
            : never;

export type InferMembers<M> = { readonly [K in keyof M]: Infer<M[K]> };

/** One `replica<N>` / `shard<N>` entry: `name` is e.g. `replica2`, `index` is 2. */
export type IndexedItem<M> = { readonly name: string; readonly index: number } & InferMembers<M>;

// A list where a single value was expected is almost always a misplaced `[` — say so plainly.
const scalar = z.string({ error: 'expected a single value, not a list' });

function key<T>(
  spec: Omit<KeyDef<T>, 'kind' | 'secret' | 'required' | 'format'> & {
    format?: (value: T) => RawValue;
  },
  opts: KeyOptions = {},
): KeyDef<T> {
  return {
    kind: 'key',
    ...spec,
    secret: opts.secret ?? false,
    required: opts.required ?? false,
    ...(opts.nodeMeaningless !== undefined ? { nodeMeaningless: opts.nodeMeaningless } : {}),
    ...(opts.docDefault !== undefined ? { docDefault: opts.docDefault } : {}),
    format: spec.format ?? ((value: T) => String(value)),
  };
}

/** Free text. `type` distinguishes paths, hosts and URLs in the docs only. */
export function str(
  def: string,
  description: string,
  opts: KeyOptions & { type?: string; nonEmpty?: boolean } = {},
): KeyDef<string> {
  return key(
    {
      type: opts.type ?? 'string',
      expected: opts.nonEmpty ? 'a non-empty value' : 'a single value',
      schema: opts.nonEmpty ? scalar.trim().min(1) : scalar,
      default: def,
      description,
    },
    opts,
  );
}

export function int(
  def: number,
  description: string,
  opts: KeyOptions & { min?: number; max?: number } = {},
): KeyDef<number> {
  const min = opts.min ?? 0;
  const max = opts.max ?? Number.MAX_SAFE_INTEGER;
  const expected =
    max === Number.MAX_SAFE_INTEGER
      ? `a whole number of at least ${min}`
      : `a whole number from ${min} to ${max}`;
  return key(
    {
      type: 'integer',
      expected,
      schema: scalar
        .trim()
        .regex(/^[+-]?\d+$/)
        .transform(Number)
        .pipe(z.number().int().min(min).max(max)),
      default: def,
      description,
    },
    opts,
  );
}

const TRUE_WORDS = ['true', 'yes', 'on', '1'];
const BOOL_WORDS = [...TRUE_WORDS, 'false', 'no', 'off', '0'] as const;

export function bool(def: boolean, description: string, opts: KeyOptions = {}): KeyDef<boolean> {
  return key(
    {
      type: 'boolean',
      expected: 'true or false (also yes/no, on/off, 1/0)',
      schema: scalar
        .trim()
        .toLowerCase()
        .pipe(z.enum(BOOL_WORDS))
        .transform((v) => TRUE_WORDS.includes(v)),
      default: def,
      description,
    },
    opts,
  );
}

/** Matching is case-insensitive (`tlsv1.3` is `TLSv1.3`); the canonical spelling is kept. */
function enumSchema<const V extends readonly [string, ...string[]]>(values: V): z.ZodType<V[number], string> {
  return scalar
    .trim()
    .transform((v) => values.find((x) => x.toLowerCase() === v.toLowerCase()) ?? v)
    .pipe(z.enum(values));
}

export function oneOf<const V extends readonly [string, ...string[]]>(
  values: V,
  def: V[number],
  description: string,
  opts: KeyOptions = {},
): KeyDef<V[number]> {
  return key(
    {
      type: 'enum',
      expected: `one of: ${values.join(', ')}`,
      allowed: values,
      schema: enumSchema(values),
      default: def,
      description,
    },
    opts,
  );
}

/**
 * A list: a multi-line `[ "a", "b" ]` array, the same on one line, or plain `a, b`. With `values`, each
 * element must be one of them.
 */
export function list<const V extends readonly [string, ...string[]]>(
  def: readonly V[number][],
  description: string,
  opts: KeyOptions & { values?: V } = {},
): KeyDef<readonly V[number][]> {
  const item: z.ZodType<V[number], string> = opts.values ? enumSchema(opts.values) : scalar.trim().min(1);
  const schema = z.union([scalar.transform((v) => splitList(v)), z.array(z.string())]).pipe(z.array(item));
  return key(
    {
      type: 'list',
      expected: opts.values ? `a list of: ${opts.values.join(', ')}` : 'a list of values, e.g. [ "a", "b" ]',
      ...(opts.values ? { allowed: opts.values } : {}),
      schema,
      default: def,
      description,
      format: (value) => value,
    },
    opts,
  );
}

/** An inclusive integer range written `from-to`, e.g. a shard's `0-25`. */
export interface IntRange {
  readonly from: number;
  readonly to: number;
}

export function range(description: string, opts: KeyOptions = {}): KeyDef<IntRange | null> {
  const schema = scalar
    .trim()
    .regex(/^\d+\s*-\s*\d+$/)
    .transform((v) => {
      const [from = 0, to = 0] = v.split('-').map((p) => Number(p.trim()));
      return { from, to };
    })
    .refine((r) => r.from <= r.to);
  return key(
    {
      type: 'range',
      expected: 'a range FROM-TO with FROM <= TO, e.g. 0-25',
      schema,
      default: null,
      description,
      format: (value) => (value ? `${value.from}-${value.to}` : ''),
    },
    opts,
  );
}

export function group<const M extends Members>(members: M): GroupDef<M> {
  return { kind: 'group', members };
}

export function mapOf<T>(placeholder: string, item: KeyDef<T>): MapDef<T> {
  return { kind: 'map', placeholder, item };
}

export function indexed<const M extends Members>(prefix: string, members: M): IndexedDef<M> {
  return { kind: 'indexed', prefix, members };
}

export function section<const M extends Members>(description: string, members: M): SectionDef<M> {
  return { kind: 'section', description, members };
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; message: string };

/** Parses raw text with a key's schema; on failure says what was expected and, for lists, which element. */
export function parseValue<T>(def: KeyDef<T>, raw: RawValue): ParseResult<T> {
  const result = def.schema.safeParse(raw);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  if (issue?.message === 'expected a single value, not a list') {
    return { ok: false, message: `expected ${def.expected}, not a list` };
  }
  const index = issue?.path[0];
  if (def.type === 'list' && typeof index === 'number') {
    const items = typeof raw === 'string' ? splitList(raw) : raw;
    return { ok: false, message: `element '${items[index] ?? ''}' is not valid — expected ${def.expected}` };
  }
  return { ok: false, message: `expected ${def.expected}` };
}
