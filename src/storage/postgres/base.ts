/**
 * What every part of the `postgres` engine shares: the connection, the injected clock, and this
 * instance's identity.
 */
import { randomBytes } from 'node:crypto';
import { MessagingError } from '../../protocol/errors.ts';
import type { Db, Sql } from './db.ts';
import { TxEffects } from './rows.ts';

export interface QueueRow {
  name: string;
  spec: import('../types.ts').QueueSpec;
  ack_timeout_ms: number;
  max_deliveries: number;
}

export abstract class PgBase {
  /**
   * Random per open. Delivery ids carry it, so an id from another server or an earlier run never matches
   * a new delivery; consumer ids are stored under it, because they are only unique within one server
   * (`conn-7:orders` exists on every server) and one server's closing connection must not hand back
   * deliveries that a same-named consumer holds on another.
   */
  protected readonly instance = randomBytes(6).toString('hex');
  private deliverySeq = 0;

  protected constructor(
    protected readonly db: Db,
    protected readonly now: () => number,
    /** NOTIFY channel of the schema: every server using it listens there (see `watch`). */
    protected readonly channel: string,
  ) {}

  /** Side effects of one transaction, applied just before it commits (`TxEffects.apply`). */
  protected fx(): TxEffects {
    return new TxEffects({ channel: this.channel, instance: this.instance });
  }

  protected nextDeliveryId(): string {
    return `${this.instance}-${(++this.deliverySeq).toString(36)}`;
  }

  /** The consumer id as stored: scoped to this instance (see `instance`). */
  protected consumerKey(consumerId: string): string {
    return `${this.instance}/${consumerId}`;
  }

  protected async queueRow(c: Sql, name: string, lock = ''): Promise<QueueRow> {
    const rows = (
      await c.query<QueueRow>(
        `SELECT name, spec, ack_timeout_ms, max_deliveries FROM queues WHERE name = $1 ${lock}`,
        [name],
      )
    ).rows;
    const q = rows[0];
    if (!q) throw new MessagingError('NOT_FOUND', `queue "${name}" does not exist`);
    return q;
  }
}
