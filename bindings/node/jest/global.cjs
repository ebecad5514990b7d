'use strict';
// Jest globalTeardown entry for DBLEASE_SCOPE=worker: releases the
// per-worker databases when the run ends (without it, their TTL ends them).
const runner = require('../lib/runner.cjs');

module.exports = async function teardown() {
  await runner.releaseWorkers(process.pid);
};
