// One thread of a worker's CPU pool (see thread-pool.ts). Plain JavaScript so it starts without a
// loader; it registers tsx itself so the handlers module may be TypeScript. Runs one task at a time.
import { parentPort, workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const mod = await import(workerData.module);
const handlers = mod.default ?? mod.handlers ?? {};
const running = new Map();

function describe(err) {
  const e = err instanceof Error ? err : new Error(String(err));
  const out = { name: e.name || 'Error', message: String(e.message) };
  if (e.stack) out.stack = e.stack;
  if (e.name === 'UnrecoverableError' || err?.unrecoverable === true) out.unrecoverable = true;
  if (e.name === 'RetryLaterError' && typeof err?.delayMs === 'number') out.retry_in_ms = err.delayMs;
  return out;
}

parentPort.on('message', async (msg) => {
  if (msg.type === 'abort') {
    const reason = Object.assign(new Error(msg.reason.message), { name: msg.reason.name });
    running.get(msg.id)?.abort(reason);
    return;
  }
  if (msg.type !== 'run') return;
  const entry = handlers[msg.name];
  const fn = typeof entry === 'function' ? entry : entry?.handler;
  const ac = new AbortController();
  running.set(msg.id, ac);
  const ctx = {
    id: msg.task.id,
    name: msg.task.name,
    queue: msg.task.queue,
    attempt: msg.task.attempts,
    signal: ac.signal,
    previous: msg.task.previous,
    task: msg.task,
    traceparent: msg.task.traceparent,
    progress(value, message) {
      parentPort.postMessage({ type: 'progress', id: msg.id, value, message });
    },
  };
  try {
    if (typeof fn !== 'function') throw new Error(`no handler "${msg.name}" in ${workerData.module}`);
    const result = await fn(msg.args, ctx);
    parentPort.postMessage({ type: 'done', id: msg.id, ok: true, result });
  } catch (err) {
    parentPort.postMessage({ type: 'done', id: msg.id, ok: false, error: describe(err) });
  } finally {
    running.delete(msg.id);
  }
});
parentPort.postMessage({ type: 'ready' });
