/* The daemon's log lines (daemon/base/log.c): logfmt on stderr, and when
 * stderr is the journal's stream ($JOURNAL_STREAM names it) each line
 * starts with sd-daemon's <N> priority, so journald files an error as an
 * error and not everything at one priority. */
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

#include "log.h"

/* Run fn with stderr sent to a temp file (named as the journal's stream
 * when as_journal), and return what it wrote. */
static char *capture(void (*fn)(void), int as_journal)
{
    static char out[4096];
    char path[] = "/tmp/dblease-test-log.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    struct stat st;
    assert_int_equal(fstat(2, &st), 0);
    char js[64];
    /* another file's dev:ino when not as_journal: stderr is not the journal */
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (as_journal ? 0 : 1));
    setenv("JOURNAL_STREAM", js, 1);
    log_detect_journal();
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, out, sizeof out - 1, 0);
    close(fd);
    unsetenv("JOURNAL_STREAM");
    log_detect_journal();
    out[n > 0 ? n : 0] = '\0';
    return out;
}

static void four_levels(void)
{
    log_set_level(LOG_DEBUG);
    log_debug("t", "d");
    log_info("t", "i");
    log_warn("t", "w");
    log_error("t", "e");
}

static void journal_lines_carry_their_priority(void **state)
{
    (void)state;
    char *out = capture(four_levels, 1);
    char *lines[4];
    int n = 0;
    for (char *save, *l = strtok_r(out, "\n", &save); l && n < 4; l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    assert_int_equal(n, 4);
    assert_true(strncmp(lines[0], "<7>ts=", 6) == 0);
    assert_true(strncmp(lines[1], "<6>ts=", 6) == 0);
    assert_true(strncmp(lines[2], "<4>ts=", 6) == 0);
    assert_true(strncmp(lines[3], "<3>ts=", 6) == 0);
    assert_non_null(strstr(lines[3], "level=error comp=t msg=\"e\""));
}

static void a_file_or_terminal_gets_plain_logfmt(void **state)
{
    (void)state;
    char *out = capture(four_levels, 0);
    assert_true(strncmp(out, "ts=", 3) == 0);
    assert_null(strstr(out, "<3>"));
}

static void hostile(void)
{
    log_info("t", "client \033[2J\a \"q\"");
}

static void control_characters_are_escaped(void **state)
{
    (void)state;
    char *out = capture(hostile, 0);
    assert_null(strchr(out, '\033'));
    assert_null(strchr(out, '\a'));
    assert_non_null(strstr(out, "msg=\"client \\x1b[2J\\x07 \\\"q\\\"\"\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(journal_lines_carry_their_priority),
        cmocka_unit_test(a_file_or_terminal_gets_plain_logfmt),
        cmocka_unit_test(control_characters_are_escaped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
