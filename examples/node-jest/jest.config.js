// The one line is setupFilesAfterEnv: each test file gets its own
// DATABASE_URL (a clone of the template the global setup builds), released
// after the file. globalTeardown ends per-worker leases (DBLEASE_SCOPE=worker).
process.env.DBLEASE_TEMPLATE ??= 'example_users_jest';

module.exports = {
  testEnvironment: 'node',
  setupFilesAfterEnv: ['dblease/jest'],
  globalSetup: './test/global-setup.js',
  globalTeardown: 'dblease/jest/global',
  maxWorkers: 4,
};
