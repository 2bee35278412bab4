// Task handlers for messaging_worker: the default export maps task names to handlers.
//
//   npx messaging_worker --tasks examples/tasks/handlers.js
//
// A handler is `async (args, ctx) => result`. `ctx` has the task's id, attempt, an AbortSignal
// (`ctx.signal`: cancellation, timeout, shutdown) and `ctx.progress(value, message)`.
// An object entry also picks the pool the handler runs in.
import { createHash } from 'node:crypto';

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    });
  });

export default {
  // Realtime pool (the default).
  'email.send': async ({ to, subject }, ctx) => {
    ctx.progress(0.3, 'rendering');
    await sleep(50, ctx.signal);
    ctx.progress(0.8, 'sending');
    await sleep(50, ctx.signal);
    return { delivered: true, to, subject };
  },

  // Batch pool: bulk work with its own concurrency, so it never holds up realtime tasks.
  'image.resize': {
    pool: 'batch',
    handler: async ({ image, width }, ctx) => {
      await sleep(100, ctx.signal);
      return { image, width, bytes: width * 32 };
    },
  },

  // Chain/chord steps: the previous result arrives as args when a step declares none.
  'math.square': async (n) => n * n,
  'math.sum': async (values) => values.reduce((a, b) => a + b, 0),

  // CPU-bound: runs in a worker thread, so it never blocks heartbeats or other handlers.
  'hash.iterate': {
    cpu: true,
    handler: ({ text, rounds }) => {
      let digest = text;
      for (let i = 0; i < rounds; i++) digest = createHash('sha256').update(digest).digest('hex');
      return digest.slice(0, 16);
    },
  },

  // Throw an error named UnrecoverableError to fail at once without retries.
  'order.validate': async ({ qty }) => {
    if (!(qty > 0)) throw Object.assign(new Error(`bad quantity ${qty}`), { name: 'UnrecoverableError' });
    return { ok: true };
  },
};
