// Vitest setupFiles entry: `setupFiles: ['dblease/vitest']` in vitest.config.
// Runs before each test file: DATABASE_URL (and REDIS_URL with
// DBLEASE_REDIS=1) is set before the file's own imports run, and the
// file's databases are released after its last test (afterAll).
// DBLEASE_SCOPE=worker shares one database per worker (VITEST_POOL_ID).
import { afterAll } from 'vitest';
import runner from './lib/runner.cjs';

const handle = await runner.acquire(process.env);
afterAll(() => handle.release());
