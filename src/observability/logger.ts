/**
 * Structured JSON logs (pino). One line per event, each with `level` (as a name), `time` (ISO 8601), `msg`,
 * `service: "messaging_server"`, `instance_id`, `pid` and `hostname`, so log shippers (the guide's
 * filebeat with `json.keys_under_root`) need no parsing rules.
 *
 * Modules log through `logger.child({ module: 'network' })`. Per-module levels (`[logging] levels.network =
 * debug`) are applied when such a child is created and again by `setLogLevel` at run time (SIGHUP).
 *
 * Outputs: `destination` is any pino destination stream. logging.ts builds it from `[logging]` (console,
 * rotated file, syslog) with `pino.multistream` in this process — not with pino's `transport.targets`,
 * which refuses the level-name formatter used here.
 */
import { hostname } from 'node:os';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

/** Level names the config accepts, after `parseLogLevel`. `silent` turns logging off. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

const LEVELS: ReadonlySet<string> = new Set<LogLevel>([
  'trace',
  'debug',
  'info',
  'warn',
  'error',
  'fatal',
  'silent',
]);

/** Other spellings operators write, mapped to ours. */
const ALIASES: Readonly<Record<string, LogLevel>> = {
  warning: 'warn',
  err: 'error',
  critical: 'fatal',
  off: 'silent',
};

/** Turns a config value (`debug`, `WARNING`, ` info `) into a level name; throws `RangeError` if unknown. */
export function parseLogLevel(name: string): LogLevel {
  const lower = name.trim().toLowerCase();
  const level = ALIASES[lower] ?? lower;
  if (!LEVELS.has(level)) {
    throw new RangeError(
      `unknown log level "${name}"; use one of trace, debug, info, warn, error, fatal, silent`,
    );
  }
  return level as LogLevel;
}

export interface LoggerOptions {
  /** `[system] log_level` / `[logging] level`. Default `info`. */
  level?: string;
  /** `[logging] levels.<module>`: a level per `module` binding, e.g. `{ network: 'debug' }`. */
  moduleLevels?: Readonly<Record<string, string>>;
  /** `[system] instance_id`, on every line. */
  instanceId: string;
  /** Where lines go. Default: stdout, written synchronously so nothing is lost when the process exits. */
  destination?: DestinationStream;
}

interface LoggerState {
  /** Set right after pino returns; children exist only after that. */
  root?: Logger;
  moduleLevels: Map<string, LogLevel>;
  /**
   * Children that start a module (their `module` binding differs from their parent's). Weak, because
   * a module may create a child per connection. Other children inherit their level through pino's
   * prototype chain and follow their parent without being tracked.
   */
  readonly moduleRoots: Set<WeakRef<Logger>>;
  pruneAt: number;
}

const states = new WeakMap<Logger, LoggerState>();

/**
 * Fields blanked wherever they are logged (top level or one object down, e.g. `{ db: { password } }`).
 * The values of the config's secret settings are also scrubbed from whole lines by logging.ts.
 */
const REDACTED_FIELDS = [
  'password',
  'jwt_secret',
  'api_key',
  'authorization',
  'secret',
  'private_key',
  'token',
].flatMap((name) => [name, `*.${name}`]);

function moduleOf(logger: Logger): string | undefined {
  const value: unknown = logger.bindings()['module'];
  return typeof value === 'string' ? value : undefined;
}

function parseModuleLevels(levels: Readonly<Record<string, string>> | undefined): Map<string, LogLevel> {
  const out = new Map<string, LogLevel>();
  for (const [module, level] of Object.entries(levels ?? {})) out.set(module, parseLogLevel(level));
  return out;
}

/** Creates the root logger. Throws `RangeError` on an unknown level name. */
export function createLogger(options: LoggerOptions): Logger {
  const level = parseLogLevel(options.level ?? 'info');
  const state: LoggerState = {
    moduleLevels: parseModuleLevels(options.moduleLevels),
    moduleRoots: new Set(),
    pruneAt: 64,
  };
  const logger = pino(
    {
      level,
      base: {
        pid: process.pid,
        hostname: hostname(),
        service: 'messaging_server',
        instance_id: options.instanceId,
      },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_FIELDS, censor: '********' },
      // Level names instead of pino's numbers: readable to people and to log search without a mapping.
      formatters: { level: (label) => ({ level: label }) },
      // Runs for every child at any depth: pino children inherit this option from their parent.
      onChild(child) {
        const module = moduleOf(child);
        if (module === undefined || module === moduleOf(Object.getPrototypeOf(child) as Logger)) return;
        track(state, child);
        // Same rule as `setLogLevel`: a module's level is its override, else the root's — not whatever
        // the parent module had, so a reload and a fresh start agree.
        const level = state.moduleLevels.get(module) ?? state.root?.level;
        if (level !== undefined && level !== child.level) child.level = level;
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
  state.root = logger;
  states.set(logger, state);
  return logger;
}

function track(state: LoggerState, child: Logger): void {
  state.moduleRoots.add(new WeakRef(child));
  if (state.moduleRoots.size < state.pruneAt) return;
  for (const ref of state.moduleRoots) if (ref.deref() === undefined) state.moduleRoots.delete(ref);
  // Double the threshold past the live count so pruning stays amortised O(1) per child.
  state.pruneAt = Math.max(64, state.moduleRoots.size * 2);
}

/**
 * Changes levels at run time (on SIGHUP after a config reload). `logger` must be the root from
 * `createLogger`. `moduleLevels`, when given, replaces the per-module levels; modules without an entry go
 * back to following the root level. Throws `RangeError` on an unknown level name, before changing anything.
 */
export function setLogLevel(
  logger: Logger,
  level: string,
  moduleLevels?: Readonly<Record<string, string>>,
): void {
  const rootLevel = parseLogLevel(level);
  const state = states.get(logger);
  const nextModules = moduleLevels === undefined ? state?.moduleLevels : parseModuleLevels(moduleLevels);
  logger.level = rootLevel;
  if (state === undefined || nextModules === undefined) return;
  state.moduleLevels = nextModules;
  for (const ref of state.moduleRoots) {
    const child = ref.deref();
    if (child === undefined) {
      state.moduleRoots.delete(ref);
      continue;
    }
    const module = moduleOf(child);
    // Module children may hold their own level (which stops pino's inheritance from the root), so each
    // gets one explicitly: its override, or the root's level.
    child.level = (module !== undefined ? nextModules.get(module) : undefined) ?? rootLevel;
  }
}
