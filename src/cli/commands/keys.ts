/**
 * `messaging keys init | rotate | list --key-store DIR` — the encryption-at-rest key store
 * ([security.encryption] key_store). Rotation writes a new key and points `current` at it; running
 * servers pick it up within a second on their next write, and records sealed with older keys stay
 * readable because old keys are never removed.
 */
import type { Command } from 'commander';
import { KeyStore } from '../../security/keystore.ts';
import { print } from '../connect.ts';
import { CliError } from '../errors.ts';
import { examples } from '../format.ts';
import { renderTable } from '../table.ts';

interface KeyOptions {
  keyStore: string;
  json?: boolean;
}

function open(dir: string, create: boolean): KeyStore {
  try {
    return KeyStore.open(dir, { create });
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

export function registerKeys(program: Command): void {
  const keys = program
    .command('keys')
    .description('encryption-at-rest key store: init, rotate, list')
    .addHelpText(
      'after',
      examples(
        'messaging keys init --key-store /etc/messaging/keys',
        'messaging keys rotate --key-store /etc/messaging/keys',
        'messaging keys list --key-store /etc/messaging/keys',
      ),
    );
  keys
    .command('init')
    .description('create the key store with its first key (no-op when it has keys)')
    .requiredOption('--key-store <dir>', 'the key directory ([security.encryption] key_store)')
    .action(async (opts: KeyOptions) => {
      const store = open(opts.keyStore, true);
      await print(`key store ${opts.keyStore}: current key ${store.current.id}`);
    });
  keys
    .command('rotate')
    .description('write a new key and make it current; older keys stay for reading old data')
    .requiredOption('--key-store <dir>', 'the key directory ([security.encryption] key_store)')
    .action(async (opts: KeyOptions) => {
      const store = open(opts.keyStore, false);
      const id = store.rotate();
      await print(`key store ${opts.keyStore}: new current key ${id} (${store.list().length} keys)`);
    });
  keys
    .command('list')
    .description('list key ids, their age and which one is current (never the key bytes)')
    .requiredOption('--key-store <dir>', 'the key directory ([security.encryption] key_store)')
    .option('--json', 'one JSON object per key')
    .action(async (opts: KeyOptions) => {
      const list = open(opts.keyStore, false).list();
      if (opts.json) {
        await print(
          list
            .map((k) => JSON.stringify({ id: k.id, created_at: k.createdAt, current: k.current }))
            .join('\n'),
        );
        return;
      }
      await print(
        renderTable(
          ['ID', 'CREATED', 'CURRENT'],
          list.map((k) => [k.id, new Date(k.createdAt).toISOString(), k.current ? 'yes' : '']),
        ),
      );
    });
}
