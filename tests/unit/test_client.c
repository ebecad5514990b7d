/* libdblease against a scripted fake daemon (fake_daemon.h): what goes on
 * the wire, how replies are matched, and how each kind of failure is
 * reported. Templates are in test_client_template.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "dblease.h"
#include "fake_daemon.h"

/* ---- tests -------------------------------------------------------------- */

static void test_missing_socket_is_unavailable_and_says_what_to_do(void **state)
{
    dbl_options_t o = {.socket_path = "/nonexistent-dblease-dir/s.sock"};
    dbl_ctx_t *ctx = dbl_connect(&o);

    assert_non_null(ctx);
    assert_int_equal(ctx->err, DBL_ERR_UNAVAILABLE);
    assert_non_null(strstr(ctx->errstr, "/nonexistent-dblease-dir/s.sock"));
    assert_non_null(strstr(ctx->errstr, "DBLEASE_SOCKET"));
    dbl_free(ctx);
}

static void test_calls_on_a_failed_context_fail_without_crashing(void **state)
{
    dbl_options_t o = {.socket_path = "/nonexistent-dblease-dir/s.sock"};
    dbl_ctx_t *ctx = dbl_connect(&o);
    dbl_lease_t *l = NULL;

    assert_int_equal(dbl_lease(ctx, NULL, &l), -1);
    assert_null(l);
    assert_int_not_equal(ctx->err, DBL_ERR_NONE);
    dbl_free(ctx);
}

static void serve_hello_only(int fd)
{
    srv_hello(fd);
    srv_drain(fd);
}

static void test_connect_says_hello_and_keeps_daemon_version(void **state)
{
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_hello_only);
    ctx = connect_to(&f, 0);
    assert_int_equal(ctx->err, DBL_ERR_NONE);
    assert_string_equal(dbl_daemon_version(ctx), "9.9.9");
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_refused_hello(int fd)
{
    int64_t id = srv_expect(fd, "hello", NULL);

    srv_send(fd, "{\"id\":%lld,\"ok\":false,\"error\":{\"code\":\"proto_version\",\"message\":"
                 "\"upgrade libdblease\"}}",
             (long long)id);
    srv_drain(fd);
}

static void test_refused_hello_reports_the_daemons_code_and_message(void **state)
{
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_refused_hello);
    ctx = connect_to(&f, 0);
    assert_int_equal(ctx->err, DBL_ERR_REMOTE);
    assert_string_equal(ctx->code, "proto_version");
    assert_string_equal(ctx->errstr, "upgrade libdblease");
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_default_lease(int fd)
{
    json_object *req;
    int64_t id;

    srv_hello(fd);
    id = srv_expect(fd, "lease", &req);
    SRV_CHECK(strcmp(srv_str(req, "kind"), "postgres") == 0);
    SRV_CHECK(!srv_has(req, "template") && !srv_has(req, "ttl_s") && !srv_has(req, "wait_ms"));
    SRV_CHECK(!json_object_get_boolean(json_object_object_get(req, "detach")));
    json_object_put(req);
    srv_grant(fd, id);
    srv_drain(fd);
}

static void test_lease_leaves_defaults_to_the_daemon(void **state)
{
    dbl_lease_opts_t lo = {.wait_ms = -1};
    dbl_lease_t *l;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_default_lease);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_lease(ctx, &lo, &l), 0);
    dbl_lease_free(l);
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_lease_among_noise(int fd)
{
    int64_t id;

    srv_hello(fd);
    id = srv_expect(fd, "lease", NULL);
    srv_send(fd, "{\"event\":\"lease_expired\",\"lease\":\"L-0\"}");
    srv_send(fd, "{\"id\":%lld,\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"x\"}}",
             (long long)id + 100);
    srv_grant(fd, id);
    srv_drain(fd);
}

static void test_lease_skips_events_and_replies_to_other_requests(void **state)
{
    dbl_lease_t *l;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_lease_among_noise);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_lease(ctx, NULL, &l), 0);
    assert_string_equal(l->id, "L-1");
    assert_string_equal(l->url, "postgresql://u:p@127.0.0.1:5433/d");
    assert_string_equal(l->host, "127.0.0.1");
    assert_int_equal(l->port, 5433);
    assert_string_equal(l->dbname, "d");
    assert_string_equal(l->user, "u");
    assert_string_equal(l->password, "p");
    assert_int_equal(l->expires_at, 1700000000);
    assert_null(l->socket);
    assert_null(l->schema); /* database isolation */
    dbl_lease_free(l);
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_exhausted(int fd)
{
    int64_t id;

    srv_hello(fd);
    id = srv_expect(fd, "lease", NULL);
    srv_send(fd, "{\"id\":%lld,\"ok\":false,\"error\":{\"code\":\"pool_exhausted\",\"message\":"
                 "\"no database ready; retry\"}}",
             (long long)id);
    srv_drain(fd);
}

static void test_error_reply_sets_remote_code_and_message(void **state)
{
    dbl_lease_t *l = (dbl_lease_t *)1;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_exhausted);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_lease(ctx, NULL, &l), -1);
    assert_null(l);
    assert_int_equal(ctx->err, DBL_ERR_REMOTE);
    assert_string_equal(ctx->code, "pool_exhausted");
    assert_string_equal(ctx->errstr, "no database ready; retry");
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_silence(int fd)
{
    srv_hello(fd);
    srv_drain(fd);
}

static void test_no_reply_in_time_is_a_timeout(void **state)
{
    struct timespec t0;
    char *json;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_silence);
    ctx = connect_to(&f, 200);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(dbl_status(ctx, &json), -1);
    assert_int_equal(ctx->err, DBL_ERR_TIMEOUT);
    assert_true(elapsed_ms(&t0) >= 190 && elapsed_ms(&t0) < 2000);
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_slow_lease(int fd)
{
    int64_t id;

    srv_hello(fd);
    id = srv_expect(fd, "lease", NULL);
    srv_hold_ms(400); /* past the client's 200 ms timeout, far inside its wait */
    srv_grant(fd, id);
    srv_drain(fd);
}

static void test_lease_waits_for_wait_ms_beyond_the_timeout(void **state)
{
    dbl_lease_opts_t lo = {.wait_ms = 30000};
    dbl_lease_t *l;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_slow_lease);
    ctx = connect_to(&f, 200);
    assert_int_equal(dbl_lease(ctx, &lo, &l), 0);
    dbl_lease_free(l);
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_late_grant(int fd)
{
    json_object *req;
    int64_t id;

    srv_hello(fd);
    id = srv_expect(fd, "lease", NULL);
    srv_wait_go(); /* the client has given up */
    srv_grant(fd, id);
    id = srv_expect(fd, "status", NULL);
    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"pools\":[]}", (long long)id);
    srv_expect(fd, "release", &req);
    SRV_CHECK(strcmp(srv_str(req, "lease"), "L-1") == 0);
    SRV_CHECK(json_object_get_boolean(json_object_object_get(req, "clean")));
    json_object_put(req);
    srv_drain(fd);
}

static void test_lease_granted_after_a_timeout_is_given_back(void **state)
{
    dbl_lease_opts_t lo = {.wait_ms = 0};
    dbl_lease_t *l;
    char *json;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_late_grant);
    ctx = connect_to(&f, 100);
    assert_int_equal(dbl_lease(ctx, &lo, &l), -1);
    assert_int_equal(ctx->err, DBL_ERR_TIMEOUT);
    fake_go(&f);
    wait_for_reply_in_flight(ctx);
    set_timeout(ctx, 10000);
    /* The next call reads the late grant on its way and releases it. */
    assert_int_equal(dbl_status(ctx, &json), 0);
    free(json);
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_hang_up(int fd)
{
    srv_hello(fd);
    srv_expect(fd, "release", NULL);
    close(fd);
}

static void test_daemon_hanging_up_is_an_io_error(void **state)
{
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_hang_up);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_release(ctx, "L-1", false), -1);
    assert_int_equal(ctx->err, DBL_ERR_IO);
    assert_int_equal(dbl_release(ctx, "L-1", false), -1);
    assert_int_equal(ctx->err, DBL_ERR_IO);
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_status(int fd)
{
    int64_t id;

    srv_hello(fd);
    id = srv_expect(fd, "status", NULL);
    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"pools\":[{\"kind\":\"redis\",\"ready\":2}]}",
             (long long)id);
    srv_drain(fd);
}

static void test_status_is_the_reply_without_its_envelope(void **state)
{
    json_object *st, *v;
    char *json;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_status);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_status(ctx, &json), 0);
    st = json_tokener_parse(json);
    assert_non_null(st);
    assert_false(json_object_object_get_ex(st, "id", NULL));
    assert_false(json_object_object_get_ex(st, "ok", NULL));
    assert_true(json_object_object_get_ex(st, "pools", &v));
    assert_int_equal(json_object_array_length(v), 1);
    json_object_put(st);
    free(json);
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_big_status(int fd)
{
    size_t len = 200 * 1024;
    char *line = malloc(len + 64);
    int64_t id;
    int n;

    srv_hello(fd);
    id = srv_expect(fd, "status", NULL);
    SRV_CHECK(line);
    n = snprintf(line, 64, "{\"id\":%lld,\"ok\":true,\"pad\":\"", (long long)id);
    memset(line + n, 'x', len);
    memcpy(line + n + len, "\"}\n", 3);
    SRV_CHECK(write(fd, line, (size_t)n + len + 3) == (ssize_t)(n + len + 3));
    free(line);
    srv_drain(fd);
}

static void test_status_reply_over_the_request_limit_is_read(void **state)
{
    char *json;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_big_status);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_status(ctx, &json), 0);
    assert_true(strlen(json) > 200 * 1024);
    free(json);
    dbl_free(ctx);
    fake_finish(&f);
}

static void serve_renew(int fd)
{
    json_object *req;
    int64_t id;

    srv_hello(fd);
    id = srv_expect(fd, "renew", &req);
    SRV_CHECK(strcmp(srv_str(req, "lease"), "L-1") == 0);
    SRV_CHECK(json_object_get_int(json_object_object_get(req, "ttl_s")) == 60);
    json_object_put(req);
    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"expires_at\":1800000000}", (long long)id);
    srv_drain(fd);
}

static void test_renew_returns_the_new_expiry(void **state)
{
    int64_t exp = 0;
    fake_t f;
    dbl_ctx_t *ctx;

    fake_start(&f, serve_renew);
    ctx = connect_to(&f, 0);
    assert_int_equal(dbl_renew(ctx, "L-1", 60, &exp), 0);
    assert_int_equal(exp, 1800000000);
    dbl_free(ctx);
    fake_finish(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_socket_is_unavailable_and_says_what_to_do),
        cmocka_unit_test(test_calls_on_a_failed_context_fail_without_crashing),
        cmocka_unit_test(test_connect_says_hello_and_keeps_daemon_version),
        cmocka_unit_test(test_refused_hello_reports_the_daemons_code_and_message),
        cmocka_unit_test(test_lease_leaves_defaults_to_the_daemon),
        cmocka_unit_test(test_lease_skips_events_and_replies_to_other_requests),
        cmocka_unit_test(test_error_reply_sets_remote_code_and_message),
        cmocka_unit_test(test_no_reply_in_time_is_a_timeout),
        cmocka_unit_test(test_lease_waits_for_wait_ms_beyond_the_timeout),
        cmocka_unit_test(test_lease_granted_after_a_timeout_is_given_back),
        cmocka_unit_test(test_daemon_hanging_up_is_an_io_error),
        cmocka_unit_test(test_status_is_the_reply_without_its_envelope),
        cmocka_unit_test(test_status_reply_over_the_request_limit_is_read),
        cmocka_unit_test(test_renew_returns_the_new_expiry),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
