// Runs once per `vitest run`, in the main process: build the template with
// our migrations (only once across every worker and run, keyed on a hash of
// migrations/), and release per-worker databases at the end.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { template, endPool } from 'dblease';
import { teardown as releaseWorkers } from 'dblease/vitest/global';

const dir = new URL('../migrations', import.meta.url).pathname;

async function migrate(url) {
  const db = new pg.Pool({ connectionString: url, max: 1 });
  try {
    for (const f of readdirSync(dir).sort()) await db.query(readFileSync(join(dir, f), 'utf8'));
  } finally {
    await endPool(db); // the template is frozen next: no session may linger
  }
}

export async function setup() {
  await template(process.env.DBLEASE_TEMPLATE, { dir }, migrate);
}

export async function teardown() {
  await releaseWorkers();
}
