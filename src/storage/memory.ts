/**
 * The `memory` engine (`enable_persistence = false`): the shared state machine with payloads kept in RAM
 * and a journal that writes nothing. Every operation is "durable" as soon as it is applied.
 */
import { BaseStorage, type BodyRef } from './engine.ts';
import type { Loc } from './internal/records.ts';
import type { StateHooks } from './internal/state.ts';
import type { Message } from './types.ts';

export class MemoryStorage extends BaseStorage {
  readonly engine = 'memory';
  /** Message by body slot. */
  private messages: (Message | undefined)[] = [];

  constructor(options: { now?: () => number } = {}) {
    super(options.now ?? Date.now);
  }

  protected write(): Loc | undefined {
    return undefined;
  }

  protected durable(): Promise<void> {
    return Promise.resolve();
  }

  protected hooks(): StateHooks {
    return {
      bodyAdded: (h, rec) => {
        this.messages[h] = { ...rec.head, payload: rec.payload ?? new Uint8Array(0) };
      },
      bodyFreed: (h) => {
        this.messages[h] = undefined;
      },
      bodyMoved: () => undefined,
      referenced: () => undefined,
    };
  }

  protected load(refs: BodyRef[]): Promise<(Message | undefined)[]> {
    return Promise.resolve(
      refs.map((r) => (this.state.bodies.key[r.h] === r.key ? this.messages[r.h] : undefined)),
    );
  }

  async compact(): Promise<void> {
    await this.enter();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.messages = [];
  }
}
