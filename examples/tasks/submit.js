// Submits tasks to the worker of handlers.js and prints what comes back.
//
//   node examples/tasks/submit.js          (server: MESSAGING_URL, default tcp://127.0.0.1:8080)
//
// In your own project import the SDK from the package; inside this repository the sources are
// TypeScript, so the example registers tsx first (as the bin/ scripts do).
import { register } from 'tsx/esm/api';

register();
const { connect } = await import('../../src/client/index.ts');

const conn = await connect({ servers: process.env.MESSAGING_URL ?? 'tcp://127.0.0.1:8080' });
const tasks = conn.tasks;

// One task: submit, then wait for its result.
const email = await tasks.submit('email.send', { to: 'ada@example.com', subject: 'Hello' });
console.log('email.send →', JSON.stringify(await email.wait(30_000)));

// A delayed task, with retries and a timeout.
const resize = await tasks.submitLater('image.resize', { image: 'cat.png', width: 320 }, 200, {
  maxRetries: 2,
  timeoutMs: 10_000,
});
console.log('image.resize →', JSON.stringify(await resize.wait(30_000)));

// A chain: each result feeds the next step.
const chain = await tasks.chain([tasks.sig('math.square', 3), tasks.sig('math.square')]);
console.log('chain square(square(3)) →', await chain.wait(30_000));

// A group (results in order) and a chord (a callback with every result).
const group = await tasks.group([1, 2, 3, 4].map((n) => tasks.sig('math.square', n)));
console.log('group of squares →', JSON.stringify(await group.wait(30_000)));
const chord = await tasks.chord(
  [1, 2, 3, 4].map((n) => tasks.sig('math.square', n)),
  tasks.sig('math.sum'),
);
console.log('chord sum of squares →', await chord.wait(30_000));

// CPU-bound work in a worker thread.
const hash = await tasks.submit('hash.iterate', { text: 'messaging', rounds: 20_000 });
console.log('hash.iterate →', await hash.wait(60_000));

// A failure: wait() rejects with the handler's error.
try {
  await (await tasks.submit('order.validate', { qty: 0 })).wait(30_000);
} catch (err) {
  console.log(`order.validate → ${err.code}: ${err.message}`);
}

await conn.close();
