/* The settings every server we run gets (daemon/runtime/pg_settings.c):
 * the same list for the process and docker runtimes, from the config. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "pg_settings.h"

/* The value of setting name in s, or NULL. */
static const char *value_of(const pg_settings_t *s, const char *name)
{
    size_t len = strlen(name);
    for (int k = 0; k < s->n; k++)
        if (strncmp(s->v[k], name, len) == 0 && s->v[k][len] == '=')
            return s->v[k] + len + 1;
    return NULL;
}

static void settings_of(int max_connections, int temp_file_limit_mb, pg_settings_t *s)
{
    static config_t cfg;
    config_defaults(&cfg);
    cfg.postgres.server_max_connections = max_connections;
    cfg.postgres.temp_file_limit_mb = temp_file_limit_mb;
    pg_settings_for(&cfg, s);
}

/* A tenth of max_connections for the daemon's own sessions, 3 to 10. */
static void test_reserved_slots_are_a_tenth_from_3_to_10(void **state)
{
    (void)state;
    const int max[] = {20, 50, 300, 1000}, want[] = {3, 5, 10, 10};
    char expect[8];
    for (size_t k = 0; k < sizeof max / sizeof max[0]; k++) {
        pg_settings_t s;
        settings_of(max[k], 4096, &s);
        snprintf(expect, sizeof expect, "%d", want[k]);
        assert_string_equal(value_of(&s, "superuser_reserved_connections"), expect);
        snprintf(expect, sizeof expect, "%d", max[k]);
        assert_string_equal(value_of(&s, "max_connections"), expect);
    }
}

static void test_temp_file_limit_is_set_unless_minus_one(void **state)
{
    (void)state;
    pg_settings_t s;
    settings_of(300, 1, &s);
    assert_string_equal(value_of(&s, "temp_file_limit"), "1MB");
    settings_of(300, -1, &s);
    assert_null(value_of(&s, "temp_file_limit"));
}

/* What the release and the password promises rest on. */
static void test_statements_are_never_logged_and_titles_are_readable(void **state)
{
    (void)state;
    pg_settings_t s;
    settings_of(300, 4096, &s);
    assert_string_equal(value_of(&s, "log_statement"), "none");
    assert_string_equal(value_of(&s, "log_min_error_statement"), "panic");
    assert_string_equal(value_of(&s, "update_process_title"), "on");
    assert_string_equal(value_of(&s, "cluster_name"), "");
    assert_string_equal(value_of(&s, "authentication_timeout"), PG_AUTH_TIMEOUT);
    assert_string_equal(value_of(&s, "password_encryption"), "scram-sha-256");
    assert_true(s.n <= PG_SETTINGS_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserved_slots_are_a_tenth_from_3_to_10),
        cmocka_unit_test(test_temp_file_limit_is_set_unless_minus_one),
        cmocka_unit_test(test_statements_are_never_logged_and_titles_are_readable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
