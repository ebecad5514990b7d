/* The default socket path: one rule shared by daemon, library and CLI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dbl_proto.h"

/* Each test starts from an environment with neither variable set. */
static int clean_env(void **state)
{
    unsetenv("DBLEASE_SOCKET");
    unsetenv("XDG_RUNTIME_DIR");
    (void)state;
    return 0;
}

static void test_default_socket_path_from_dblease_socket(void **state)
{
    char buf[256];

    setenv("DBLEASE_SOCKET", "/srv/ci/dblease.sock", 1);
    setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    assert_string_equal(dbl_default_socket_path(buf, sizeof(buf), 1000), "/srv/ci/dblease.sock");
    (void)state;
}

static void test_default_socket_path_under_xdg_runtime_dir(void **state)
{
    char buf[256];

    setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
    assert_string_equal(dbl_default_socket_path(buf, sizeof(buf), 1000),
                        "/run/user/1000/dblease/dblease.sock");
    (void)state;
}

static void test_default_socket_path_for_root(void **state)
{
    char buf[256];

    assert_string_equal(dbl_default_socket_path(buf, sizeof(buf), 0), "/run/dblease/dblease.sock");
    (void)state;
}

static void test_default_socket_path_for_user_without_xdg(void **state)
{
    char buf[256];

    assert_string_equal(dbl_default_socket_path(buf, sizeof(buf), 1234),
                        "/tmp/dblease-1234/dblease.sock");
    (void)state;
}

static void test_default_socket_path_ignores_empty_variables(void **state)
{
    char buf[256];

    setenv("DBLEASE_SOCKET", "", 1);
    setenv("XDG_RUNTIME_DIR", "", 1);
    assert_string_equal(dbl_default_socket_path(buf, sizeof(buf), 1234),
                        "/tmp/dblease-1234/dblease.sock");
    (void)state;
}

static void test_default_socket_path_ignores_relative_xdg_runtime_dir(void **state)
{
    char buf[256];

    setenv("XDG_RUNTIME_DIR", "run/user", 1);
    assert_string_equal(dbl_default_socket_path(buf, sizeof(buf), 0), "/run/dblease/dblease.sock");
    (void)state;
}

static void test_default_socket_path_too_long_for_buffer(void **state)
{
    char buf[16];

    memset(buf, 'x', sizeof(buf));
    assert_null(dbl_default_socket_path(buf, sizeof(buf), 1234));
    assert_string_equal(buf, ""); /* never a truncated path */
    (void)state;
}

static void test_default_socket_path_exact_fit(void **state)
{
    const char *want = "/run/dblease/dblease.sock";
    char buf[26];

    assert_int_equal(strlen(want) + 1, sizeof(buf));
    assert_string_equal(dbl_default_socket_path(buf, sizeof(buf), 0), want);
    assert_null(dbl_default_socket_path(buf, sizeof(buf) - 1, 0));
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, clean_env, clean_env)
        T(test_default_socket_path_from_dblease_socket),
        T(test_default_socket_path_under_xdg_runtime_dir),
        T(test_default_socket_path_for_root),
        T(test_default_socket_path_for_user_without_xdg),
        T(test_default_socket_path_ignores_empty_variables),
        T(test_default_socket_path_ignores_relative_xdg_runtime_dir),
        T(test_default_socket_path_too_long_for_buffer),
        T(test_default_socket_path_exact_fit),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
