#!/usr/bin/env node
// The `messaging` command-line client. Registers tsx so the TypeScript sources run as they are.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
