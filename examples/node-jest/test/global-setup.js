// Runs once per `jest` run: build the template from ../node's migrations
// (once across every worker and run, keyed on their hash).
const fs = require('node:fs');
const path = require('node:path');
const pg = require('pg');
const { template, endPool } = require('dblease');

const dir = path.join(__dirname, '../../node/migrations');

async function migrate(url) {
  const db = new pg.Pool({ connectionString: url, max: 1 });
  try {
    for (const f of fs.readdirSync(dir).sort()) await db.query(fs.readFileSync(path.join(dir, f), 'utf8'));
  } finally {
    await endPool(db); // the template is frozen next: no session may linger
  }
}

module.exports = async function setup() {
  await template(process.env.DBLEASE_TEMPLATE, { dir }, migrate);
};
