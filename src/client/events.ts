/**
 * A minimal typed event emitter. Browser-safe (no `node:events`), and — unlike Node's EventEmitter — an
 * `error` event with no listener is simply dropped: a connection's status stream is advisory, the
 * operations themselves reject with their own errors.
 */

/** Listener for one event of an event map `E` (event name → payload type). */
export type Listener<T> = (payload: T) => void;

export class TypedEmitter<E extends object> {
  private readonly listeners = new Map<keyof E, Set<Listener<never>>>();

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /** Adds a listener that runs at most once. */
  once<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  off<K extends keyof E>(event: K, listener: Listener<E[K]>): void {
    this.listeners.get(event)?.delete(listener as Listener<never>);
  }

  /** Resolves with the next payload of `event`. */
  next<K extends keyof E>(event: K): Promise<E[K]> {
    return new Promise((resolve) => this.once(event, resolve));
  }

  protected emit<K extends keyof E>(event: K, payload: E[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<E[K]>)(payload);
      } catch (err) {
        // A throwing listener must not break the connection's state machine; surface it like an
        // uncaught error, on its own stack.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}
