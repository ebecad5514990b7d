// The Testcontainers way, per test file: start PostgreSQL and Redis
// containers (in parallel), run the migrations into the new server, export
// the URLs; stop both after the file. Ryuk is off (TESTCONTAINERS_RYUK_DISABLED:
// no registry here to pull it from); afterAll stops what it started.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { Wait } from 'testcontainers';
import { PostgreSqlContainer } from '@testcontainers/postgresql';
import { RedisContainer } from '@testcontainers/redis';
import { record } from './times.mjs';

const migrations = new URL('../../examples/node/migrations', import.meta.url).pathname;
const pgImage = process.env.BENCH_PG_IMAGE || 'localhost/dblease-postgres:15';
const readyLogs = Number(process.env.BENCH_PG_READY_LOGS || (process.env.BENCH_PG_IMAGE ? 2 : 1));
const redisImage = process.env.BENCH_REDIS_IMAGE || 'localhost/dblease-redis:7';

const t0 = performance.now();
const [pgc, rc] = await Promise.all([
  // The official image logs "ready" twice (initdb's temporary server, then
  // the real one; Testcontainers for Java waits for both); the look-alike
  // creates its database in single-user mode and logs it once.
  new PostgreSqlContainer(pgImage)
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, readyLogs))
    .start(),
  new RedisContainer(redisImage).start(),
]);
const db = new pg.Client({ connectionString: pgc.getConnectionUri() });
await db.connect();
for (const f of readdirSync(migrations).sort()) await db.query(readFileSync(join(migrations, f), 'utf8'));
await db.end();
process.env.DATABASE_URL = pgc.getConnectionUri();
process.env.REDIS_URL = rc.getConnectionUrl();
record('testcontainers', performance.now() - t0);

afterAll(async () => {
  await Promise.all([pgc.stop(), rc.stop()]);
});
