'use strict';
// Jest setupFilesAfterEnv entry: `setupFilesAfterEnv: ['dblease/jest']`.
// Each test file gets its own DATABASE_URL (and REDIS_URL with
// DBLEASE_REDIS=1) in a beforeAll that runs before the file's own hooks,
// released in afterAll. Jest cannot await before a file's top level runs,
// so read process.env.DATABASE_URL in beforeAll or in tests, not at import.
// DBLEASE_SCOPE=worker shares one database per worker (JEST_WORKER_ID).
const runner = require('./lib/runner.cjs');

let handle;
beforeAll(async () => {
  handle = await runner.acquire(process.env);
});
afterAll(async () => {
  if (handle) await handle.release();
});
