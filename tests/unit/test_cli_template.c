/* The dblease CLI's template commands, `run` with a schema lease and the
 * TEMPLATES part of `status`, against the scripted fake daemon
 * (fake_daemon.h). The CLI binary comes from $DBLEASE. What each command
 * prints goes to files in the fake's directory. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "fake_daemon.h"

#define MIGRATE_JSON                                                                               \
    "{\"name\":\"app\",\"hash\":\"abc123\",\"state\":\"migrate\","                                 \
    "\"url\":\"postgresql://dbl_o_app:pw@127.0.0.1:5433/dbl_t_app_1\","                            \
    "\"host\":\"127.0.0.1\",\"port\":5433,\"dbname\":\"dbl_t_app_1\","                             \
    "\"user\":\"dbl_o_app\",\"password\":\"pw\"}"

/* ---- plumbing ------------------------------------------------------------- */

static int64_t srv_expect_ensure(int fd)
{
    srv_hello_from(fd, NULL);
    return srv_expect(fd, "template.ensure", NULL);
}

static void srv_finalize(int fd, bool ok)
{
    json_object *req;
    int64_t id = srv_expect(fd, "template.finalize", &req);

    SRV_CHECK(json_object_get_boolean(json_object_object_get(req, "ok")) == ok);
    json_object_put(req);
    srv_send(fd,
             "{\"id\":%lld,\"ok\":true,\"template\":{\"name\":\"app\",\"hash\":\"abc123\","
             "\"state\":\"%s\"}}",
             (long long)id, ok ? "ready" : "abandoned");
}

/* ---- template migrate ------------------------------------------------------ */

static void serve_ready(int fd)
{
    int64_t id = srv_expect_ensure(fd);

    srv_send(fd,
             "{\"id\":%lld,\"ok\":true,\"template\":{\"name\":\"app\",\"hash\":\"abc123\","
             "\"state\":\"ready\"}}",
             (long long)id);
    srv_drain(fd);
}

static void test_migrate_of_a_ready_template_runs_nothing(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_ready);
    assert_int_equal(run_cli(&f, &o, "template", "migrate", "app", "--hash", "abc123", "--", "sh",
                             "-c", "echo ran", NULL),
                     0);
    assert_string_equal(o.out, "");
    assert_non_null(strstr(o.err, "template app (abc123) is ready"));
    fake_finish(&f);
}

static void serve_migrate(int fd)
{
    int64_t id = srv_expect_ensure(fd);

    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"template\":" MIGRATE_JSON "}", (long long)id);
    srv_finalize(fd, true);
    srv_drain(fd);
}

static void test_migrate_runs_the_command_on_the_template_database_then_finalizes(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_migrate);
    assert_int_equal(
        run_cli(&f, &o, "template", "migrate", "app", "--hash", "abc123", "--", "sh", "-c",
                "echo \"$DATABASE_URL|$PGHOST|$PGPORT|$PGDATABASE|$PGUSER|$PGPASSWORD\"", NULL),
        0);
    assert_string_equal(o.out, "postgresql://dbl_o_app:pw@127.0.0.1:5433/dbl_t_app_1|127.0.0.1|"
                               "5433|dbl_t_app_1|dbl_o_app|pw\n");
    fake_finish(&f);
}

static void serve_migrate_abandoned(int fd)
{
    int64_t id = srv_expect_ensure(fd);

    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"template\":" MIGRATE_JSON "}", (long long)id);
    srv_finalize(fd, false);
    srv_drain(fd);
}

static void test_failed_migration_is_abandoned_and_passes_its_status_on(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_migrate_abandoned);
    assert_int_equal(run_cli(&f, &o, "template", "migrate", "app", "--hash", "abc123", "--", "sh",
                             "-c", "exit 3", NULL),
                     3);
    assert_non_null(strstr(o.err, "abandoned"));
    fake_finish(&f);
}

static void test_migration_killed_by_a_signal_exits_128_plus_it(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_migrate_abandoned);
    assert_int_equal(run_cli(&f, &o, "template", "migrate", "app", "--hash", "abc123", "--", "sh",
                             "-c", "kill -TERM $$", NULL),
                     143);
    fake_finish(&f);
}

static const char *error_code;

static void serve_ensure_error(int fd)
{
    int64_t id = srv_expect_ensure(fd);

    srv_send(fd,
             "{\"id\":%lld,\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":"
             "\"001_init.sql:3: syntax error\"}}",
             (long long)id, error_code);
    srv_drain(fd);
}

static void test_migrate_errors_map_to_the_documented_exit_codes(void **state)
{
    static const struct {
        const char *code;
        int rc;
    } cases[] = {{"template_failed", 1}, {"timeout", 75}, {"bad_request", 1}};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cli_out_t o;
        fake_t f;

        error_code = cases[i].code;
        fake_start(&f, serve_ensure_error);
        assert_int_equal(
            run_cli(&f, &o, "template", "migrate", "app", "--hash", "abc123", "--", "true", NULL),
            cases[i].rc);
        assert_non_null(strstr(o.err, "001_init.sql:3: syntax error"));
        fake_finish(&f);
    }
}

/* A failed migration as the daemon reports it: well over 127 characters. */
#define LONG_MESSAGE                                                                               \
    "template app: migration 004_add_orders_index.sql, line 2: column \"customer_idd\" does not "  \
    "exist (hint: Perhaps you meant to reference the column \"orders.customer_id\".); fix it and " \
    "the template rebuilds"

static void serve_ensure_long_error(int fd)
{
    int64_t id = srv_expect_ensure(fd);

    srv_error(fd, id, "template_failed", LONG_MESSAGE);
    srv_drain(fd);
}

static void test_migrate_prints_the_daemons_whole_message_and_code(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_ensure_long_error);
    assert_int_equal(
        run_cli(&f, &o, "template", "migrate", "app", "--hash", "abc123", "--", "true", NULL), 1);
    assert_string_equal(o.out, "");
    assert_string_equal(o.err, "dblease: " LONG_MESSAGE " (template_failed)\n");
    fake_finish(&f);
}

static void serve_nothing(int fd)
{
}

static void test_bad_names_and_hashes_are_usage_errors(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_nothing);
    assert_int_equal(
        run_cli(&f, &o, "template", "migrate", "no/slash", "--hash", "abc", "--", "true", NULL), 2);
    assert_int_equal(run_cli(&f, &o, "template", "migrate", "app", "--", "true", NULL), 2);
    assert_int_equal(run_cli(&f, &o, "template", "migrate", "app", "--hash", "abc", NULL), 2);
    assert_int_equal(run_cli(&f, &o, "template", "ensure", "app", "--hash", "a b", NULL), 2);
    /* the fake is still waiting for a connection: give it one */
    assert_int_equal(run_cli(&f, &o, "status", NULL), 1);
    fake_finish(&f);
}

/* ---- template drop ---------------------------------------------------------- */

/* template.drop with the name; a refusal's message reaches the user in the
 * CLI's words. */
static void serve_drop(int fd)
{
    json_object *req, *v;
    int64_t id;

    srv_hello_from(fd, NULL);
    id = srv_expect(fd, "template.drop", &req);
    SRV_CHECK(json_object_object_get_ex(req, "template", &v) &&
              strcmp(json_object_get_string(v), "app") == 0);
    json_object_put(req);
    srv_send(fd, "{\"id\":%lld,\"ok\":true}", (long long)id);
    srv_drain(fd);
}

static void serve_drop_forbidden(int fd)
{
    int64_t id;

    srv_hello_from(fd, NULL);
    id = srv_expect(fd, "template.drop", NULL);
    srv_error(fd, id, "forbidden",
              "template.drop is for dbleased's user and root, and for the creator of a client "
              "template; \"app\" is none of yours");
    srv_drain(fd);
}

static void test_drop_sends_template_drop_and_words_a_refusal_for_the_cli(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_drop);
    assert_int_equal(run_cli(&f, &o, "template", "drop", "app", NULL), 0);
    assert_non_null(strstr(o.err, "template app is dropped"));
    fake_finish(&f);

    fake_start(&f, serve_drop_forbidden);
    assert_int_equal(run_cli(&f, &o, "template", "drop", "app", NULL), 1);
    assert_non_null(strstr(o.err, "`dblease template drop` is for dbleased's user"));
    assert_null(strstr(o.err, "template.drop"));
    fake_finish(&f);

    fake_start(&f, serve_nothing);
    assert_int_equal(run_cli(&f, &o, "template", "drop", NULL), 2);
    assert_int_equal(run_cli(&f, &o, "template", "drop", "no/slash", NULL), 2);
    assert_int_equal(run_cli(&f, &o, "status", NULL), 1);
    fake_finish(&f);
}

/* ---- template ensure -------------------------------------------------------- */

/* ensure asks read-only (claim: false): it must never hold a claim. */
static void serve_missing(int fd)
{
    json_object *req, *claim;
    int64_t id;

    srv_hello_from(fd, NULL);
    id = srv_expect(fd, "template.ensure", &req);
    SRV_CHECK(json_object_object_get_ex(req, "claim", &claim) &&
              !json_object_get_boolean(claim));
    json_object_put(req);
    srv_send(fd,
             "{\"id\":%lld,\"ok\":true,\"template\":{\"name\":\"app\",\"hash\":\"abc123\","
             "\"state\":\"missing\"}}",
             (long long)id);
    srv_drain(fd);
}

/* Read-only against today's daemon (serve_missing) and against one older
 * than claim: false, which hands out the claim anyway: it goes straight
 * back (serve_migrate_abandoned), and the answer is still "missing". */
static void test_ensure_is_read_only_and_fails_when_not_built(void **state)
{
    void (*const serves[])(int) = {serve_missing, serve_migrate_abandoned};
    cli_out_t o;
    fake_t f;

    for (size_t i = 0; i < sizeof(serves) / sizeof(serves[0]); i++) {
        fake_start(&f, serves[i]);
        assert_int_equal(
            run_cli(&f, &o, "template", "ensure", "app", "--hash", "abc123", "--json", NULL), 1);
        assert_string_equal(o.out,
                            "{\"name\":\"app\",\"hash\":\"abc123\",\"state\":\"missing\"}\n");
        assert_non_null(strstr(o.err, "template migrate app --hash abc123"));
        fake_finish(&f);
    }
}

/* ---- run with a schema lease ------------------------------------------------- */

static void serve_schema_lease(int fd)
{
    int64_t id;

    srv_hello_from(fd, NULL);
    id = srv_expect(fd, "lease", NULL);
    srv_send(fd,
             "{\"id\":%lld,\"ok\":true,\"lease\":{\"id\":\"L-2\",\"kind\":\"postgres\","
             "\"url\":\"postgresql://u:p@127.0.0.1:5433/dbl_app_s?options=-csearch_path%%3D"
             "dbl_s_2\",\"host\":\"127.0.0.1\",\"port\":5433,\"dbname\":\"dbl_app_s\","
             "\"schema\":\"dbl_s_2\",\"user\":\"u\",\"password\":\"p\"}}",
             (long long)id);
    id = srv_expect(fd, "release", NULL);
    srv_send(fd, "{\"id\":%lld,\"ok\":true}", (long long)id);
    srv_drain(fd);
}

static void test_run_sets_the_search_path_of_a_schema_lease(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_schema_lease);
    setenv("PGOPTIONS", "-c statement_timeout=5s", 1);
    assert_int_equal(run_cli(&f, &o, "run", "--postgres=app", "--", "sh", "-c",
                             "echo \"$PGOPTIONS|$PGDATABASE\"", NULL),
                     0);
    unsetenv("PGOPTIONS");
    assert_string_equal(o.out, "-c statement_timeout=5s -csearch_path=dbl_s_2|dbl_app_s\n");
    fake_finish(&f);
}

/* ---- status -------------------------------------------------------------------- */

static const char *status_json;

static void serve_status(int fd)
{
    int64_t id;

    srv_hello_from(fd, NULL);
    id = srv_expect(fd, "status", NULL);
    srv_send(fd, "{\"id\":%lld,\"ok\":true,%s}", (long long)id, status_json);
    srv_drain(fd);
}

static void test_status_shows_templates_with_short_hashes_and_errors(void **state)
{
    cli_out_t o;
    fake_t f;

    status_json = "\"daemon\":{\"version\":\"9.9.9\"},\"pools\":[],\"templates\":["
                  "{\"name\":\"default\",\"hash\":\"\",\"state\":\"ready\",\"source\":\"builtin\","
                  "\"isolation\":\"database\",\"dbname\":\"dbl_tpl_default\"},"
                  "{\"kind\":\"redis\",\"name\":\"default\",\"hash\":\"\",\"state\":\"ready\","
                  "\"source\":\"builtin\",\"isolation\":\"instance\",\"dbname\":\"\"},"
                  "{\"name\":\"app\",\"hash\":\"0123456789abcdef0123\",\"state\":\"failed\","
                  "\"source\":\"client\",\"isolation\":\"schema\",\"dbname\":\"dbl_tpl_app_2\","
                  "\"error\":\"002_users.sql:14: syntax error\"}]";
    fake_start(&f, serve_status);
    assert_int_equal(run_cli(&f, &o, "status", NULL), 0);
    /* No "kind" (an older daemon) reads as postgres. */
    assert_non_null(strstr(o.out,
                           "TEMPLATES\nKIND      NAME     HASH          STATE   SOURCE   ISOLATION\n"
                           "postgres  default  -             ready   builtin  database\n"
                           "redis     default  -             ready   builtin  instance\n"
                           "postgres  app      0123456789ab  failed  client   schema\n"
                           "  error: 002_users.sql:14: syntax error\n"));
    assert_true(strstr(o.out, "TEMPLATES") < strstr(o.out, "POOLS"));
    fake_finish(&f);
}

static void test_status_from_an_older_daemon_has_no_templates_section(void **state)
{
    cli_out_t o;
    fake_t f;

    status_json = "\"daemon\":{\"version\":\"0.1.0\"},\"pools\":[]";
    fake_start(&f, serve_status);
    assert_int_equal(run_cli(&f, &o, "status", NULL), 0);
    assert_null(strstr(o.out, "TEMPLATES"));
    assert_non_null(strstr(o.out, "POOLS"));
    fake_finish(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_of_a_ready_template_runs_nothing),
        cmocka_unit_test(test_migrate_runs_the_command_on_the_template_database_then_finalizes),
        cmocka_unit_test(test_failed_migration_is_abandoned_and_passes_its_status_on),
        cmocka_unit_test(test_migration_killed_by_a_signal_exits_128_plus_it),
        cmocka_unit_test(test_migrate_errors_map_to_the_documented_exit_codes),
        cmocka_unit_test(test_migrate_prints_the_daemons_whole_message_and_code),
        cmocka_unit_test(test_bad_names_and_hashes_are_usage_errors),
        cmocka_unit_test(test_drop_sends_template_drop_and_words_a_refusal_for_the_cli),
        cmocka_unit_test(test_ensure_is_read_only_and_fails_when_not_built),
        cmocka_unit_test(test_run_sets_the_search_path_of_a_schema_lease),
        cmocka_unit_test(test_status_shows_templates_with_short_hashes_and_errors),
        cmocka_unit_test(test_status_from_an_older_daemon_has_no_templates_section),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
