"""The app under test: users in PostgreSQL, looked up through a Redis cache
(the example Testcontainers tutorials use)."""
import json


class DuplicateEmail(Exception):
    pass


class Users:
    def __init__(self, pg, cache, ttl_s=60):
        self.pg = pg          # a psycopg2 connection
        self.cache = cache    # a redis.Redis
        self.ttl_s = ttl_s

    def create(self, email, name):
        import psycopg2.errors
        try:
            with self.pg, self.pg.cursor() as cur:
                cur.execute("INSERT INTO users (email, name) VALUES (%s, %s) RETURNING id", (email, name))
                return cur.fetchone()[0]
        except psycopg2.errors.UniqueViolation:
            raise DuplicateEmail(email) from None

    def get(self, user_id):
        key = f"user:{user_id}"
        hit = self.cache.get(key)
        if hit is not None:
            return json.loads(hit)
        with self.pg, self.pg.cursor() as cur:
            cur.execute("SELECT id, email, name FROM users WHERE id = %s", (user_id,))
            row = cur.fetchone()
        if row is None:
            return None
        user = {"id": row[0], "email": row[1], "name": row[2]}
        self.cache.set(key, json.dumps(user), ex=self.ttl_s)
        return user
