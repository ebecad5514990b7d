// What every test file opens, and how it closes it before its database is
// released (dblease/vitest releases it in its own afterAll, after ours).
import pg from 'pg';
import { createClient } from 'redis';
import { afterAll } from 'vitest';
import { endPool } from 'dblease';

export async function open() {
  const db = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 4 });
  const cache = createClient({ url: process.env.REDIS_URL });
  await cache.connect();
  // Per-worker databases are shared by the files a worker runs: start clean.
  if (process.env.DBLEASE_SCOPE === 'worker') {
    await db.query('TRUNCATE users RESTART IDENTITY');
    await cache.flushDb();
  }
  afterAll(async () => {
    await cache.quit();
    // EXAMPLE_NAIVE_END=1 reproduces issue 15 item 4: pool.end() resolves
    // before the sockets close, and the release then kills the sessions.
    if (process.env.EXAMPLE_NAIVE_END === '1') await db.end();
    else await endPool(db);
  });
  return { db, cache };
}
