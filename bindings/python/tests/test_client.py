import subprocess
import time

import pytest

import dblease
from dblease import Client, DbleaseError


def test_lease_gives_a_working_database_of_its_own(sql):
    with Client() as c:
        a = c.lease(ttl=120)
        b = c.lease(ttl=120)
        assert a.id.startswith("L-") and a.id != b.id
        assert a.kind == "postgres" and a.port > 0 and a.dbname and a.user and a.password
        assert a.url.startswith("postgresql://")
        assert a.password not in repr(a)
        sql(a.url, "CREATE TABLE t (x int)")
        assert sql(b.url, "SELECT count(*) FROM pg_tables WHERE tablename = 't'") == "0"
        c.release(a.id)
        c.release(b, clean=True)


def test_renew_moves_the_expiry():
    with Client() as c:
        lease = c.lease(ttl=60)
        assert c.renew(lease.id, ttl=600) >= lease.expires_at + 500
        c.release(lease.id)


def test_errors_carry_the_daemon_code():
    with Client() as c:
        with pytest.raises(DbleaseError) as e:
            c.lease(template="no_such_template", wait=0)
        assert e.value.code == "unknown_template"
        with pytest.raises(DbleaseError) as e:
            c.release("L-0000000000000000")
        assert e.value.code == "not_found"
        c.status()  # the connection is still usable


def test_unreachable_daemon_says_what_to_do(tmp_path):
    with pytest.raises(DbleaseError) as e:
        Client(socket_path=str(tmp_path / "none.sock"))
    assert e.value.code == "unreachable"
    assert "DBLEASE_SOCKET" in e.value.message


def test_closing_the_client_ends_its_leases(sql):
    c = Client()
    lease = c.lease(ttl=120)
    assert sql(lease.url, "SELECT 1") == "1"
    c.close()
    with Client() as other:  # the daemon ends it when it sees the close
        for _ in range(500):
            ids = [x.get("id") for x in other.status().get("leases", [])]
            if lease.id not in ids:
                break
        assert lease.id not in ids


def test_status_lists_our_lease():
    with Client() as c:
        lease = c.lease(ttl=120)
        s = c.status()
        assert lease.id in [x.get("id") for x in s["leases"]]
        assert "password" not in str(s)


def test_redis_lease():
    with Client() as c:
        lease = c.lease(kind="redis", ttl=60, wait=30000)
        assert lease.url.startswith("redis://") and lease.db is not None
        out = subprocess.run(["redis-cli", "-u", lease.url, "PING"], capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "PONG"


def test_hash_dir_follows_names_and_contents(tmp_path):
    (tmp_path / "001.sql").write_text("CREATE TABLE a (x int);")
    (tmp_path / ".hidden").write_text("ignored")
    h1 = dblease.hash_dir(str(tmp_path))
    assert len(h1) == 64 and h1 == dblease.hash_dir(str(tmp_path))
    (tmp_path / ".hidden").write_text("still ignored")
    assert dblease.hash_dir(str(tmp_path)) == h1
    (tmp_path / "001.sql").write_text("CREATE TABLE a (x bigint);")
    h2 = dblease.hash_dir(str(tmp_path))
    assert h2 != h1
    (tmp_path / "001.sql").rename(tmp_path / "002.sql")
    assert dblease.hash_dir(str(tmp_path)) not in (h1, h2)


def test_hash_dir_known_value(tmp_path):
    # Pinned so that the Go and Node packages can check they agree.
    (tmp_path / "a.sql").write_text("x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.sql").write_text("")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.pyc").write_text("changes with the interpreter")
    assert dblease.hash_dir(str(tmp_path)) == \
        __import__("hashlib").sha256(b"a.sql\0x\0" b"sub/b.sql\0\0").hexdigest()


def test_release_ends_a_session_still_open(sql):
    # A test that forgets a connection must not make its release fail or hang.
    with Client() as c:
        lease = c.lease(ttl=120)
        p = subprocess.Popen(["psql", lease.url, "-XAtq", "-c", "SELECT pg_sleep(60)"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            busy = "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'"
            deadline = time.monotonic() + 20
            while sql(lease.url, busy) != "1":
                assert time.monotonic() < deadline and p.poll() is None, "psql never got in"
            c.release(lease.id)
            assert p.wait(timeout=20) != 0   # ended by the release, not by pg_sleep
        finally:
            if p.poll() is None:
                p.kill()


def test_expiry_arrives_as_an_event():
    with Client() as c:
        lease = c.lease(ttl=1)
        deadline = time.monotonic() + 15
        events = []
        while not events:
            assert time.monotonic() < deadline, "no lease_expired event"
            c.status()  # events are read while waiting for a reply
            events = [e for e in c.events() if e.get("event") == "lease_expired"]
        assert events[0]["lease"] == lease.id
        with pytest.raises(DbleaseError) as e:
            c.release(lease.id)
        assert e.value.code == "not_found"
