// The app under test: users with a unique email, read through a Redis cache
// (the example the Testcontainers tutorials use).

export async function createUser(db, { email, name }) {
  const { rows } = await db.query(
    'INSERT INTO users (email, name) VALUES ($1, $2) RETURNING id, email, name',
    [email, name],
  );
  return rows[0];
}

// Read-through cache: Redis first, then PostgreSQL (and fill the cache).
export async function getUser(db, cache, id) {
  const key = `user:${id}`;
  const hit = await cache.get(key);
  if (hit) return { ...JSON.parse(hit), cached: true };
  const { rows } = await db.query('SELECT id, email, name FROM users WHERE id = $1', [id]);
  if (rows.length === 0) return null;
  await cache.set(key, JSON.stringify(rows[0]), { EX: 60 });
  return { ...rows[0], cached: false };
}

export async function countUsers(db) {
  const { rows } = await db.query('SELECT count(*)::int AS n FROM users');
  return rows[0].n;
}
