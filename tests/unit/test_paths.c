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

/* The state dir: beside the socket, except beside the /tmp fallback
 * socket (disk on Debian), where a tmpfs with room is preferred. */
static void test_default_state_dir_of_the_tmp_fallback_is_on_tmpfs(void **state)
{
    char buf[256];

    assert_string_equal(
        dbl_default_state_dir(buf, sizeof(buf), "/tmp/dblease-1234/dblease.sock", 1234, "/dev/shm"),
        "/dev/shm/dblease-1234/state");
    (void)state;
}

static void test_default_state_dir_stays_in_tmp_without_a_tmpfs(void **state)
{
    char buf[256];

    assert_string_equal(
        dbl_default_state_dir(buf, sizeof(buf), "/tmp/dblease-1234/dblease.sock", 1234, NULL),
        "/tmp/dblease-1234/state");
    (void)state;
}

static void test_default_state_dir_is_beside_any_other_socket(void **state)
{
    char buf[256];

    assert_string_equal(dbl_default_state_dir(buf, sizeof(buf),
                                              "/run/user/1000/dblease/dblease.sock", 1000,
                                              "/dev/shm"),
                        "/run/user/1000/dblease/state");
    assert_string_equal(
        dbl_default_state_dir(buf, sizeof(buf), "/run/dblease/dblease.sock", 0, "/dev/shm"),
        "/run/dblease/state");
    /* Another user's fallback path is a path like any other. */
    assert_string_equal(
        dbl_default_state_dir(buf, sizeof(buf), "/tmp/dblease-1/dblease.sock", 1234, "/dev/shm"),
        "/tmp/dblease-1/state");
    assert_string_equal(dbl_default_state_dir(buf, sizeof(buf), "ci.sock", 1234, "/dev/shm"),
                        "./state");
    (void)state;
}

static void test_default_state_dir_too_long_for_buffer(void **state)
{
    char buf[12];

    assert_null(dbl_default_state_dir(buf, sizeof(buf), "/tmp/dblease-1234/dblease.sock", 1234,
                                      "/dev/shm"));
    assert_string_equal(buf, "");
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
        T(test_default_state_dir_of_the_tmp_fallback_is_on_tmpfs),
        T(test_default_state_dir_stays_in_tmp_without_a_tmpfs),
        T(test_default_state_dir_is_beside_any_other_socket),
        T(test_default_state_dir_too_long_for_buffer),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
