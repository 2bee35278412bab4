/**
 * Public surface of the storage layer: the `Storage` contract, its types, and `createStorage`.
 * Internals (state machine, journal format) are reachable by tests but not exported.
 */
import { FileStorage } from './file/file-storage.ts';
import { MemoryStorage } from './memory.ts';
import { PostgresStorage } from './postgres/index.ts';
import { MessagingError } from '../protocol/errors.ts';
import type { Storage, StorageOptions } from './types.ts';

export type * from './types.ts';
export type * from './task-types.ts';
export { TASK_STATES, TASK_TRANSITIONS, canTransition, isTerminal, isWaiting } from './task-types.ts';
export { DEFAULT_PRIORITY, QUEUE_DEFAULTS } from './types.ts';
export { MemoryStorage } from './memory.ts';
export { FileStorage, type FileStorageOptions } from './file/file-storage.ts';
export { PostgresStorage, type PostgresStorageOptions } from './postgres/index.ts';

/**
 * Opens the configured engine; for `file`, state is recovered from `path` before this resolves; for
 * `postgres`, the connection is checked and the schema's tables are created when missing.
 */
export async function createStorage(options: StorageOptions): Promise<Storage> {
  if (options.engine === 'memory') return new MemoryStorage(options.now ? { now: options.now } : {});
  if (options.engine === 'file') {
    if (!options.path)
      throw new MessagingError('BAD_REQUEST', 'the file storage engine needs a path (persistence_path)');
    const { engine: _engine, path, ...rest } = options;
    return FileStorage.open({ path, ...rest });
  }
  if (options.engine === 'postgres') {
    if (!options.postgres)
      throw new MessagingError(
        'BAD_REQUEST',
        'the postgres storage engine needs connection settings ([database])',
      );
    return PostgresStorage.open({
      ...options.postgres,
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.now ? { now: options.now } : {}),
    });
  }
  throw new MessagingError('BAD_REQUEST', `unknown storage engine ${String(options.engine)}`);
}
