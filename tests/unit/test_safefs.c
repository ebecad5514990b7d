/* safefs (daemon/base/safefs.c): file work in directories someone else can
 * write never follows a link planted there, and a directory of ours is
 * accepted only when nobody else could have made or changed it. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "safefs.h"
#include "util.h"

static char dir[32];
static int dfd = -1;
static char path[512], outside[512];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/dblease-safefs-XXXXXX"); /* each test its own */
    if (!mkdtemp(dir))
        return -1;
    dfd = open(dir, O_RDONLY | O_DIRECTORY);
    /* what every planted link points at: must stay as it is */
    snprintf(outside, sizeof outside, "%s/outside", dir);
    if (dfd < 0 || mkdir(outside, 0700) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/outside/secret", dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    return fd < 0 || write(fd, "secret", 6) != 6 || close(fd) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    close(dfd);
    return util_rm_rf(dir);
}

static void secret_unchanged(void)
{
    char buf[16] = "";
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof buf - 1), 6);
    close(fd);
    assert_string_equal(buf, "secret");
}

static void test_rm_rf_removes_links_and_never_follows_them(void **state)
{
    (void)state;
    assert_int_equal(mkdirat(dfd, "tree", 0700), 0);
    assert_int_equal(mkdirat(dfd, "tree/sub", 0700), 0);
    assert_int_equal(symlinkat(outside, dfd, "tree/sub/to-dir"), 0);
    assert_int_equal(symlinkat(path, dfd, "tree/to-file"), 0);
    assert_int_equal(safefs_rm_rf_at(dfd, "tree"), 0);
    assert_int_equal(faccessat(dfd, "tree", F_OK, AT_SYMLINK_NOFOLLOW), -1);
    secret_unchanged();
    assert_int_equal(safefs_rm_rf_at(dfd, "tree"), 0); /* gone already: fine */
    assert_int_equal(safefs_rm_rf_at(dfd, "../x"), -EINVAL);
}

static void test_write_replaces_a_link_instead_of_writing_through_it(void **state)
{
    (void)state;
    assert_int_equal(symlinkat(path, dfd, "pg_hba.conf"), 0);
    assert_int_equal(safefs_write_at(dfd, "pg_hba.conf", "local all all peer\n", 0600,
                                     (uid_t)-1, (gid_t)-1),
                     0);
    secret_unchanged();
    struct stat st;
    assert_int_equal(fstatat(dfd, "pg_hba.conf", &st, AT_SYMLINK_NOFOLLOW), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 19);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_open_dir_refuses_a_link_on_the_way(void **state)
{
    (void)state;
    assert_int_equal(mkdirat(dfd, "a", 0700), 0);
    assert_int_equal(symlinkat(outside, dfd, "a/b"), 0);
    int rc = safefs_open_dir(dir, "a/b"); /* O_DIRECTORY|O_NOFOLLOW on a link */
    assert_true(rc == -ELOOP || rc == -ENOTDIR);
    assert_int_equal(safefs_open_dir(dir, "a/../outside"), -EINVAL);
    int fd = safefs_open_dir(dir, "a");
    assert_true(fd >= 0);
    close(fd);
}

static void test_mkdir_at_makes_it_fresh(void **state)
{
    (void)state;
    assert_int_equal(safefs_mkdir_at(dfd, "fresh", 0711, (uid_t)-1, (gid_t)-1), 0);
    assert_int_equal(safefs_mkdir_at(dfd, "fresh", 0711, (uid_t)-1, (gid_t)-1), -EEXIST);
    struct stat st;
    assert_int_equal(fstatat(dfd, "fresh", &st, 0), 0);
    assert_int_equal(st.st_mode & 0777, 0711);
}

static void test_own_dir_accepts_ours_and_refuses_a_link_or_a_writable_one(void **state)
{
    (void)state;
    char p[600], err[1024];
    snprintf(p, sizeof p, "%s/mine/state", dir);
    assert_int_equal(safefs_own_dir(p, 0711, (gid_t)-1, "state directory", "--state-dir", err,
                                    sizeof err),
                     0);
    snprintf(p, sizeof p, "%s/link", dir);
    assert_int_equal(symlink(outside, p), 0);
    assert_int_equal(safefs_own_dir(p, 0711, (gid_t)-1, "state directory", "--state-dir", err,
                                    sizeof err),
                     -1);
    assert_non_null(strstr(err, "symbolic link"));
    snprintf(p, sizeof p, "%s/open", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    assert_int_equal(chmod(p, 0777), 0);
    assert_int_equal(safefs_own_dir(p, 0711, (gid_t)-1, "socket directory", "--socket", err,
                                    sizeof err),
                     -1);
    assert_non_null(strstr(err, "chmod o-w"));
    /* below it, too: anyone could swap what we would make there */
    snprintf(p, sizeof p, "%s/open/sub", dir);
    assert_int_equal(safefs_own_dir(p, 0711, (gid_t)-1, "socket directory", "--socket", err,
                                    sizeof err),
                     -1);
    assert_non_null(strstr(err, "not sticky"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rm_rf_removes_links_and_never_follows_them, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_replaces_a_link_instead_of_writing_through_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_dir_refuses_a_link_on_the_way, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mkdir_at_makes_it_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_own_dir_accepts_ours_and_refuses_a_link_or_a_writable_one, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
