/**
 * A line-oriented reader for the deployment guide's INI dialect. We read lines ourselves rather than use
 * `ini.decode` because every key needs its line number for error messages, and because the guide's
 * `[audit] events_to_log = [` … `]` array spans several lines, which `ini` cannot parse.
 *
 * Dialect: `;` and `#` start comments (whole-line, or inline after an unquoted value — `\;` and `\#` escape
 * them, exactly as the `ini` package does); `[section]` and `[section.sub]` headers; `key = value` where
 * the key may be dotted (`levels.network`); values may be quoted with "" (JSON escapes) or ''. A value
 * starting with `[` and not closed on its line is a multi-line array of (usually quoted) elements.
 * Repeated sections merge; a key repeated within the same section is reported and the last one wins.
 */
import { unsafe } from 'ini';
import type { ConfigProblem } from './problems.ts';

export interface IniEntry {
  readonly section: string;
  readonly key: string;
  /** Text for ordinary values; the elements for a multi-line array. */
  readonly value: string | readonly string[];
  readonly line: number;
}

export interface IniSectionHeader {
  readonly name: string;
  readonly line: number;
}

export interface IniDocument {
  readonly file: string;
  readonly sections: readonly IniSectionHeader[];
  readonly entries: readonly IniEntry[];
  readonly problems: readonly ConfigProblem[];
}

const SECTION_RE = /^\[([^\]]*)\]\s*(?:[;#].*)?$/;

interface ScanResult {
  items: string[];
  /** A closing `]` was found outside quotes. */
  closed: boolean;
  /** Non-comment text after the closing `]`. */
  trailing: string;
  unterminatedQuote: boolean;
}

/**
 * Splits list text on commas outside quotes, stopping at `]` or at a comment. Quote-aware because
 * elements are quoted strings that may themselves contain `,`, `;`, `#` or `]`.
 */
function scanItems(text: string): ScanResult {
  const items: string[] = [];
  let current = '';
  let quote: '"' | "'" | null = null;
  let i = 0;
  const push = (): void => {
    const item = unquote(current.trim());
    if (current.trim() !== '') items.push(item);
    current = '';
  };
  for (; i < text.length; i++) {
    const c = text.charAt(i);
    if (quote) {
      current += c;
      if (c === '\\' && quote === '"') {
        current += text.charAt(++i);
      } else if (c === quote) {
        quote = null;
      }
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      current += c;
    } else if (c === ',') {
      push();
    } else if (c === ']') {
      push();
      const rest = text.slice(i + 1).trim();
      return { items, closed: true, trailing: /^[;#]/.test(rest) ? '' : rest, unterminatedQuote: false };
    } else if (c === ';' || c === '#') {
      break;
    } else {
      current += c;
    }
  }
  if (quote) return { items, closed: false, trailing: '', unterminatedQuote: true };
  push();
  return { items, closed: false, trailing: '', unterminatedQuote: false };
}

function unquote(text: string): string {
  if (text.length >= 2 && text.startsWith('"') && text.endsWith('"')) {
    try {
      return String(JSON.parse(text));
    } catch {
      return text.slice(1, -1);
    }
  }
  if (text.length >= 2 && text.startsWith("'") && text.endsWith("'")) return text.slice(1, -1);
  return text;
}

/**
 * Splits a one-line list: `[ "a", "b" ]`, `["a","b"]` or `a, b`. Used by list-typed keys for values
 * that arrive as one string (a one-line array in a file, an environment variable, a flag).
 */
export function splitList(text: string): string[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) return scanItems(trimmed.slice(1)).items;
  return scanItems(trimmed).items;
}

/** True when `value` opens an array that does not close on the same line. */
function opensMultiLineArray(value: string): ScanResult | null {
  if (!value.startsWith('[')) return null;
  const scan = scanItems(value.slice(1));
  return scan.closed ? null : scan;
}

export function readIni(text: string, file: string): IniDocument {
  const sections: IniSectionHeader[] = [];
  const entries: IniEntry[] = [];
  const problems: ConfigProblem[] = [];
  const seen = new Map<string, number>();
  let section: string | null = null;
  // Keep "\r\n" and "\n" line numbers right by splitting on exactly one line break each time.
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);

  const addEntry = (key: string, value: string | readonly string[], line: number): void => {
    if (section === null) {
      problems.push({
        severity: 'error',
        file,
        line,
        key,
        message: `key '${key}' is outside any section — put it under a [section] header`,
      });
      return;
    }
    const id = `${section}\u0000${key}`;
    const first = seen.get(id);
    if (first !== undefined) {
      problems.push({
        severity: 'warning',
        file,
        line,
        key: `${section}.${key}`,
        message: `duplicate key '${key}' in [${section}] (first set at line ${first}); the last value wins`,
      });
    } else {
      seen.set(id, line);
    }
    entries.push({ section, key, value, line });
  };

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = (lines[i] ?? '').trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) continue;

    const header = SECTION_RE.exec(line);
    if (header) {
      section = (header[1] ?? '').trim();
      if (section === '') {
        problems.push({ severity: 'error', file, line: lineNo, message: 'empty section name []' });
        section = null;
        continue;
      }
      sections.push({ name: section, line: lineNo });
      continue;
    }

    const eq = line.indexOf('=');
    if (eq <= 0) {
      problems.push({
        severity: 'error',
        file,
        line: lineNo,
        message: `expected 'key = value' or '[section]', got '${line}'`,
      });
      continue;
    }
    const key = line.slice(0, eq).trim();
    const rawValue = line.slice(eq + 1).trim();

    const open = opensMultiLineArray(rawValue);
    if (!open) {
      // `ini.unsafe` would cut a bracketed list at a `;` inside a quoted element, so lists keep their text.
      addEntry(key, rawValue.startsWith('[') ? rawValue : unsafe(rawValue), lineNo);
      continue;
    }

    const items = [...open.items];
    let closed = false;
    let j = i + 1;
    if (open.unterminatedQuote) {
      problems.push({
        severity: 'error',
        file,
        line: lineNo,
        key: section ? `${section}.${key}` : key,
        message: `unterminated quote in the array '${key}'`,
      });
    }
    for (; j < lines.length; j++) {
      const inner = (lines[j] ?? '').trim();
      if (inner === '' || inner.startsWith(';') || inner.startsWith('#')) continue;
      // A section header here means the `]` was forgotten; stop so the rest of the file still reads.
      if (SECTION_RE.test(inner) && !inner.startsWith('["') && !inner.startsWith("['")) break;
      const scan = scanItems(inner);
      items.push(...scan.items);
      if (scan.unterminatedQuote) {
        problems.push({
          severity: 'error',
          file,
          line: j + 1,
          key: section ? `${section}.${key}` : key,
          message: `unterminated quote in the array '${key}'`,
        });
      }
      if (scan.trailing !== '') {
        problems.push({
          severity: 'error',
          file,
          line: j + 1,
          key: section ? `${section}.${key}` : key,
          message: `unexpected text '${scan.trailing}' after ']' closing the array '${key}'`,
        });
      }
      if (scan.closed) {
        closed = true;
        break;
      }
    }
    if (!closed) {
      problems.push({
        severity: 'error',
        file,
        line: lineNo,
        key: section ? `${section}.${key}` : key,
        message: `the array '${key}' opened here is never closed with ']'`,
      });
      i = j - 1;
    } else {
      i = j;
    }
    addEntry(key, items, lineNo);
  }
  return { file, sections, entries, problems };
}
