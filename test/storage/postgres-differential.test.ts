/**
 * Differential test of the `postgres` engine: one random sequence of queue and stream operations runs
 * against the memory engine (the reference: the shared state machine) and the PostgreSQL engine, with
 * periodic close and reopen. The PostgreSQL engine re-expresses the rules as SQL, so any difference in
 * what they return is a bug in that translation. (`tick().ready_queues` is a wake-up hint that may name
 * more queues than the memory engine does, so it is left out.)
 */
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { PostgresStorage } from '../../src/storage/index.ts';
import { dropSchemas, PG, uniqueSchema } from '../helpers/postgres.ts';
import { runDifferential } from './differential.ts';

const schemas: string[] = [];
after(() => dropSchemas(schemas));

for (const seed of [11, 22]) {
  it(
    `memory and postgres engines agree on a random workload (seed ${seed})`,
    { timeout: 120_000 },
    async () => {
      const schema = uniqueSchema('diff');
      schemas.push(schema);
      const { reopened } = await runDifferential({
        seed,
        steps: 1500,
        open: (now) => PostgresStorage.open({ ...PG, schema, poolMax: 4, now }),
        compareReadyQueues: false,
      });
      assert.ok(reopened > 0, `reopened ${reopened} times`);
    },
  );
}
