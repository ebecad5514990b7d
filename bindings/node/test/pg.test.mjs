// endPool against real PostgreSQL with the real `pg` (from examples/node,
// where npm ci puts it; skipped when it is not installed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { lease, release, endPool } from '../index.mjs';

const require = createRequire(new URL('../../../examples/node/package.json', import.meta.url));
let pg;
try { pg = require('pg'); } catch { /* not installed */ }
const opts = { skip: pg ? false : 'pg is not installed (npm ci in examples/node)' };

async function busyPool(url, n) {
  const pool = new pg.Pool({ connectionString: url, max: n });
  // n clients at once, so that the pool really opens n connections.
  await Promise.all(Array.from({ length: n }, () => pool.query('select pg_sleep(0.05)')));
  return pool;
}

const open = (pool) => pool._clients.filter((c) => !c.connection.stream.destroyed).length;

test('pool.end() resolves while sockets are still open (the premise of item 4)', opts, async () => {
  const l = await lease();
  const pool = await busyPool(l.url, 3);
  const clients = [...pool._clients];
  await pool.end();
  const stillOpen = clients.filter((c) => !c.connection.stream.destroyed).length;
  assert.ok(stillOpen > 0, 'pg-pool changed: end() now waits for its sockets');
  await Promise.all(clients.map((c) => new Promise((r) => (c.connection.stream.destroyed ? r() : c.connection.stream.once('close', r)))));
  await release(l.id);
});

test('endPool resolves only when every socket is closed; a release after it hurts no one', opts, async () => {
  const l = await lease();
  const pool = await busyPool(l.url, 3);
  const clients = [...pool._clients];
  assert.equal(open(pool), 3);
  const errors = [];
  pool.on('error', (e) => errors.push(e));
  await endPool(pool);
  assert.equal(clients.filter((c) => !c.connection.stream.destroyed).length, 0, 'a socket is still open');
  await release(l.id);
  await endPool(pool); // twice is fine
  assert.deepEqual(errors, []);
});
