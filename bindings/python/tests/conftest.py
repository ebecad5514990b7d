"""The package's own tests: they need a running dbleased (DBLEASE_SOCKET) and psql.
tests/integration/test_python.sh starts one and runs them."""
import subprocess

import pytest

pytest_plugins = ["pytester"]


def psql(url, sql):
    """One value from SQL over a lease URL, through psql (the tests stay stdlib-only)."""
    out = subprocess.run(["psql", url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                         check=True, capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


@pytest.fixture
def sql():
    return psql
