#!/usr/bin/env -S node --no-memory-reducer
// Entry point of `messaging_server`: runs the TypeScript sources through tsx's loader (no build step).
// --no-memory-reducer (a V8 flag, so it cannot come from NODE_OPTIONS or be set from here): after half a
// minute without traffic V8 would shrink the heap's limits, and the next burst then ran ~60% more CPU per
// message in back-to-back major GCs until they grew again. Every launcher (this line, `npm start`, the
// Dockerfile, the benchmark) passes it; docs/operations.md, "Performance issues", says why.
import { register } from 'tsx/esm/api';

register();
await import('../src/server/main.ts');
