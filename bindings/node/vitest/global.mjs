// Vitest globalSetup entry for DBLEASE_SCOPE=worker: releases the per-worker
// databases when the run ends (without it, their TTL ends them).
import runner from '../lib/runner.cjs';

export function setup() {}
export async function teardown() {
  await runner.releaseWorkers(process.pid);
}
