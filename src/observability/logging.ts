/**
 * The logger as `[logging]` describes it: `format` (json | text), `level` and `levels.<module>`, and the
 * three outputs — console (stdout), a size-rotated file and a remote syslog server — combined with
 * `pino.multistream` in this process (see logger.ts for why not pino transports).
 *
 * On SIGHUP the server re-reads its config and calls `reload`: levels (root and per module) change at once,
 * without a restart. Outputs and format are fixed at start; a reload that changes them says so in a
 * warning instead of half-applying them.
 *
 * Secrets never reach an output: pino's `redact` blanks well-known secret field names (logger.ts), and
 * every line is scrubbed of the values of the config's secret settings (`[database] password`,
 * `[security] jwt_secret`, …) whatever field or message they turn up in — an error message that quotes
 * a connection string included.
 */
import { hostname } from 'node:os';
import { pino, type DestinationStream, type StreamEntry } from 'pino';
import { CONFIG_KEYS, type ServerConfig } from '../config/index.ts';
import { RotatingFile } from './logging-file.ts';
import { formatSyslogMessage, SyslogSender } from './logging-syslog.ts';
import { formatTextLine } from './logging-text.ts';
import { createLogger, setLogLevel, type Logger } from './logger.ts';

export type LoggingConfig = ServerConfig['logging'];

/** What replaces a secret value inside a log line. */
export const SCRUBBED = '********';
/**
 * Shorter secret values are not scrubbed: replacing every "ab" in every line would mangle the logs, and a
 * secret that short protects nothing (`--validate-config` is the place to catch it).
 */
const MIN_SCRUBBED_LENGTH = 4;

export interface LoggingOptions {
  /** `[system] instance_id`, on every line. */
  readonly instanceId: string;
  /** Values to scrub from every line (see `secretValues`). */
  readonly secrets?: readonly string[];
  /** Console output instead of stdout (tests). */
  readonly console?: { write(line: string): unknown };
  /** Where the outputs report their own failures. Default: stderr. */
  readonly onProblem?: (message: string) => void;
}

export interface Logging {
  readonly logger: Logger;
  /** Paths and addresses of the outputs in use, for the start-up log line. */
  readonly outputs: readonly string[];
  /**
   * Applies a re-read `[logging]` section: levels at once; returns the keys that changed but need a
   * restart (format and outputs). Throws `RangeError` on an unknown level, before changing anything.
   */
  reload(next: LoggingConfig, secrets?: readonly string[]): string[];
  /** Reopens the log file by name (after an external logrotate). */
  reopen(): void;
  /** Sends what the syslog output still holds and closes the outputs. */
  close(): Promise<void>;
}

/** The values of every secret setting in `config` (empty values skipped). */
export function secretValues(config: ServerConfig): string[] {
  const out = new Set<string>();
  for (const key of CONFIG_KEYS) {
    if (!key.secret) continue;
    let node: unknown = config;
    // Secret keys are plain `section.key` ids, so the id is the path into the config object.
    for (const part of key.id.split('.')) {
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[part] : undefined;
    }
    if (typeof node === 'string' && node !== '') out.add(node);
  }
  return [...out];
}

/** Replaces secret values (and their JSON-escaped forms) inside already-serialised lines. */
class Scrubber {
  private needles: string[] = [];

  constructor(secrets: readonly string[]) {
    this.set(secrets);
  }

  set(secrets: readonly string[]): void {
    const needles = new Set<string>();
    for (const secret of secrets) {
      if (secret.length < MIN_SCRUBBED_LENGTH) continue;
      needles.add(secret);
      needles.add(JSON.stringify(secret).slice(1, -1));
    }
    // Longest first, so a secret that contains another is replaced whole.
    this.needles = [...needles].sort((a, b) => b.length - a.length);
  }

  scrub(line: string): string {
    let out = line;
    for (const needle of this.needles) if (out.includes(needle)) out = out.replaceAll(needle, SCRUBBED);
    return out;
  }
}

/** One output: scrubbing and formatting in front of where the bytes go. A failing output never throws. */
function sink(
  scrubber: Scrubber,
  format: LoggingConfig['format'],
  write: (json: string, rendered: string) => void,
  name: string,
  onProblem: (message: string) => void,
): DestinationStream {
  let failing = false;
  return {
    write(line: string): void {
      try {
        const json = scrubber.scrub(line);
        write(json, format === 'text' ? formatTextLine(json) : json);
        failing = false;
      } catch (err) {
        // Reported once per failure episode: a full disk must not turn into one stderr line per log line.
        if (!failing)
          onProblem(`log output ${name} failed: ${err instanceof Error ? err.message : String(err)}`);
        failing = true;
      }
    },
  };
}

/** Keys of `[logging]` that only take effect at start. */
function restartOnlyChanges(before: LoggingConfig, after: LoggingConfig): string[] {
  const pairs: Array<[string, unknown, unknown]> = [
    ['format', before.format, after.format],
    ['console.enabled', before.console.enabled, after.console.enabled],
    ['file.enabled', before.file.enabled, after.file.enabled],
    ['file.path', before.file.path, after.file.path],
    ['file.rotate_size_mb', before.file.rotate_size_mb, after.file.rotate_size_mb],
    ['file.rotate_count', before.file.rotate_count, after.file.rotate_count],
    ['syslog.enabled', before.syslog.enabled, after.syslog.enabled],
    ['syslog.address', before.syslog.address, after.syslog.address],
    ['syslog.protocol', before.syslog.protocol, after.syslog.protocol],
  ];
  return pairs.filter(([, a, b]) => a !== b).map(([key]) => `logging.${key}`);
}

/**
 * Builds the logger and its outputs from `[logging]`. Throws when an output cannot be opened (a log
 * directory that cannot be created, a bad syslog address): the operator asked for those logs.
 */
export function createLogging(config: LoggingConfig, options: LoggingOptions): Logging {
  const onProblem =
    options.onProblem ?? ((message: string) => process.stderr.write(`messaging_server: ${message}\n`));
  const scrubber = new Scrubber(options.secrets ?? []);
  const streams: StreamEntry[] = [];
  const outputs: string[] = [];
  let file: RotatingFile | undefined;
  let syslog: SyslogSender | undefined;

  if (config.console.enabled) {
    const out = options.console ?? pino.destination({ dest: 1, sync: true });
    streams.push({
      level: 'trace',
      stream: sink(scrubber, config.format, (_json, text) => out.write(text), 'console', onProblem),
    });
    outputs.push('console');
  }
  if (config.file.enabled) {
    const opened = new RotatingFile({
      path: config.file.path,
      maxBytes: config.file.rotate_size_mb * 1024 * 1024,
      keep: config.file.rotate_count,
    });
    file = opened;
    streams.push({
      level: 'trace',
      stream: sink(
        scrubber,
        config.format,
        (_json, text) => opened.write(text),
        `file ${opened.path}`,
        onProblem,
      ),
    });
    outputs.push(`file:${opened.path}`);
  }
  if (config.syslog.enabled) {
    const sender = new SyslogSender({
      address: config.syslog.address,
      protocol: config.syslog.protocol,
      appName: 'messaging_server',
      onProblem,
    });
    syslog = sender;
    const host = hostname();
    streams.push({
      level: 'trace',
      stream: sink(
        scrubber,
        config.format,
        (json, text) => sender.send(formatSyslogMessage(json, text, 'messaging_server', host)),
        `syslog ${config.syslog.address}`,
        onProblem,
      ),
    });
    outputs.push(`syslog+${config.syslog.protocol}://${config.syslog.address}`);
  }

  const logger = createLogger({
    level: config.level,
    moduleLevels: config.levels,
    instanceId: options.instanceId,
    // No output enabled is a valid choice (e.g. a test); pino still needs somewhere to write.
    destination: streams.length > 0 ? pino.multistream(streams) : { write: () => undefined },
  });

  return {
    logger,
    outputs,
    reload(next, secrets) {
      setLogLevel(logger, next.level, next.levels);
      if (secrets !== undefined) scrubber.set(secrets);
      // Compared with what is running (the start-up config), not with the previous reload.
      return restartOnlyChanges(config, next);
    },
    reopen() {
      file?.reopen();
    },
    async close() {
      file?.close();
      await syslog?.close();
    },
  };
}
