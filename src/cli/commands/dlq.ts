/** `messaging dlq ls | replay | purge` — a durable queue's dead letters. */
import type { Command } from 'commander';
import type { DeadLetter } from '../../client/index.ts';
import { positiveInt, print, withConnection, type GlobalOptions } from '../connect.ts';
import { collect, durationArg, examples, formatDuration, nonNegativeInt, preview } from '../format.ts';
import { note } from '../io.ts';
import { renderTable } from '../table.ts';
import { messageToObject } from './pubsub.ts';

interface LsOptions extends GlobalOptions {
  json?: boolean;
  limit?: number;
  offset?: number;
}

interface ReplayOptions extends GlobalOptions {
  id?: string[];
}

interface PurgeOptions extends GlobalOptions {
  olderThan?: number;
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
const decoder = new TextDecoder();

/** One `--json` line per dead letter: its facts and the message in the `sub --json` form. */
export function deadLetterToJson(d: DeadLetter): string {
  return JSON.stringify({
    id: d.id,
    reason: d.reason,
    failures: d.failures,
    last_error: d.lastError ?? null,
    dead_lettered_at: d.deadLetteredAt,
    message: messageToObject(d.message),
  });
}

async function runLs(queue: string, opts: LsOptions): Promise<void> {
  const dead = await withConnection(opts, { queue }, (conn) =>
    conn.queues.deadLetters(queue, { limit: opts.limit, offset: opts.offset }),
  );
  if (opts.json) {
    if (dead.length > 0) await print(dead.map(deadLetterToJson).join('\n'));
    return;
  }
  if (dead.length === 0) {
    note(`queue '${queue}' has no dead letters`);
    return;
  }
  const now = Date.now();
  await print(
    renderTable(
      ['ID', 'REASON', 'FAILURES', 'AGE', 'TOPIC', 'LAST ERROR', 'PAYLOAD'],
      dead.map((d) => [
        d.id,
        d.reason,
        String(d.failures),
        formatDuration(now - d.deadLetteredAt),
        d.message.topic,
        preview(d.lastError ?? '-', 40),
        preview(decoder.decode(d.message.payload), 40),
      ]),
      ['left', 'left', 'right', 'right', 'left', 'left', 'left'],
    ),
  );
}

async function runReplay(queue: string, opts: ReplayOptions): Promise<void> {
  const replayed = await withConnection(opts, { queue }, (conn) =>
    conn.queues.replayDeadLetters(queue, opts.id),
  );
  note(`replayed ${plural(replayed, 'dead letter')} into queue '${queue}'`);
  if (opts.id && replayed < opts.id.length) {
    note(
      `${opts.id.length - replayed} of the given ids were not among the dead letters (see: messaging dlq ls ${queue})`,
    );
  }
}

async function runPurge(queue: string, opts: PurgeOptions): Promise<void> {
  const purged = await withConnection(opts, { queue }, (conn) =>
    conn.queues.purgeDeadLetters(queue, { olderThanMs: opts.olderThan }),
  );
  note(
    `purged ${plural(purged, 'dead letter')} from queue '${queue}'${opts.olderThan !== undefined ? ` (older than ${formatDuration(opts.olderThan)})` : ''}`,
  );
}

/** Registers the `dlq` command group. */
export function registerDlq(program: Command): void {
  const dlq = program
    .command('dlq')
    .description("a durable queue's dead letters: list, replay into the queue, purge")
    .addHelpText(
      'after',
      examples(
        'messaging dlq ls orders',
        'messaging dlq replay orders --id 01J…',
        'messaging dlq purge orders --older-than 7d',
      ),
    );

  dlq
    .command('ls')
    .description('list dead letters: id, reason, failures, age, topic, last error, payload')
    .argument('<queue>', 'queue name')
    .option('--json', 'print one JSON object per dead letter')
    .option('--limit <n>', 'at most N (default 100)', positiveInt('--limit'))
    .option('--offset <n>', 'skip the first N', nonNegativeInt('--offset'))
    .action(async (queue: string, _o: unknown, cmd: Command) =>
      runLs(queue, cmd.optsWithGlobals<LsOptions>()),
    );

  dlq
    .command('replay')
    .description('put dead letters back into their queue (all of them without --id)')
    .argument('<queue>', 'queue name')
    .option('--id <id>', 'replay only this dead letter (repeatable)', collect)
    .action(async (queue: string, _o: unknown, cmd: Command) =>
      runReplay(queue, cmd.optsWithGlobals<ReplayOptions>()),
    );

  dlq
    .command('purge')
    .description('delete dead letters for good')
    .argument('<queue>', 'queue name')
    .option(
      '--older-than <duration>',
      'only those dead-lettered longer ago than this: 90s, 10m, 2h, 7d or ms',
      durationArg('--older-than', true),
    )
    .action(async (queue: string, _o: unknown, cmd: Command) =>
      runPurge(queue, cmd.optsWithGlobals<PurgeOptions>()),
    );
}
