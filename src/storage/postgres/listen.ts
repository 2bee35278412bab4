/**
 * Cross-server wake-ups: every transaction that makes something ready NOTIFYs the schema's channel at
 * commit (`TxEffects`), and each server LISTENs on one dedicated connection. A server skips its own
 * notifications (it already reacted to its own writes). When the connection drops, it reconnects and
 * reports `resync`: notifications sent meanwhile are lost, so listeners look at everything once.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { Logger, StorageEvent } from '../types.ts';
import type { Db } from './db.ts';

/** The channel of a schema: a NOTIFY channel name must stay under 64 bytes, schema names may not. */
export function channelOf(schema: string): string {
  const hash = createHash('sha1').update(schema).digest('hex').slice(0, 10);
  return `messaging_${schema.slice(0, 40)}_${hash}`;
}

const RECONNECT_MS = 1000;

export class Listener {
  private readonly listeners = new Set<(event: StorageEvent) => void>();
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;

  constructor(
    private readonly db: Db,
    private readonly channel: string,
    private readonly instance: string,
    private readonly logger: Logger | undefined,
  ) {}

  add(listener: (event: StorageEvent) => void): () => void {
    this.listeners.add(listener);
    if (this.stopped) {
      this.stopped = false;
      void this.connect(false);
    }
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) void this.stop();
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(again: boolean): Promise<void> {
    if (this.stopped) return;
    const client = this.db.client();
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    client.on('notification', (n) => {
      if (n.channel === this.channel && n.payload) this.deliver(n.payload);
    });
    this.client = client;
    try {
      await client.connect();
      await client.query(`LISTEN "${this.channel}"`);
      if (again) {
        this.logger?.info({ channel: this.channel }, 'PostgreSQL notifications resumed');
        this.emit({ kind: 'resync' });
      }
    } catch (err) {
      this.logger?.warn(
        { err: this.db.translate(err) },
        'cannot listen for PostgreSQL notifications; retrying',
      );
      this.lost(client);
    }
  }

  private lost(client: pg.Client): void {
    if (this.client !== client || this.stopped) return;
    this.client = undefined;
    void client.end().catch(() => undefined);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.connect(true), RECONNECT_MS);
    this.timer.unref();
  }

  private deliver(payload: string): void {
    let msg: { i?: string; e?: StorageEvent[] };
    try {
      msg = JSON.parse(payload) as typeof msg;
    } catch {
      return;
    }
    if (msg.i === this.instance || !Array.isArray(msg.e)) return;
    for (const e of msg.e) this.emit(e);
  }

  private emit(e: StorageEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.logger?.warn({ err }, 'storage event listener failed');
      }
    }
  }
}
