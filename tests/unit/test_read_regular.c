/* util_read_regular (daemon/base/util.c): what sql_dir reading accepts.
 * Regular files whole; never blocks on, or reads without end from, what is
 * not one; every refusal says why. */
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

#include "util.h"

static char dir[] = "/tmp/dblease-read-XXXXXX";
static int dfd = -1;

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    dfd = open(dir, O_RDONLY | O_DIRECTORY);
    return dfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    close(dfd);
    return util_rm_rf(dir);
}

static void put(const char *name, const char *data, size_t len)
{
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* Refused with -expect_errno and a message containing want. */
static void refused(const char *name, size_t max, int expect_errno, const char *want)
{
    char *text = NULL, err[256] = "";
    assert_int_equal(util_read_regular(dfd, name, max, &text, NULL, err, sizeof err),
                     -expect_errno);
    assert_null(text);
    if (!strstr(err, want))
        fail_msg("%s: \"%s\" lacks \"%s\"", name, err, want);
}

static void a_regular_file_is_read_whole(void **state)
{
    (void)state;
    put("a.sql", "CREATE TABLE t (x int);\n", 24);
    char *text = NULL, err[256];
    size_t len = 0;
    assert_int_equal(util_read_regular(dfd, "a.sql", 1024, &text, &len, err, sizeof err), 0);
    assert_int_equal(len, 24);
    assert_string_equal(text, "CREATE TABLE t (x int);\n");
    free(text);
    put("empty.sql", "", 0);
    assert_int_equal(util_read_regular(dfd, "empty.sql", 1024, &text, &len, err, sizeof err), 0);
    assert_int_equal(len, 0);
    assert_string_equal(text, "");
    free(text);
}

static void links_fifos_and_devices_are_refused_without_blocking(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/fifo.sql", dir);
    assert_int_equal(mkfifo(path, 0600), 0); /* no writer: a blocking open would hang */
    refused("fifo.sql", 1024, EINVAL, "is a FIFO");
    assert_int_equal(symlinkat("/dev/zero", dfd, "zero.sql"), 0);
    refused("zero.sql", 1024, ELOOP, "symbolic link");
    assert_int_equal(symlinkat("/nonexistent", dfd, "dangling.sql"), 0);
    refused("dangling.sql", 1024, ELOOP, "symbolic link");
    refused("missing.sql", 1024, ENOENT, "No such file");
    refused(".", 1024, EINVAL, "is a directory");
    char *text = NULL, err[256] = "";
    assert_int_equal(util_read_regular(AT_FDCWD, "/dev/null", 1024, &text, NULL, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "character device"));
}

static void too_large_or_binary_is_refused(void **state)
{
    (void)state;
    char big[4096];
    memset(big, 'x', sizeof big);
    put("big.sql", big, sizeof big);
    refused("big.sql", 1024, EFBIG, "over the limit");
    put("nul.sql", "SELECT 1;\0junk", 14);
    refused("nul.sql", 1024, EINVAL, "NUL byte");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_regular_file_is_read_whole),
        cmocka_unit_test(links_fifos_and_devices_are_refused_without_blocking),
        cmocka_unit_test(too_large_or_binary_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
