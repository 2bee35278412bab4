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
  private turn: Promise<void> | undefined;

  constructor(options: { now?: () => number } = {}) {
    super(options.now ?? Date.now);
  }

  protected write(): Loc | undefined {
    return undefined;
  }

  /**
   * Already durable; but the writes of one synchronous run share one promise, as a group commit's do
   * (`publishNow` callers confirm per promise, not per write). The next run gets a fresh one: the reset
   * is queued before any callback on the promise, so no write joins a promise whose callbacks ran.
   */
  protected durable(): Promise<void> {
    if (!this.turn) {
      this.turn = Promise.resolve();
      queueMicrotask(() => (this.turn = undefined));
    }
    return this.turn;
  }

  protected hooks(): StateHooks {
    return {
      bodyAdded: (h, rec) => {
        // The message being published as it is (see `appending`), not a copy of it.
        const m = this.appending;
        this.messages[h] =
          m && m.payload === rec.payload ? m : { ...rec.head, payload: rec.payload ?? new Uint8Array(0) };
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
