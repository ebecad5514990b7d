/* libdblease's template calls (template.ensure, template.finalize) and the
 * lease's schema, against the scripted fake daemon (fake_daemon.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "dblease.h"
#include "fake_daemon.h"

#define MIGRATE_JSON                                                                               \
    "{\"name\":\"app\",\"hash\":\"abc123\",\"state\":\"migrate\","                                 \
    "\"url\":\"postgresql://dbl_o_app:pw@127.0.0.1:5433/dbl_t_app_1\","                            \
    "\"host\":\"127.0.0.1\",\"port\":5433,\"dbname\":\"dbl_t_app_1\","                             \
    "\"user\":\"dbl_o_app\",\"password\":\"pw\"}"
#define READY_JSON "{\"name\":\"app\",\"hash\":\"abc123\",\"state\":\"ready\"}"

/* ---- fake daemon scripts ------------------------------------------------ */

/* Reads a template op for app/abc123 and returns its id; *req (if not NULL)
 * gets the request. */
static int64_t srv_expect_template(int fd, const char *op, json_object **req)
{
    json_object *r;
    int64_t id = srv_expect(fd, op, &r);

    SRV_CHECK(strcmp(srv_str(r, "template"), "app") == 0);
    SRV_CHECK(strcmp(srv_str(r, "hash"), "abc123") == 0);
    if (req)
        *req = r;
    else
        json_object_put(r);
    return id;
}

/* Reads a template.finalize of app/abc123 with this ok and returns its id. */
static int64_t srv_expect_finalize(int fd, bool ok)
{
    json_object *req;
    int64_t id = srv_expect_template(fd, "template.finalize", &req);

    SRV_CHECK(json_object_is_type(json_object_object_get(req, "ok"), json_type_boolean));
    SRV_CHECK(json_object_get_boolean(json_object_object_get(req, "ok")) == ok);
    json_object_put(req);
    return id;
}

#define FINALIZED_JSON                                                                             \
    "{\"id\":%lld,\"ok\":true,\"template\":{\"name\":\"app\",\"hash\":\"abc123\","                 \
    "\"state\":\"%s\"}}"

static void srv_finalize(int fd, bool ok)
{
    int64_t id = srv_expect_finalize(fd, ok);

    srv_send(fd, FINALIZED_JSON, (long long)id, ok ? "ready" : "abandoned");
}

static void serve_ready(int fd)
{
    json_object *req;
    int64_t id;

    srv_hello(fd);
    id = srv_expect_template(fd, "template.ensure", &req);
    SRV_CHECK(!srv_has(req, "wait_ms") && !srv_has(req, "kind"));
    json_object_put(req);
    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"template\":" READY_JSON "}", (long long)id);
    srv_drain(fd);
}

static void serve_migrate_then_finalize(int fd)
{
    json_object *req;
    int64_t id;

    srv_hello(fd);
    id = srv_expect_template(fd, "template.ensure", &req);
    SRV_CHECK(json_object_get_int(json_object_object_get(req, "wait_ms")) == 0);
    json_object_put(req);
    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"template\":" MIGRATE_JSON "}", (long long)id);
    srv_finalize(fd, true);
    srv_drain(fd);
}

static void serve_migrate_then_abandon(int fd)
{
    int64_t id;

    srv_hello(fd);
    id = srv_expect_template(fd, "template.ensure", NULL);
    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"template\":" MIGRATE_JSON "}", (long long)id);
    srv_finalize(fd, false);
    srv_drain(fd);
}

/* ---- ensure --------------------------------------------------------------- */

static void test_ensure_ready_leaves_wait_and_kind_to_the_daemon(void **state)
{
    dbl_template_t *t;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_ready);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_template_ensure(ctx, "app", "abc123", -1, &t), 0);
    assert_string_equal(t->name, "app");
    assert_string_equal(t->hash, "abc123");
    assert_string_equal(t->state, "ready");
    assert_null(t->url);
    assert_null(t->password);
    assert_int_equal(t->port, 0);
    dbl_template_free(t);
    dbl_free(ctx);
    fake_finish(&f);
}

static void test_ensure_migrate_hands_out_the_template_database(void **state)
{
    dbl_template_t *t, *done;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_migrate_then_finalize);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_template_ensure(ctx, "app", "abc123", 0, &t), 0);
    assert_string_equal(t->state, "migrate");
    assert_string_equal(t->url, "postgresql://dbl_o_app:pw@127.0.0.1:5433/dbl_t_app_1");
    assert_string_equal(t->host, "127.0.0.1");
    assert_int_equal(t->port, 5433);
    assert_string_equal(t->dbname, "dbl_t_app_1");
    assert_string_equal(t->user, "dbl_o_app");
    assert_string_equal(t->password, "pw");
    assert_int_equal(dbl_template_finalize(ctx, "app", "abc123", true, &done), 0);
    assert_string_equal(done->state, "ready");
    dbl_template_free(done);
    dbl_template_free(t);
    dbl_free(ctx);
    fake_finish(&f);
}

static void test_finalize_not_ok_abandons_and_may_skip_the_result(void **state)
{
    dbl_template_t *t;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_migrate_then_abandon);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_template_ensure(ctx, "app", "abc123", -1, &t), 0);
    assert_int_equal(dbl_template_finalize(ctx, "app", "abc123", false, NULL), 0);
    dbl_template_free(t);
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_slow_ensure(int fd)
{
    int64_t id;

    srv_hello(fd);
    id = srv_expect_template(fd, "template.ensure", NULL);
    srv_hold_ms(400); /* another client's migration, say: past the 200 ms timeout */
    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"template\":" READY_JSON "}", (long long)id);
    srv_drain(fd);
}

static void test_ensure_waits_for_wait_ms_beyond_the_timeout(void **state)
{
    dbl_template_t *t;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_slow_ensure);
    ctx = connect_to(&f, 200);
    assert_int_equal(dbl_template_ensure(ctx, "app", "abc123", 30000, &t), 0);
    dbl_template_free(t);
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_slow_ensure_after_hello_with_defaults(int fd)
{
    int64_t id = srv_expect(fd, "hello", NULL);

    srv_send(fd,
             "{\"id\":%lld,\"ok\":true,\"version\":\"9.9.9\",\"proto\":1,"
             "\"defaults\":{\"wait_ms\":30000,\"ttl_s\":900,\"max_ttl_s\":86400}}",
             (long long)id);
    id = srv_expect_template(fd, "template.ensure", NULL);
    srv_hold_ms(400); /* past the client's 200 ms timeout, inside the default wait */
    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"template\":" READY_JSON "}", (long long)id);
    srv_drain(fd);
}

static void test_ensure_with_the_default_wait_allows_for_the_daemons_default(void **state)
{
    dbl_template_t *t;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_slow_ensure_after_hello_with_defaults);
    ctx = connect_to(&f, 200);
    assert_int_equal(dbl_template_ensure(ctx, "app", "abc123", -1, &t), 0);
    dbl_template_free(t);
    dbl_free(ctx);
    fake_finish(&f);
}

/* ---- errors --------------------------------------------------------------- */

static const char *error_code;

static void serve_ensure_error(int fd)
{
    int64_t id;

    srv_hello(fd);
    id = srv_expect_template(fd, "template.ensure", NULL);
    srv_send(fd,
             "{\"id\":%lld,\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":"
             "\"002_users.sql:14: syntax error at or near \\\"TABLEE\\\"\"}}",
             (long long)id, error_code);
    srv_drain(fd);
}

static void test_ensure_errors_carry_the_daemons_code_and_message(void **state)
{
    static const char *const codes[] = {"template_failed", "timeout", "bad_request",
                                        "instance_down", "shutting_down"};

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        dbl_template_t *t = (dbl_template_t *)1;
        fake_t f;
        dbl_ctx_t *ctx;

        error_code = codes[i];
        fake_start(&f, serve_ensure_error);
        ctx = connect_to(&f, 0);
        assert_int_equal(dbl_template_ensure(ctx, "app", "abc123", -1, &t), -1);
        assert_null(t);
        assert_int_equal(ctx->err, DBL_ERR_REMOTE);
        assert_string_equal(ctx->code, codes[i]);
        assert_string_equal(ctx->errstr, "002_users.sql:14: syntax error at or near \"TABLEE\"");
        dbl_free(ctx);
        fake_finish(&f);
    }
}

/* What the daemon says about a failed migration: file, line, PostgreSQL's
 * error and hint, and what to do. Well over the 127 characters errstr used
 * to hold. */
#define LONG_MESSAGE                                                                               \
    "template app: migration 004_add_orders_index.sql, line 2: column \"customer_idd\" does not "  \
    "exist (hint: Perhaps you meant to reference the column \"orders.customer_id\".); fix it and " \
    "the template rebuilds"

static const char *error_message;

static void serve_ensure_error_message(int fd)
{
    int64_t id;

    srv_hello(fd);
    id = srv_expect_template(fd, "template.ensure", NULL);
    srv_error(fd, id, "template_failed", error_message);
    srv_drain(fd);
}

static void test_a_long_daemon_message_is_kept_whole(void **state)
{
    dbl_template_t *t;
    fake_t f;
    dbl_ctx_t *ctx;

    error_message = LONG_MESSAGE;
    fake_start(&f, serve_ensure_error_message);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_template_ensure(ctx, "app", "abc123", -1, &t), -1);
    assert_int_equal(ctx->err, DBL_ERR_REMOTE);
    assert_string_equal(ctx->code, "template_failed");
    assert_string_equal(ctx->errstr, LONG_MESSAGE);
    dbl_free(ctx);
    fake_finish(&f);
}

static void test_a_message_longer_than_errstr_is_cut_to_fit(void **state)
{
    char message[DBL_ERRSTR_LEN + 100];
    dbl_template_t *t;
    fake_t f;
    dbl_ctx_t *ctx;

    for (size_t i = 0; i < sizeof(message) - 1; i++)
        message[i] = (char)('a' + i % 26);
    message[sizeof(message) - 1] = '\0';
    error_message = message;
    fake_start(&f, serve_ensure_error_message);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_template_ensure(ctx, "app", "abc123", -1, &t), -1);
    assert_int_equal(ctx->err, DBL_ERR_REMOTE);
    assert_string_equal(ctx->code, "template_failed");
    assert_int_equal(strlen(ctx->errstr), DBL_ERRSTR_LEN - 1);
    assert_memory_equal(ctx->errstr, message, DBL_ERRSTR_LEN - 1);
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_finalize_not_owner(int fd)
{
    int64_t id;

    srv_hello(fd);
    id = srv_expect_template(fd, "template.finalize", NULL);
    srv_send(fd,
             "{\"id\":%lld,\"ok\":false,\"error\":{\"code\":\"not_owner\",\"message\":"
             "\"another client is migrating app\"}}",
             (long long)id);
    srv_drain(fd);
}

static void test_finalize_of_a_claim_held_elsewhere_is_not_owner(void **state)
{
    dbl_template_t *t = (dbl_template_t *)1;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_finalize_not_owner);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_template_finalize(ctx, "app", "abc123", true, &t), -1);
    assert_null(t);
    assert_int_equal(ctx->err, DBL_ERR_REMOTE);
    assert_string_equal(ctx->code, "not_owner");
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_migrate_without_url(int fd)
{
    int64_t id;

    srv_hello(fd);
    id = srv_expect_template(fd, "template.ensure", NULL);
    srv_send(fd,
             "{\"id\":%lld,\"ok\":true,\"template\":{\"name\":\"app\",\"hash\":\"abc123\","
             "\"state\":\"migrate\"}}",
             (long long)id);
    srv_finalize(fd, false); /* the client must not sit on a claim it cannot use */
    srv_drain(fd);
}

static void test_a_claim_the_client_cannot_use_is_abandoned_at_once(void **state)
{
    dbl_template_t *t;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_migrate_without_url);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_template_ensure(ctx, "app", "abc123", -1, &t), -1);
    assert_null(t);
    assert_int_equal(ctx->err, DBL_ERR_PROTOCOL); /* the cause, not the give-back */
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_reply_without_template(int fd)
{
    int64_t id;

    srv_hello(fd);
    id = srv_expect_template(fd, "template.ensure", NULL);
    srv_send(fd, "{\"id\":%lld,\"ok\":true}", (long long)id);
    srv_drain(fd);
}

static void test_ensure_reply_without_a_template_is_a_protocol_error(void **state)
{
    dbl_template_t *t;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_reply_without_template);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_template_ensure(ctx, "app", "abc123", -1, &t), -1);
    assert_int_equal(ctx->err, DBL_ERR_PROTOCOL);
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_late_claim(int fd)
{
    int64_t id;

    srv_hello(fd);
    id = srv_expect_template(fd, "template.ensure", NULL);
    srv_wait_go(); /* the client has given up */
    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"template\":" MIGRATE_JSON "}", (long long)id);
    id = srv_expect(fd, "status", NULL);
    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"pools\":[]}", (long long)id);
    /* The client gives the claim back on its way to the status reply, and
     * does not wait for the answer to that: by the time we write it, it may
     * have taken the status reply and hung up. What matters is that the
     * finalize came, for this template, not ok. */
    id = srv_expect_finalize(fd, false);
    srv_send_unawaited(fd, FINALIZED_JSON, (long long)id, "abandoned");
    srv_drain(fd);
}

static void test_claim_granted_after_a_timeout_is_abandoned(void **state)
{
    dbl_template_t *t;
    char *json;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_late_claim);
    ctx = connect_to(&f, 100);
    assert_int_equal(dbl_template_ensure(ctx, "app", "abc123", 0, &t), -1);
    assert_int_equal(ctx->err, DBL_ERR_TIMEOUT);
    fake_go(&f);
    wait_for_reply_in_flight(ctx);
    set_timeout(ctx, 10000);
    /* The next call reads the late claim on its way and abandons it. */
    assert_int_equal(dbl_status(ctx, &json), 0);
    free(json);
    dbl_free(ctx);
    fake_finish(&f);
}

static void test_missing_arguments_are_usage_errors_before_any_io(void **state)
{
    dbl_options_t o = {.socket_path = "/nonexistent-dblease-dir/s.sock"};
    dbl_ctx_t *ctx = dbl_connect(&o);
    dbl_template_t *t;

    assert_int_equal(dbl_template_ensure(ctx, NULL, "abc123", -1, &t), -1);
    assert_int_equal(ctx->err, DBL_ERR_USAGE);
    assert_int_equal(dbl_template_ensure(ctx, "app", "", -1, &t), -1);
    assert_int_equal(ctx->err, DBL_ERR_USAGE);
    assert_non_null(strstr(ctx->errstr, "hash"));
    assert_int_equal(dbl_template_ensure(ctx, "app", "abc123", -1, NULL), -1);
    assert_int_equal(ctx->err, DBL_ERR_USAGE);
    assert_int_equal(dbl_template_finalize(ctx, "", "abc123", true, NULL), -1);
    assert_int_equal(ctx->err, DBL_ERR_USAGE);
    assert_int_equal(dbl_template_ensure(NULL, "app", "abc123", -1, &t), -1);
    dbl_template_free(NULL);
    dbl_free(ctx);
}

/* ---- schema-isolated leases ------------------------------------------------ */

static void serve_schema_lease(int fd)
{
    json_object *req;
    int64_t id;

    srv_hello(fd);
    id = srv_expect(fd, "lease", &req);
    SRV_CHECK(strcmp(srv_str(req, "template"), "app") == 0);
    json_object_put(req);
    srv_send(fd,
             "{\"id\":%lld,\"ok\":true,\"lease\":{\"id\":\"L-2\",\"kind\":\"postgres\","
             "\"template\":\"app\",\"url\":\"postgresql://u:p@127.0.0.1:5433/dbl_app_s"
             "?options=-csearch_path%%3Ddbl_s_2\",\"host\":\"127.0.0.1\",\"port\":5433,"
             "\"dbname\":\"dbl_app_s\",\"schema\":\"dbl_s_2\",\"user\":\"u\","
             "\"password\":\"p\",\"expires_at\":1700000000}}",
             (long long)id);
    srv_drain(fd);
}

static void test_schema_lease_carries_its_schema_and_shared_database(void **state)
{
    dbl_lease_opts_t lo = {.template_name = "app", .wait_ms = -1};
    dbl_lease_t *l;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_schema_lease);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_lease(ctx, &lo, &l), 0);
    assert_string_equal(l->schema, "dbl_s_2");
    assert_string_equal(l->dbname, "dbl_app_s");
    assert_non_null(strstr(l->url, "?options=-csearch_path%3Ddbl_s_2"));
    dbl_lease_free(l);
    dbl_free(ctx);
    fake_finish(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ensure_ready_leaves_wait_and_kind_to_the_daemon),
        cmocka_unit_test(test_ensure_migrate_hands_out_the_template_database),
        cmocka_unit_test(test_finalize_not_ok_abandons_and_may_skip_the_result),
        cmocka_unit_test(test_ensure_waits_for_wait_ms_beyond_the_timeout),
        cmocka_unit_test(test_ensure_with_the_default_wait_allows_for_the_daemons_default),
        cmocka_unit_test(test_ensure_errors_carry_the_daemons_code_and_message),
        cmocka_unit_test(test_a_long_daemon_message_is_kept_whole),
        cmocka_unit_test(test_a_message_longer_than_errstr_is_cut_to_fit),
        cmocka_unit_test(test_finalize_of_a_claim_held_elsewhere_is_not_owner),
        cmocka_unit_test(test_a_claim_the_client_cannot_use_is_abandoned_at_once),
        cmocka_unit_test(test_ensure_reply_without_a_template_is_a_protocol_error),
        cmocka_unit_test(test_claim_granted_after_a_timeout_is_abandoned),
        cmocka_unit_test(test_missing_arguments_are_usage_errors_before_any_io),
        cmocka_unit_test(test_schema_lease_carries_its_schema_and_shared_database),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
