"""Everything the example needs from dblease: migrate once (across all xdist
workers), then the plugin's fixtures give each test its own databases."""
import pathlib

import psycopg2
import pytest
import redis

import dblease
from app import Users

MIGRATIONS = pathlib.Path(__file__).parent / "migrations"


def migrate(url):
    # Stands in for `alembic upgrade head`; must close its connection.
    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            for f in sorted(MIGRATIONS.glob("*.sql")):
                cur.execute(f.read_text())
    finally:
        conn.close()


@pytest.fixture(scope="session")
def dblease_template():
    return dblease.template("example_users", dir=MIGRATIONS, migrate=migrate)


@pytest.fixture
def users(dblease_url, dblease_redis_url):
    pg = psycopg2.connect(dblease_url)
    cache = redis.Redis.from_url(dblease_redis_url)
    yield Users(pg, cache)
    pg.close()   # before the fixture releases the lease
    cache.close()
