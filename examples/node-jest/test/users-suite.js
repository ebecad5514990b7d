// The suite every users-N.test.js runs. The files run in parallel and each
// creates the same user: that only works with a database per file.
const pg = require('pg');
const { endPool } = require('dblease');

function usersSuite(n) {
  let db;
  // dblease/jest's beforeAll has run: DATABASE_URL is this file's database.
  beforeAll(() => {
    db = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 2 });
  });
  // Jest runs afterAll hooks in the order they were declared, so dblease's
  // release would come first: end the pool in afterAll of a describe block,
  // which runs before the file-level hooks.
  describe(`users (file ${n})`, () => {
    afterAll(() => endPool(db));

    test('starts from the migrated, empty template', async () => {
      const { rows } = await db.query('SELECT count(*)::int AS n FROM users');
      expect(rows[0].n).toBe(0);
    });

    test('creates alice, whose email is unique', async () => {
      const ins = 'INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id';
      const { rows } = await db.query(ins, ['alice@example.com', `Alice ${n}`]);
      expect(rows[0].id).toBe(1);
      await expect(db.query(ins, ['alice@example.com', 'again'])).rejects.toMatchObject({ code: '23505' });
    });
  });
}

module.exports = { usersSuite };
