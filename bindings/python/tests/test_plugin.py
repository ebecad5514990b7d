"""The fixtures, run in an inner pytest (pytester) with xdist, as a user would."""
import pytest



def _write_suite(pytester, n=8):
    pytester.makeconftest("")
    body = ["import os", "import subprocess", "",
            "def q(url, s):",
            "    return subprocess.run(['psql', url, '-XAtq', '-v', 'ON_ERROR_STOP=1', '-c', s],",
            "                          check=True, capture_output=True, text=True).stdout.strip()", ""]
    for i in range(n):
        body += [f"def test_per_test_{i}(dblease_url):",
                 "    q(dblease_url, 'CREATE TABLE only_mine (x int)')", "",
                 f"def test_per_worker_{i}(dblease_worker_url, dblease_worker_lease):",
                 "    assert dblease_worker_lease.ttl_s > 3600  # outlives a long session",
                 "    me = os.environ.get('PYTEST_XDIST_WORKER', 'main')",
                 "    q(dblease_worker_url, f\"CREATE TABLE IF NOT EXISTS w (x text); INSERT INTO w VALUES ('{me}')\")",
                 "    assert q(dblease_worker_url, 'SELECT string_agg(DISTINCT x, \\',\\') FROM w') == me", ""]
    body += ["def test_redis(dblease_redis_url):",
             "    out = subprocess.run(['redis-cli', '-u', dblease_redis_url, 'SET', 'k', '1', 'NX'],",
             "                         capture_output=True, text=True).stdout.strip()",
             "    assert out == 'OK'", ""]
    pytester.makepyfile(test_suite="\n".join(body))


def test_each_test_gets_its_own_database_under_xdist(pytester):
    _write_suite(pytester)
    r = pytester.runpytest_subprocess("-n", "4", "-p", "xdist", "-q")
    r.assert_outcomes(passed=17)


def _one_test_errors_with(pytester, args, expect):
    pytester.makepyfile(test_t="""
        def test_x(dblease_url):
            pass
    """)
    r = pytester.runpytest_subprocess(*args, "-q")
    r.assert_outcomes(errors=1)
    r.stdout.fnmatch_lines([expect])


def test_template_option_leases_from_that_template(pytester):
    _one_test_errors_with(pytester, ["--dblease-template", "no_such_template"], "*unknown_template*")


def test_unreachable_daemon_fails_with_a_hint(pytester):
    _one_test_errors_with(pytester, ["--dblease-socket", "/nonexistent/dblease.sock"], "*DBLEASE_SOCKET*")
