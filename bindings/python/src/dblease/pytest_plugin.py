"""pytest plugin (entry point pytest11 = dblease): isolated databases as fixtures.

    def test_signup(dblease_url): ...          # a fresh PostgreSQL database per test
    def test_report(dblease_worker_url): ...   # one per xdist worker, for the whole session
    def test_cache(dblease_redis_url): ...     # a fresh Redis database per test

Each pytest process (each xdist worker) keeps one connection to dbleased; its
leases are attached to it, so a worker that dies leaks nothing. To lease from
a migrated template, pass --dblease-template NAME or override the
session fixture `dblease_template` in conftest.py:

    @pytest.fixture(scope="session")
    def dblease_template():
        return dblease.template("app", dir="migrations", migrate=upgrade)
"""
import os
import warnings

import pytest

from .client import Client, DbleaseError
from .paths import default_socket_path

DEFAULT_WAIT_MS = 60000


def pytest_addoption(parser):
    g = parser.getgroup("dblease", "isolated databases from dbleased")
    g.addoption("--dblease-template", metavar="NAME", default=None,
                help="template that dblease_url and dblease_worker_url lease from "
                     "(default: $DBLEASE_TEMPLATE, else the empty built-in one)")
    g.addoption("--dblease-socket", metavar="PATH", default=None,
                help="dbleased's socket (default: $DBLEASE_SOCKET, $XDG_RUNTIME_DIR/dblease/dblease.sock, ...)")
    g.addoption("--dblease-wait", metavar="MS", type=int, default=DEFAULT_WAIT_MS,
                help=f"how long a lease may queue for a ready database (default {DEFAULT_WAIT_MS})")


def _worker_name():
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def dblease_client(request):
    """This process's connection to dbleased; closing it ends its leases."""
    path = request.config.getoption("dblease_socket") or default_socket_path()
    try:
        c = Client(socket_path=path, client_name=f"pytest {_worker_name()} pid {os.getpid()}")
    except DbleaseError as e:
        pytest.fail(f"dblease: {e.message}", pytrace=False)
    yield c
    c.close()


@pytest.fixture(scope="session")
def dblease_template(request):
    """Template name for PostgreSQL leases; override it to run migrations first."""
    return request.config.getoption("dblease_template") or os.environ.get("DBLEASE_TEMPLATE") or None


def _lease(request, client, kind, template=None, ttl=None):
    try:
        return client.lease(kind=kind, template=template, ttl=ttl, wait=request.config.getoption("dblease_wait"))
    except DbleaseError as e:
        hint = " (raise the pool's max_total, or --dblease-wait)" if e.retryable else ""
        pytest.fail(f"dblease: could not lease a {kind} database: {e.message}{hint}", pytrace=False)


def _release(client, lease):
    try:
        client.release(lease.id)
    except DbleaseError as e:
        if e.code != "not_found":  # not_found: its TTL ended it already; nothing leaks
            raise
        warnings.warn(f"dblease: lease {lease.id} had already ended (TTL?) before the test finished")


@pytest.fixture
def dblease_lease(request, dblease_client, dblease_template):
    """A PostgreSQL lease of its own for this test (id, url, host, port, dbname, user, password)."""
    lease = _lease(request, dblease_client, "postgres", dblease_template)
    yield lease
    _release(dblease_client, lease)


@pytest.fixture
def dblease_url(dblease_lease):
    """URL of a fresh PostgreSQL database for this test only."""
    return dblease_lease.url


@pytest.fixture(scope="session")
def dblease_worker_lease(request, dblease_client, dblease_template):
    """One PostgreSQL lease per xdist worker (per pytest process), for the session."""
    # The session may outlast the default TTL (15 min); the lease still ends
    # with this process's connection.
    ttl = dblease_client.defaults.get("max_ttl_s")
    lease = _lease(request, dblease_client, "postgres", dblease_template, ttl=ttl)
    yield lease
    _release(dblease_client, lease)


@pytest.fixture(scope="session")
def dblease_worker_url(dblease_worker_lease):
    """URL of this worker's database: shared by the tests this worker runs, no others."""
    return dblease_worker_lease.url


@pytest.fixture
def dblease_redis_lease(request, dblease_client):
    lease = _lease(request, dblease_client, "redis")
    yield lease
    _release(dblease_client, lease)


@pytest.fixture
def dblease_redis_url(dblease_redis_lease):
    """URL of a fresh Redis database for this test only."""
    return dblease_redis_lease.url
