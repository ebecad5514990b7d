// examples/node's one line (setupFiles: ['dblease/vitest']), timed.
import { createRequire } from 'node:module';
import { record } from './times.mjs';

const require = createRequire(import.meta.url);
const runner = require('../../bindings/node/lib/runner.cjs');

const t0 = performance.now();
const handle = await runner.acquire(process.env);
record('dblease', performance.now() - t0);
afterAll(() => handle.release());
