/**
 * `messaging_server` command line: load and check the config, then run until SIGTERM/SIGINT, draining
 * connections before exiting 0. SIGHUP re-reads the config file and applies its logging levels (and
 * reopens the log file) without a restart.
 */
import { Command, Option } from 'commander';
import { assertNoErrors, formatConfig, formatProblems, loadConfig } from '../config/index.ts';
import { createLogging, secretValues, type Logging } from '../observability/logging.ts';
import { startServer } from './server.ts';
import { VERSION } from './version.ts';

const program = new Command('messaging_server')
  .description('messaging-system broker: pub/sub, request/reply, durable queues, streams and tasks')
  .version(VERSION)
  .option(
    '-c, --config <path>',
    'INI config file (see docs/operations.md); environment variables override it',
  )
  .option('--validate-config', 'check the config, print every problem, exit non-zero on errors')
  .option('--print-config', 'print the effective config with secrets redacted, then exit')
  .option('-p, --port <port>', 'messaging port (overrides [network] listen_port and MESSAGING_PORT)')
  .option('--metrics-port <port>', 'health/metrics port (overrides [monitoring] metrics_port)')
  .option('--data <dir>', 'storage directory (overrides [message_bus] persistence_path)')
  .addOption(
    new Option('--storage <engine>', 'storage engine (overrides [message_bus] storage)').choices([
      'memory',
      'file',
      'postgres',
    ]),
  )
  .addOption(
    new Option('--log-level <level>', 'log level (overrides [system] log_level)').choices([
      'trace',
      'debug',
      'info',
      'warn',
      'error',
      'fatal',
    ]),
  )
  .addHelpText(
    'after',
    `
Examples:
  messaging_server                                   # embedded store under ./data, ports 8080 and 9090
  messaging_server --config /etc/messaging/config.ini
  messaging_server --config config.ini --validate-config
  MESSAGING_PORT=4000 messaging_server --storage memory`,
  );

program.parse();
const flags = program.opts<{
  config?: string;
  validateConfig?: boolean;
  printConfig?: boolean;
  port?: string;
  metricsPort?: string;
  data?: string;
  storage?: string;
  logLevel?: string;
}>();

const overrides: Record<string, string> = {};
if (flags.port !== undefined) overrides['network.listen_port'] = flags.port;
if (flags.metricsPort !== undefined) overrides['monitoring.metrics_port'] = flags.metricsPort;
if (flags.data !== undefined) overrides['message_bus.persistence_path'] = flags.data;
if (flags.storage !== undefined) overrides['message_bus.storage'] = flags.storage;
if (flags.logLevel !== undefined) overrides['system.log_level'] = flags.logLevel;

const { config, problems } = loadConfig({ path: flags.config, env: process.env, overrides });

if (flags.validateConfig) {
  if (problems.length) console.log(formatProblems(problems));
  const errors = problems.filter((p) => p.severity === 'error').length;
  const warnings = problems.length - errors;
  console.log(
    errors
      ? `config has ${errors} error(s) and ${warnings} warning(s)`
      : `config OK (${warnings} warning(s))`,
  );
  process.exit(errors ? 1 : 0);
}

if (problems.length) console.error(formatProblems(problems));
try {
  assertNoErrors(problems);
} catch (err) {
  console.error(
    `messaging_server: ${(err as Error).message}\nrun with --validate-config to see every problem`,
  );
  process.exit(2);
}

if (flags.printConfig) {
  console.log(formatConfig(config));
  process.exit(0);
}

let logging: Logging;
try {
  logging = createLogging(config.logging, {
    instanceId: config.system.instance_id,
    secrets: secretValues(config),
  });
} catch (err) {
  console.error(`messaging_server: cannot open the log outputs of [logging]: ${(err as Error).message}`);
  process.exit(1);
}
const logger = logging.logger.child({ module: 'server' });

/** SIGHUP: re-read the config; apply logging levels now, report what would need a restart. */
const reload = (): void => {
  const next = loadConfig({ path: flags.config, env: process.env, overrides });
  const errors = next.problems.filter((p) => p.severity === 'error');
  if (errors.length > 0) {
    logger.error(
      { problems: formatProblems(errors).split('\n') },
      'SIGHUP: the config has errors; keeping the running settings',
    );
    return;
  }
  try {
    const restart = logging.reload(next.config.logging, secretValues(next.config));
    logging.reopen();
    logger.info(
      { log_level: next.config.logging.level, module_levels: next.config.logging.levels },
      'SIGHUP: config reloaded, logging levels applied',
    );
    if (restart.length > 0) logger.warn({ keys: restart }, 'SIGHUP: these settings take effect on restart');
  } catch (err) {
    logger.error({ err }, 'SIGHUP: reload failed; keeping the running settings');
  }
};
// Installed before start-up so an early SIGHUP (default action: terminate) cannot kill the server.
process.on('SIGHUP', reload);

let server: Awaited<ReturnType<typeof startServer>>;
try {
  server = await startServer(config, { logger: logging.logger });
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EADDRINUSE') {
    console.error(
      `messaging_server: port already in use (${e.message}); stop the other process or set --port / MESSAGING_PORT`,
    );
  } else if (e.code === 'EACCES') {
    console.error(
      `messaging_server: permission denied (${e.message}); check the data directory owner or use a port above 1024`,
    );
  } else console.error(`messaging_server: failed to start: ${e.message}`);
  process.exit(1);
}

let stopping = false;
const stop = (signal: string): void => {
  if (stopping) {
    server.logger.warn({ signal }, 'second signal: exiting now');
    process.exit(1);
  }
  stopping = true;
  server.logger.info({ signal }, 'signal received: graceful shutdown');
  server.close().then(
    () => logging.close().finally(() => process.exit(0)),
    (err: unknown) => {
      server.logger.error({ err }, 'error during shutdown');
      process.exit(1);
    },
  );
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
