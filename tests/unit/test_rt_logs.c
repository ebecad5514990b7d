/* A dead server's last words (daemon/runtime/rt_logs.c): the lines that
 * explain a death, picked from the end of its log, for PostgreSQL and for
 * Redis; and nothing from a log that explains nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rt_logs.h"
#include "util.h"

static char dir[] = "/tmp/dblease-rtlogs-XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return util_rm_rf(dir);
}

/* dir/server.log holds text; its evidence into out. */
static void evidence_of(const char *text, char *out, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/server.log", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    rt_log_evidence(dir, out, len);
}

static void test_postgres_panic_and_full_disk(void **state)
{
    (void)state;
    char out[512];
    evidence_of("2026-11-30 05:00:00 UTC [42] LOG:  checkpoint starting\n"
                "2026-11-30 05:00:01 UTC [42] PANIC:  could not write to file \"pg_wal/x\": No "
                "space left on device\n"
                "2026-11-30 05:00:01 UTC [40] LOG:  server process was terminated\n",
                out, sizeof out);
    assert_non_null(strstr(out, "the disk is full (ENOSPC)"));
    assert_non_null(strstr(out, "PANIC:  could not write"));
}

/* The crash report's first line, not the register and stack dump after it. */
static void test_redis_crash_report_gives_its_first_line(void **state)
{
    (void)state;
    char out[512];
    evidence_of("8678:C 30 Nov 2026 05:54:47.082 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo\n"
                "8678:M 30 Nov 2026 05:54:47.083 # WARNING Memory overcommit must be enabled!\n"
                "\n\n=== REDIS BUG REPORT START: Cut & paste starting from here ===\n"
                "8678:M 30 Nov 2026 05:54:47.576 # Redis 7.0.15 crashed by signal: 11, si_code: 0\n"
                "8678:M 30 Nov 2026 05:54:47.576 # Accessing address: 0x21e0\n"
                "8678:M 30 Nov 2026 05:54:47.577 # (00007ffe59f25dff) -> 000000000000000c\n"
                "=== REDIS BUG REPORT END. Make sure to include from START to END. ===\n",
                out, sizeof out);
    assert_string_equal(out, "Redis 7.0.15 crashed by signal: 11, si_code: 0");
}

static void test_redis_out_of_memory(void **state)
{
    (void)state;
    char out[512];
    evidence_of("77:M 30 Nov 2026 06:00:00.000 * Ready to accept connections\n"
                "77:M 30 Nov 2026 06:00:09.000 # Out Of Memory allocating 1048576 bytes!\n",
                out, sizeof out);
    assert_string_equal(out, "Out Of Memory allocating 1048576 bytes!");
}

/* Start-up warnings, notices, and text that only looks like Redis's: none
 * of them explains a death. */
static void test_nothing_telling_gives_nothing(void **state)
{
    (void)state;
    char out[512] = "x";
    evidence_of("77:M 30 Nov 2026 06:00:00.000 # WARNING Memory overcommit must be enabled!\n"
                "77:M 30 Nov 2026 06:00:00.000 * Ready to accept connections\n"
                "2026-11-30 06:00:00 UTC [9] LOG:  note # crashed by signal here\n",
                out, sizeof out);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_postgres_panic_and_full_disk),
        cmocka_unit_test(test_redis_crash_report_gives_its_first_line),
        cmocka_unit_test(test_redis_out_of_memory),
        cmocka_unit_test(test_nothing_telling_gives_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
