// examples/node's eight test files, run by examples/node's own Vitest, with
// one of two per-file setups (BENCH_APPROACH):
//   dblease         what examples/node does (setupFiles: ['dblease/vitest']),
//                   timed: a PostgreSQL clone of the migrated template and a
//                   Redis database, leased per file
//   testcontainers  what the Testcontainers tutorials do: a PostgreSQL and a
//                   Redis container started per file, migrations run into it
// No imports: Vite resolves this file from bench/testcontainers, which has
// no vitest of its own (the suite must use examples/node's).
const here = new URL('.', import.meta.url).pathname;
const tc = process.env.BENCH_APPROACH === 'testcontainers';
// As examples/node/vitest.config.js: the template its global setup builds.
process.env.DBLEASE_TEMPLATE ??= 'example_users';

export default {
  root: `${here}../../examples/node`,
  test: {
    include: ['test/users-*.test.js'],
    globals: true, // afterAll in the setup files below
    setupFiles: [tc ? `${here}tc-setup.mjs` : `${here}dblease-setup.mjs`],
    globalSetup: tc ? [] : [`${here}../../examples/node/test/global-setup.js`],
    fileParallelism: true,
    maxWorkers: 4,
    minWorkers: 1,
    testTimeout: 120000,
    hookTimeout: 180000,
  },
};
