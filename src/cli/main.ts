/** Entry point of the `messaging` binary (see bin/messaging.js). */
import { run } from './program.ts';

// exitCode rather than process.exit(): the latter could cut off output still queued for a pipe.
process.exitCode = await run(process.argv);
