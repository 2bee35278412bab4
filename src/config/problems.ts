/**
 * Loading never throws for a bad file: every finding is collected as a problem so an operator sees all of
 * them at once (`--validate-config`). `assertNoErrors` turns errors into one exception for start-up.
 */
import { MessagingError } from '../protocol/errors.ts';

export interface ConfigProblem {
  readonly severity: 'error' | 'warning';
  /** The file the problem was found in; absent for environment variables, overrides and defaults. */
  readonly file?: string;
  readonly line?: number;
  /** Full dotted key, e.g. `network.listen_port`, `security.ssl.min_version`, `logging.levels.network`. */
  readonly key?: string;
  /** What is wrong and what to do; the location is in `file`/`line`, not repeated here. */
  readonly message: string;
}

function location(p: ConfigProblem): string {
  if (p.file === undefined) return '';
  return p.line === undefined ? `${p.file}: ` : `${p.file}:${p.line}: `;
}

/** One problem per line: `error: config.ini:12: unknown key 'listen_prot' in [network] — did you mean …`. */
export function formatProblems(problems: readonly ConfigProblem[]): string {
  return problems.map((p) => `${p.severity}: ${location(p)}${p.message}`).join('\n');
}

/** Thrown by `assertNoErrors`; `problems` holds every error and warning found. */
export class ConfigError extends MessagingError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    const errors = problems.filter((p) => p.severity === 'error');
    super(
      'BAD_REQUEST',
      `invalid configuration (${errors.length} error${errors.length === 1 ? '' : 's'}):\n${formatProblems(errors)}`,
      { details: { problems } },
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Throws a `ConfigError` listing every error when there is at least one; warnings never throw. */
export function assertNoErrors(problems: readonly ConfigProblem[]): void {
  if (problems.some((p) => p.severity === 'error')) throw new ConfigError(problems);
}
