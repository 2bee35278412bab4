/**
 * The `messaging` command line: the root program, its global options and the command groups. A new
 * group is one module under `commands/` with a `register…(program)` function, added to the list below.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { registerAudit } from './commands/audit.ts';
import { registerAuth } from './commands/auth.ts';
import { registerBench } from './commands/bench.ts';
import { registerDlq } from './commands/dlq.ts';
import { registerKeys } from './commands/keys.ts';
import { registerPubSub } from './commands/pubsub.ts';
import { registerQueue } from './commands/queue.ts';
import { registerStream } from './commands/stream.ts';
import { registerTasks } from './commands/tasks.ts';
import { addGlobalOptions, serverFrom, type GlobalOptions } from './connect.ts';
import { EXIT, describeError } from './errors.ts';

const COMMAND_GROUPS: Array<(program: Command) => void> = [
  registerPubSub,
  registerQueue,
  registerDlq,
  registerStream,
  registerTasks,
  registerBench,
  registerAuth,
  registerAudit,
  registerKeys,
];

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export function createProgram(): Command {
  const program = new Command('messaging')
    .description(
      'command-line client for messaging-system: publish, subscribe, request/reply, durable queues, streams, benchmarks',
    )
    .version(packageVersion(), '-V, --version')
    // Before any subcommand is added: these settings are inherited by every command created later.
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false });
  addGlobalOptions(program);
  program.addHelpText(
    'after',
    `
Examples:
  $ messaging sub 'orders.*'
  $ messaging pub orders.created '{"id":42}'
  $ messaging --server ws://broker:8080/v1/ws req users.lookup '{"id":7}'
  $ messaging queue add orders --bind 'orders.#' && messaging pub orders.created '{"id":42}' --confirm
  $ messaging queue consume orders --count 1 --ack

Environment: MESSAGING_URL (server), MESSAGING_TOKEN (token).
Exit codes: 0 success, 1 usage or operation failed, 2 server unreachable / authentication / connection lost.`,
  );
  for (const register of COMMAND_GROUPS) register(program);
  return program;
}

/** Runs the CLI with `argv` (as in process.argv) and returns the exit code; never throws. */
export async function run(argv: string[]): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync(argv);
    return EXIT.OK;
  } catch (err) {
    // commander has already printed its own usage errors, help and version.
    if (err instanceof CommanderError) return err.exitCode;
    const failure = describeError(err, { server: serverFrom(program.opts<GlobalOptions>()) });
    process.stderr.write(`error: ${failure.message}\n`);
    if (failure.detail) process.stderr.write(`  (${failure.detail})\n`);
    return failure.exitCode;
  }
}
