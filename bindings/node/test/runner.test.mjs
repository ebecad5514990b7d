// The logic dblease/vitest and dblease/jest share, without a test runner.
// (Jest itself is not installed for these tests; Vitest runs for real in
// examples/node.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import runner from '../lib/runner.cjs';
import { status } from '../index.mjs';

async function live(id) {
  return (await status()).leases.some((l) => l.id === id);
}

test('file scope: DATABASE_URL and REDIS_URL set, released after', async () => {
  const env = { DBLEASE_REDIS: '1' };
  const h = await runner.acquire(env);
  assert.match(env.DATABASE_URL, /^postgresql:\/\//);
  assert.match(env.REDIS_URL, /^redis:\/\//);
  assert.equal(h.leases.length, 2);
  for (const l of h.leases) assert.ok(await live(l.id));
  await h.release();
  for (const l of h.leases) assert.ok(!(await live(l.id)), `${l.kind} lease released`);
  assert.equal(env.DATABASE_URL, undefined);
});

test('worker scope: one database per worker id, reused by the next file, released by teardown', async () => {
  const env = { DBLEASE_SCOPE: 'worker', VITEST_POOL_ID: `t${process.pid}` };
  const first = await runner.acquire({ ...env });
  const again = await runner.acquire({ ...env });
  assert.equal(again.leases[0].id, first.leases[0].id, 'same worker, same database');
  const other = await runner.acquire({ ...env, VITEST_POOL_ID: `u${process.pid}` });
  assert.notEqual(other.leases[0].id, first.leases[0].id);
  assert.ok(fs.existsSync(runner.stateFile(runner.runId(), env.VITEST_POOL_ID)));
  await runner.releaseWorkers(runner.runId());
  assert.ok(!(await live(first.leases[0].id)));
  assert.ok(!(await live(other.leases[0].id)));
});

test('bad settings say what to do', () => {
  assert.throws(() => runner.options({ DBLEASE_SCOPE: 'test' }), /"file".*"worker"/);
  assert.throws(() => runner.options({ DBLEASE_TTL: 'soon' }), /whole number/);
});

test('file scope: when one lease fails, the other is given back', async () => {
  const before = (await status()).leases.length;
  await assert.rejects(runner.acquire({ DBLEASE_REDIS: '1', DBLEASE_TEMPLATE: 'no-such-template' }), { code: 'unknown_template' });
  assert.equal((await status()).leases.length, before, 'the redis lease was released');
});
