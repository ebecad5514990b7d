/* The dblease CLI against the scripted fake daemon (fake_daemon.h): the
 * words it speaks, the ranges it accepts, and what `run` gives its command
 * and tells its user. The CLI binary comes from $DBLEASE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "fake_daemon.h"

#define REDIS_LEASE_JSON                                                                           \
    "{\"id\":\"L-2\",\"kind\":\"redis\",\"url\":\"redis://default:p@127.0.0.1:6390/0\","           \
    "\"host\":\"127.0.0.1\",\"port\":6390,\"db\":0,\"user\":\"default\",\"password\":\"p\","       \
    "\"expires_at\":1700000000,\"ttl_s\":900,\"detached\":false}"

/* Answers releases until the client hangs up; a release of a lease in
 * `gone` (the daemon ended it) fails the script. */
static void srv_releases(int fd, const char *gone)
{
    json_object *req;

    while ((req = srv_read(fd))) {
        const char *op = srv_str(req, "op");

        if (strcmp(op, "release") == 0) {
            const char *lease = srv_str(req, "lease");

            if (gone && lease && strcmp(lease, gone) == 0)
                srv_fail(SRV_HERE, 0, "release of %s, which the daemon had ended", lease);
            srv_send(fd, "{\"id\":%s,\"ok\":true}", srv_str(req, "id"));
        } else {
            srv_fail(SRV_HERE, 0, "unexpected op %s", op);
        }
        json_object_put(req);
    }
}

/* ---- run: its command's environment ---------------------------------------- */

static void serve_postgres_and_redis(int fd)
{
    srv_hello_from(fd, NULL);
    srv_grant(fd, srv_expect(fd, "lease", NULL));
    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"lease\":" REDIS_LEASE_JSON "}",
             (long long)srv_expect(fd, "lease", NULL));
    srv_releases(fd, NULL);
}

static void test_run_exports_the_ids_of_its_leases(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_postgres_and_redis);
    assert_int_equal(run_cli(&f, &o, "run", "--postgres", "--redis", "--", "sh", "-c",
                             "echo \"$DBLEASE_LEASE_ID|$DBLEASE_REDIS_LEASE_ID\"", NULL),
                     0);
    assert_string_equal(o.out, "L-1|L-2\n");
    fake_finish(&f);
}

static void serve_one_lease(int fd)
{
    srv_hello_from(fd, NULL);
    srv_grant(fd, srv_expect(fd, "lease", NULL));
    srv_releases(fd, NULL);
}

/* Inherited settings that would send libpq elsewhere or make it refuse a
 * server without TLS are cleared; session settings stay. */
static void test_run_clears_libpq_settings_that_would_redirect_or_break_its_connection(void **state)
{
    static const char *const cleared[] = {
        "PGHOSTADDR",       "PGSERVICE",        "PGSERVICEFILE", "PGSSLMODE",
        "PGREQUIRESSL",     "PGSSLNEGOTIATION", "PGSSLCERTMODE", "PGGSSENCMODE",
        "PGCHANNELBINDING", "PGREQUIREAUTH",    "PGREQUIREPEER", "PGTARGETSESSIONATTRS",
    };
    cli_out_t o;
    fake_t f;

    for (size_t i = 0; i < sizeof(cleared) / sizeof(cleared[0]); i++)
        setenv(cleared[i], "require", 1);
    setenv("PGCONNECT_TIMEOUT", "7", 1);
    setenv("PGAPPNAME", "mine", 1);
    fake_start(&f, serve_one_lease);
    assert_int_equal(
        run_cli(&f, &o, "run", "--", "sh", "-c", "env | grep '^PG' | cut -d= -f1 | sort", NULL), 0);
    for (size_t i = 0; i < sizeof(cleared) / sizeof(cleared[0]); i++)
        unsetenv(cleared[i]);
    unsetenv("PGCONNECT_TIMEOUT");
    unsetenv("PGAPPNAME");
    assert_string_equal(o.out, "PGAPPNAME\nPGCONNECT_TIMEOUT\nPGDATABASE\nPGHOST\nPGPASSWORD\n"
                               "PGPORT\nPGUSER\n");
    fake_finish(&f);
}

/* ---- run: lease events while the command runs ------------------------------- */

static const char *event_json;

static void serve_lease_then_event(int fd)
{
    srv_hello_from(fd, NULL);
    srv_grant(fd, srv_expect(fd, "lease", NULL));
    srv_send(fd, "%s", event_json);
    srv_releases(fd, "L-1");
}

/* The command waits (bounded) until dblease has said, on its stderr, that
 * the lease ended: so the message came while the command still ran. */
static void check_event_is_told_at_once(const char *event, const char *says)
{
    char script[512];
    cli_out_t o;
    fake_t f;

    event_json = event;
    fake_start(&f, serve_lease_then_event);
    snprintf(script, sizeof(script),
             "for i in $(seq 200); do grep -q 'L-1.*%s' %s/err && exit 0; sleep 0.05; done; exit 9",
             says, f.dir);
    assert_int_equal(run_cli(&f, &o, "run", "--", "sh", "-c", script, NULL), 0);
    assert_non_null(strstr(o.err, "keeps running"));
    assert_null(strstr(o.err, "could not release"));
    fake_finish(&f);
}

static void test_run_says_at_once_when_the_server_behind_its_lease_went_down(void **state)
{
    check_event_is_told_at_once(
        "{\"event\":\"instance_down\",\"lease\":\"L-1\",\"kind\":\"postgres\"}", "server");
}

static void test_run_says_at_once_when_its_lease_expired(void **state)
{
    check_event_is_told_at_once("{\"event\":\"lease_expired\",\"lease\":\"L-1\"}", "TTL");
}

static void serve_lease_then_hang_up(int fd)
{
    srv_hello_from(fd, NULL);
    srv_grant(fd, srv_expect(fd, "lease", NULL));
}

/* Renewals every 333 ms (--ttl 1) go on after the connection is lost: the
 * loss is said once, not at each of them. */
static void test_run_says_once_that_it_lost_the_daemon(void **state)
{
    char script[512];
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_lease_then_hang_up);
    snprintf(script, sizeof(script),
             "for i in $(seq 200); do grep -q 'lost the connection' %s/err && break; sleep 0.05; "
             "done; sleep 1.2",
             f.dir);
    assert_int_equal(run_cli(&f, &o, "run", "--ttl", "1", "--", "sh", "-c", script, NULL), 0);
    fake_finish(&f);
    assert_non_null(strstr(o.err, "lost the connection"));
    assert_null(strstr(strstr(o.err, "lost the connection") + 1, "lost the connection"));
}

/* ---- run --wait, --ttl ---------------------------------------------------------- */

static void serve_lease_with_wait_0_ttl_60(int fd)
{
    json_object *req;
    int64_t id;

    srv_hello_from(fd, NULL);
    id = srv_expect(fd, "lease", &req);
    SRV_CHECK(srv_has(req, "wait_ms") && strcmp(srv_str(req, "wait_ms"), "0") == 0);
    SRV_CHECK(srv_has(req, "ttl_s") && strcmp(srv_str(req, "ttl_s"), "60") == 0);
    json_object_put(req);
    srv_grant(fd, id);
    srv_releases(fd, NULL);
}

static void test_run_takes_wait_and_ttl(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_lease_with_wait_0_ttl_60);
    assert_int_equal(run_cli(&f, &o, "run", "--wait", "0", "--ttl", "60", "--", "true", NULL), 0);
    fake_finish(&f);
}

/* ---- ranges ------------------------------------------------------------------- */

static void serve_hello_with_max_ttl_3600(int fd)
{
    json_object *req;

    srv_hello_with(fd, NULL, "\"defaults\":{\"wait_ms\":10000,\"ttl_s\":900,\"max_ttl_s\":3600}");
    if ((req = srv_read(fd)))
        srv_fail(SRV_HERE, 0, "%s sent although --ttl is beyond max_ttl_s", srv_str(req, "op"));
}

static void test_out_of_range_values_are_usage_errors(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_hello_with_max_ttl_3600);
    assert_int_equal(run_cli(&f, &o, "lease", "--wait", "600001", NULL), 2);
    assert_non_null(strstr(o.err, "--wait"));
    assert_int_equal(run_cli(&f, &o, "lease", "--ttl", "0", NULL), 2);
    assert_int_equal(run_cli(&f, &o, "run", "--wait", "-1", "--", "true", NULL), 2);
    assert_int_equal(run_cli(&f, &o, "renew", "L-1", "--ttl", "0", NULL), 2);
    /* Beyond what the daemon said in hello: refused before asking for it. */
    assert_int_equal(run_cli(&f, &o, "lease", "--ttl", "7200", NULL), 2);
    assert_non_null(strstr(o.err, "--ttl"));
    assert_non_null(strstr(o.err, "3600"));
    fake_finish(&f);
}

/* ---- the daemon's errors in the CLI's words ---------------------------------------- */

static const char *error_code, *error_message;

static void serve_lease_error(int fd)
{
    srv_hello_from(fd, NULL);
    srv_error(fd, srv_expect(fd, "lease", NULL), error_code, error_message);
    srv_drain(fd);
}

static void check_lease_error(const char *code, const char *message, int exit_status,
                              const char *says, const char *not_says)
{
    cli_out_t o;
    fake_t f;

    error_code = code;
    error_message = message;
    fake_start(&f, serve_lease_error);
    assert_int_equal(run_cli(&f, &o, "lease", NULL), exit_status);
    fake_finish(&f);
    if (!strstr(o.err, says) || strstr(o.err, not_says))
        fail_msg("%s: wanted '%s' and no '%s' in: %s", code, says, not_says, o.err);
}

static void test_daemon_messages_speak_the_clis_flags(void **state)
{
    check_lease_error("timeout",
                      "no database became ready in time (all 4 in use or being prepared); "
                      "raise wait_ms or max_total, or release leases",
                      75, "--wait", "wait_ms");
    check_lease_error("pool_exhausted",
                      "no database is ready right now (4 leased of max_total 4); pass wait_ms "
                      "to queue, or raise min_ready",
                      75, "--wait", "wait_ms");
    check_lease_error("unknown_template",
                      "no template named \"app\"; define [template.app] in the config, create "
                      "it with template.ensure, or omit template for an empty database",
                      1, "dblease template migrate", "template.ensure");
    check_lease_error("bad_request", "ttl_s must be an integer from 1 to 3600", 2, "--ttl",
                      "ttl_s");
    /* Whole words only: the daemon's config keys stay as they are. */
    check_lease_error("timeout", "waited default_wait_ms; raise max_ttl_s", 75,
                      "default_wait_ms; raise max_ttl_s", "--");
}

/* ---- release by URL ------------------------------------------------------------- */

#define LEASE_URL "postgresql://u:p@127.0.0.1:5433/d"

/* A daemon from before release by URL: it wants the id. */
static void serve_release_by_url_to_an_old_daemon(int fd)
{
    json_object *req;
    int64_t id;

    srv_hello_from(fd, NULL);
    id = srv_expect(fd, "release", &req);
    SRV_CHECK(!srv_has(req, "lease") && strcmp(srv_str(req, "url"), LEASE_URL) == 0);
    json_object_put(req);
    srv_error(fd, id, "bad_request", "lease (the lease id, \"L-…\") is required");
    srv_drain(fd);
}

static void test_release_sends_a_url_as_url_and_explains_an_old_daemons_refusal(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_release_by_url_to_an_old_daemon);
    assert_int_equal(run_cli(&f, &o, "release", LEASE_URL, NULL), 1);
    assert_non_null(strstr(o.err, "takes only lease ids"));
    fake_finish(&f);
}

static void serve_release_not_owner(int fd)
{
    srv_hello_from(fd, NULL);
    srv_error(fd, srv_expect(fd, "release", NULL), "not_owner",
              "lease L-1 belongs to another client connection (attached leases end with it)");
    srv_drain(fd);
}

/* From inside `dblease run`, whose connection holds the lease. */
static void test_release_of_the_lease_of_an_enclosing_run_says_whose_it_is(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_release_not_owner);
    setenv("DBLEASE_LEASE_ID", "L-1", 1);
    assert_int_equal(run_cli(&f, &o, "release", "L-1", NULL), 1);
    unsetenv("DBLEASE_LEASE_ID");
    assert_non_null(strstr(o.err, "dblease run"));
    fake_finish(&f);
}

/* ---- template migrate: one default wait, said in --help ----------------------------- */

static void serve_ready_after_a_600_s_wait(int fd)
{
    json_object *req;
    int64_t id;

    srv_hello_from(fd, NULL);
    id = srv_expect(fd, "template.ensure", &req);
    SRV_CHECK(strcmp(srv_str(req, "wait_ms"), "600000") == 0);
    json_object_put(req);
    srv_send(fd,
             "{\"id\":%lld,\"ok\":true,\"template\":{\"name\":\"app\",\"hash\":\"h\","
             "\"state\":\"ready\"}}",
             (long long)id);
    srv_drain(fd);
}

static void test_migrate_waits_600_s_by_default_as_help_says(void **state)
{
    cli_out_t o;
    fake_t f;

    fake_start(&f, serve_ready_after_a_600_s_wait);
    assert_int_equal(
        run_cli(&f, &o, "template", "migrate", "app", "--hash", "h", "--", "true", NULL), 0);
    assert_int_equal(run_cli(&f, &o, "--help", NULL), 0);
    assert_non_null(strstr(o.out, "default 600000"));
    fake_finish(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_exports_the_ids_of_its_leases),
        cmocka_unit_test(
            test_run_clears_libpq_settings_that_would_redirect_or_break_its_connection),
        cmocka_unit_test(test_run_says_at_once_when_the_server_behind_its_lease_went_down),
        cmocka_unit_test(test_run_says_at_once_when_its_lease_expired),
        cmocka_unit_test(test_run_says_once_that_it_lost_the_daemon),
        cmocka_unit_test(test_run_takes_wait_and_ttl),
        cmocka_unit_test(test_out_of_range_values_are_usage_errors),
        cmocka_unit_test(test_daemon_messages_speak_the_clis_flags),
        cmocka_unit_test(test_release_sends_a_url_as_url_and_explains_an_old_daemons_refusal),
        cmocka_unit_test(test_release_of_the_lease_of_an_enclosing_run_says_whose_it_is),
        cmocka_unit_test(test_migrate_waits_600_s_by_default_as_help_says),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
