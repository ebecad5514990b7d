import os
import subprocess
import sys
import uuid

import pytest

import dblease
from dblease import Client

MIGRATE = r"""
import subprocess, sys, dblease
name, mdir, log = sys.argv[1:4]
def migrate(url):
    with open(log, "a") as f:
        f.write("migrated\n")
    subprocess.run(["psql", url, "-Xq", "-v", "ON_ERROR_STOP=1", "-f", mdir + "/001.sql"], check=True)
dblease.template(name, dir=mdir, migrate=migrate)
"""


def _migrations(tmp_path):
    d = tmp_path / "migrations"
    d.mkdir()
    (d / "001.sql").write_text("CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL);")
    return d


def test_migrations_run_once_across_processes(tmp_path, sql):
    name = f"py_{uuid.uuid4().hex[:12]}"
    mdir = _migrations(tmp_path)
    log = tmp_path / "log"
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, name, str(mdir), str(log)]) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    assert log.read_text() == "migrated\n"
    with Client() as c:
        lease = c.lease(template=name, wait=30000)
        assert sql(lease.url, "SELECT count(*) FROM users") == "0"


def test_failed_migration_is_abandoned_and_the_next_caller_migrates(tmp_path, sql):
    name = f"py_{uuid.uuid4().hex[:12]}"
    mdir = _migrations(tmp_path)

    def broken(url):
        raise RuntimeError("alembic said no")

    with pytest.raises(RuntimeError, match="alembic said no"):
        dblease.template(name, dir=str(mdir), migrate=broken)
    ran = []

    def good(url):
        ran.append(url)
        sql(url, (mdir / "001.sql").read_text())

    assert dblease.template(name, dir=str(mdir), migrate=good) == name
    assert len(ran) == 1
    assert dblease.template(name, dir=str(mdir), migrate=good) == name  # cached: no second ensure
    assert len(ran) == 1
    with Client() as c:
        lease = c.lease(template=name, wait=30000)
        assert sql(lease.url, "SELECT count(*) FROM pg_tables WHERE tablename = 'users'") == "1"
