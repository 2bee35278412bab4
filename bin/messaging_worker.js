#!/usr/bin/env node
// Entry point of `messaging_worker`: runs the TypeScript sources (and a TypeScript handlers module, if
// given one) through tsx's loader.
import { register } from 'tsx/esm/api';

register();
await import('../src/worker/main.ts');
