import { createStorage } from '../../src/storage/index.ts';
import { runStorageConformance } from './conformance.ts';

runStorageConformance('memory', ({ now }) => createStorage({ engine: 'memory', now }));
