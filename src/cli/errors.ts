/**
 * How the CLI reports failures: one `error: …` line that says what happened and what to do, and an exit
 * code a script can branch on.
 */
import { MessagingError } from '../client/index.ts';

/** Exit codes of `messaging`. */
export const EXIT = {
  OK: 0,
  /** Bad usage, or the operation failed (no responders, timeout, refused by the server, unconfirmed). */
  FAILURE: 1,
  /** The server could not be reached, refused the credentials, or the connection was lost. */
  CONNECTION: 2,
} as const;

/** An error the CLI raises itself, with the exact text to print. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.FAILURE,
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Context for turning an SDK error into advice. */
export interface ErrorContext {
  server: string;
  /** Topic of the operation, for request errors. */
  topic?: string;
  timeoutMs?: number;
  /** The durable queue the operation names, for NOT_FOUND / ALREADY_EXISTS advice. */
  queue?: string;
  /** The stream the operation names. */
  stream?: string;
}

/** `'orders'` quoted for a shell command line when it needs it. */
function shellWord(word: string): string {
  return /^[\w.@%+=:,/-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

const CONNECT_HINT = 'is messaging_server running? set --server or MESSAGING_URL';

function rootCause(err: unknown): string | undefined {
  const cause = err instanceof Error ? err.cause : undefined;
  if (cause instanceof Error && cause.message) return cause.message;
  return undefined;
}

/** Maps any thrown value to the message, detail line and exit code the CLI prints. */
export function describeError(err: unknown, ctx: ErrorContext): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof MessagingError) {
    switch (err.code) {
      case 'CONNECTION_CLOSED':
        if (err.message.startsWith('cannot reach')) {
          return new CliError(
            `cannot reach ${ctx.server} — ${CONNECT_HINT}`,
            EXIT.CONNECTION,
            rootCause(err),
          );
        }
        return new CliError(`connection to ${ctx.server} lost: ${err.message}`, EXIT.CONNECTION);
      case 'AUTH_REQUIRED':
        return new CliError(
          `${ctx.server} requires authentication — pass a token with --token or MESSAGING_TOKEN`,
          EXIT.CONNECTION,
          err.message,
        );
      case 'AUTH_FAILED':
      case 'TOKEN_EXPIRED':
        return new CliError(
          `authentication failed: ${err.message} — check --token or MESSAGING_TOKEN`,
          EXIT.CONNECTION,
        );
      case 'UNSUPPORTED_VERSION':
      case 'TOO_MANY_CONNECTIONS':
      case 'SERVER_SHUTTING_DOWN':
      case 'HANDSHAKE_TIMEOUT':
        return new CliError(`${ctx.server} refused the connection: ${err.message}`, EXIT.CONNECTION);
      case 'NO_RESPONDERS':
        return new CliError(`no responders for '${ctx.topic ?? '?'}' — is a service subscribed?`);
      case 'TIMEOUT':
        if (ctx.topic !== undefined && ctx.timeoutMs !== undefined) {
          return new CliError(
            `no reply from '${ctx.topic}' within ${ctx.timeoutMs} ms — is the responder slow? raise --timeout`,
          );
        }
        return new CliError(`${err.message} — raise --timeout or check the server`);
      case 'NOT_FOUND':
        if (ctx.queue !== undefined) {
          return new CliError(
            `queue '${ctx.queue}' does not exist — create it with: messaging queue add ${shellWord(ctx.queue)} --bind 'orders.#'`,
          );
        }
        if (ctx.stream !== undefined) {
          return new CliError(
            `stream '${ctx.stream}' does not exist — create it with: messaging stream add ${shellWord(ctx.stream)} --bind 'orders.#'`,
          );
        }
        return new CliError(`${err.message} (NOT_FOUND)`);
      case 'ALREADY_EXISTS': {
        const [kind, name] =
          ctx.queue !== undefined
            ? ['queue', ctx.queue]
            : ctx.stream !== undefined
              ? ['stream', ctx.stream]
              : [];
        if (kind && name !== undefined) {
          return new CliError(
            `${kind} '${name}' already exists with other settings — declare it with the same settings, or remove it first with: messaging ${kind} rm ${shellWord(name)}`,
          );
        }
        return new CliError(`${err.message} (ALREADY_EXISTS)`);
      }
      case 'QUEUE_FULL':
        return new CliError(
          `${err.message} — consume or purge the queue, or re-create it with a larger --max-length (QUEUE_FULL)`,
        );
      case 'STORAGE_FULL':
        return new CliError(
          `${err.message} — the server's disk is full: free space or purge queues (STORAGE_FULL)`,
        );
      case 'UNKNOWN_COMMAND':
        return new CliError(
          `${err.message} — the server does not support this command; is it an older messaging_server? (UNKNOWN_COMMAND)`,
        );
      case 'PERMISSION_DENIED':
        return new CliError(`permission denied: ${err.message} — the token does not allow this`);
      default:
        return new CliError(`${err.message} (${err.code})`);
    }
  }
  const message = err instanceof Error ? err.message : String(err);
  return new CliError(message);
}
