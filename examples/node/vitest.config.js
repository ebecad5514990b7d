import { defineConfig } from 'vitest/config';

// Every database leased for these tests is a clone of this template
// (built by test/global-setup.js). Set here so the workers inherit it.
process.env.DBLEASE_TEMPLATE ??= 'example_users';

export default defineConfig({
  test: {
    // The one line: each test file gets its own DATABASE_URL (and REDIS_URL
    // with DBLEASE_REDIS=1), released after the file.
    setupFiles: ['dblease/vitest'],
    globalSetup: ['./test/global-setup.js'],
    // Files run side by side even on a 2-core CI machine.
    fileParallelism: true,
    maxWorkers: 4,
    minWorkers: 1,
  },
});
