/* Requests: what a request line must look like and how arguments are typed.
 * Replies, events and error codes are in test_replies.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dbl_proto.h"

#define ERRLEN 256

/* Parse s (a C string) as a request; the caller frees req. */
static dbl_errcode_t parse(const char *s, dbl_request_t *req, char *err)
{
    return dbl_request_parse(s, strlen(s), req, err, ERRLEN);
}

static void expect_bad(const char *s, const char *msg_part)
{
    dbl_request_t req;
    char err[ERRLEN];

    assert_int_equal(parse(s, &req, err), DBL_E_BAD_REQUEST);
    assert_non_null(strstr(err, msg_part));
    dbl_request_free(&req);
}

/* Encode msg to a line, free msg, and compare with want (which has no '\n'). */
static void expect_encoded(json_object *msg, const char *want)
{
    size_t len = 0;
    char *line;

    assert_non_null(msg);
    line = dbl_encode(msg, &len);
    assert_non_null(line);
    assert_int_equal(len, strlen(want) + 1);
    assert_memory_equal(line, want, len - 1);
    assert_int_equal(line[len - 1], '\n');
    assert_int_equal(line[len], '\0');
    free(line);
    json_object_put(msg);
}

/* ---- request parsing --------------------------------------------------- */

static void test_request_with_op_parsed(void **state)
{
    dbl_request_t req;
    char err[ERRLEN];

    assert_int_equal(parse("{\"op\":\"status\"}", &req, err), DBL_E_NONE);
    assert_string_equal(req.op, "status");
    assert_null(req.id);
    assert_non_null(req.root);
    dbl_request_free(&req);
    (void)state;
}

static void test_integer_id_exposed(void **state)
{
    dbl_request_t req;
    char err[ERRLEN];

    assert_int_equal(parse("{\"id\":7,\"op\":\"lease\"}", &req, err), DBL_E_NONE);
    assert_non_null(req.id);
    assert_int_equal(json_object_get_int64(req.id), 7);
    dbl_request_free(&req);
    (void)state;
}

static void test_string_id_exposed(void **state)
{
    dbl_request_t req;
    char err[ERRLEN];

    assert_int_equal(parse("{\"op\":\"lease\",\"id\":\"w3-17\"}", &req, err), DBL_E_NONE);
    assert_string_equal(json_object_get_string(req.id), "w3-17");
    dbl_request_free(&req);
    (void)state;
}

static void test_null_id_treated_as_absent(void **state)
{
    dbl_request_t req;
    char err[ERRLEN];

    assert_int_equal(parse("{\"id\":null,\"op\":\"status\"}", &req, err), DBL_E_NONE);
    assert_null(req.id);
    dbl_request_free(&req);
    (void)state;
}

static void test_surrounding_whitespace_accepted(void **state)
{
    dbl_request_t req;
    char err[ERRLEN];

    assert_int_equal(parse(" \t{ \"op\" : \"status\" }\t \r", &req, err), DBL_E_NONE);
    dbl_request_free(&req);
    (void)state;
}

static void test_empty_line_rejected(void **state)
{
    expect_bad("", "empty line");
    expect_bad("   ", "empty line");
    (void)state;
}

static void test_non_object_rejected(void **state)
{
    expect_bad("[1,2]", "JSON object");
    expect_bad("\"status\"", "JSON object");
    expect_bad("42", "JSON object");
    expect_bad("null", "JSON object");
    expect_bad("hello daemon", "JSON object");
    (void)state;
}

static void test_invalid_json_rejected(void **state)
{
    expect_bad("{\"op\":\"status\",}", "invalid JSON");
    expect_bad("{\"op\":status}", "invalid JSON");
    (void)state;
}

static void test_truncated_json_rejected(void **state)
{
    expect_bad("{\"op\":\"status\"", "incomplete JSON");
    (void)state;
}

static void test_trailing_garbage_rejected(void **state)
{
    expect_bad("{\"op\":\"status\"} x", "JSON");
    (void)state;
}

static void test_second_object_on_line_rejected(void **state)
{
    expect_bad("{\"op\":\"status\"}{\"op\":\"status\"}", "JSON");
    (void)state;
}

static void test_nul_byte_after_object_rejected(void **state)
{
    static const char line[] = "{\"op\":\"status\"}\0{\"op\":\"x\"}";
    dbl_request_t req;
    char err[ERRLEN];

    assert_int_equal(dbl_request_parse(line, sizeof(line) - 1, &req, err, sizeof(err)),
                     DBL_E_BAD_REQUEST);
    assert_non_null(strstr(err, "after the JSON object"));
    dbl_request_free(&req);
    (void)state;
}

static void test_invalid_utf8_rejected(void **state)
{
    expect_bad("{\"op\":\"status\",\"client\":\"\xff\xfe\"}", "utf-8");
    expect_bad("{\"op\":\"status\",\"client\":\"\xc3\"}", "utf-8"); /* cut sequence */
    (void)state;
}

/* Found by tests/fuzz: json-c's UTF-8 check lets these through, and the
 * daemon then echoed them (in an id, a client name in status, a message) to
 * clients whose strict UTF-8 decoders choke on them. RFC 3629 says they are
 * not UTF-8; PROTOCOL.md says invalid UTF-8 is a bad_request. */
static void test_non_rfc3629_utf8_rejected(void **state)
{
    expect_bad("{\"op\":\"stat\xed\xa0\x80us\"}", "utf-8");              /* surrogate */
    expect_bad("{\"op\":\"hello\",\"client\":\"\xc0\xaf\"}", "utf-8");      /* overlong '/' */
    expect_bad("{\"op\":\"hello\",\"client\":\"\xe0\x80\xaf\"}", "utf-8"); /* overlong, 3 */
    expect_bad("{\"op\":\"hello\",\"client\":\"\xf0\x80\x80\xaf\"}", "utf-8");
    expect_bad("{\"op\":\"hello\",\"client\":\"\xf4\x90\x80\x80\"}", "utf-8"); /* > U+10FFFF */
    expect_bad("{\"op\":\"hello\",\"client\":\"\xf8\x88\x80\x80\x80\"}", "utf-8");
    expect_bad("{\"id\":\"\xed\xbf\xbf\",\"op\":\"status\"}", "byte 7");
    (void)state;
}

static void test_utf8_edges_and_escaped_surrogates_accepted(void **state)
{
    dbl_request_t req;
    char err[ERRLEN];
    const char *client = NULL;

    /* U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF */
    assert_int_equal(parse("{\"op\":\"hello\",\"client\":\"\xc2\x80\xdf\xbf\xe0\xa0\x80"
                           "\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"}",
                           &req, err),
                     DBL_E_NONE);
    dbl_request_free(&req);
    /* Escapes are ASCII on the wire; a lone surrogate becomes U+FFFD. */
    assert_int_equal(parse("{\"op\":\"hello\",\"client\":\"\\ud800\\ud83d\\ude00\"}", &req, err),
                     DBL_E_NONE);
    assert_int_equal(dbl_arg_string(&req, "client", &client, err, ERRLEN), 0);
    assert_string_equal(client, "\xef\xbf\xbd\xf0\x9f\x98\x80");
    dbl_request_free(&req);
    (void)state;
}

static void test_valid_utf8_accepted(void **state)
{
    dbl_request_t req;
    char err[ERRLEN];

    assert_int_equal(parse("{\"op\":\"hello\",\"client\":\"caf\xc3\xa9 \xe2\x9c\x93\"}", &req, err),
                     DBL_E_NONE);
    dbl_request_free(&req);
    (void)state;
}

static void test_deep_nesting_rejected(void **state)
{
    char line[300] = "{\"op\":\"x\",\"a\":";
    size_t n = strlen(line);

    for (int i = 0; i < 100; i++)
        line[n++] = '[';
    for (int i = 0; i < 100; i++)
        line[n++] = ']';
    line[n++] = '}';
    line[n] = '\0';
    expect_bad(line, "invalid JSON");
    (void)state;
}

static void test_missing_op_rejected(void **state)
{
    expect_bad("{\"id\":1}", "missing \"op\"");
    expect_bad("{\"op\":null}", "missing \"op\"");
    (void)state;
}

static void test_non_string_op_rejected(void **state)
{
    expect_bad("{\"op\":1}", "\"op\" must be a string");
    expect_bad("{\"op\":[\"lease\"]}", "\"op\" must be a string");
    expect_bad("{\"op\":\"lea\\u0000se\"}", "\"op\" must be a string");
    (void)state;
}

static void test_id_of_wrong_type_rejected_and_not_exposed(void **state)
{
    static const char *const lines[] = {
        "{\"id\":1.5,\"op\":\"status\"}",
        "{\"id\":true,\"op\":\"status\"}",
        "{\"id\":{},\"op\":\"status\"}",
        "{\"id\":[1],\"op\":\"status\"}",
    };

    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        dbl_request_t req;
        char err[ERRLEN];

        assert_int_equal(parse(lines[i], &req, err), DBL_E_BAD_REQUEST);
        assert_null(req.id);
        assert_non_null(strstr(err, "\"id\" must be an integer or a string"));
        dbl_request_free(&req);
    }
    (void)state;
}

static void test_id_echoed_in_error(void **state)
{
    dbl_request_t req;
    char err[ERRLEN];

    assert_int_equal(parse("{\"id\":42,\"op\":17}", &req, err), DBL_E_BAD_REQUEST);
    assert_non_null(req.id);
    expect_encoded(dbl_reply_error(req.id, DBL_E_BAD_REQUEST, err),
                   "{\"id\":42,\"ok\":false,\"error\":{\"code\":\"bad_request\","
                   "\"message\":\"\\\"op\\\" must be a string naming an operation, e.g. "
                   "\\\"lease\\\"\"}}");
    dbl_request_free(&req);
    (void)state;
}

static void test_error_buffer_may_be_null(void **state)
{
    dbl_request_t req;

    assert_int_equal(dbl_request_parse("nope", 4, &req, NULL, 0), DBL_E_BAD_REQUEST);
    assert_null(req.root);
    dbl_request_free(&req);
    (void)state;
}

/* ---- typed arguments --------------------------------------------------- */

/* A parsed request for argument tests; args is the JSON after "op". */
static void with_args(dbl_request_t *req, const char *args)
{
    char line[512], err[ERRLEN];

    snprintf(line, sizeof(line), "{\"op\":\"lease\"%s%s}", *args ? "," : "", args);
    assert_int_equal(parse(line, req, err), DBL_E_NONE);
}

static void test_absent_arg_keeps_default(void **state)
{
    dbl_request_t req;
    const char *s = "default";
    int64_t n = 900;
    bool b = true;
    char err[ERRLEN];

    with_args(&req, "");
    assert_int_equal(dbl_arg_string(&req, "template", &s, err, sizeof(err)), 0);
    assert_int_equal(dbl_arg_int(&req, "ttl_s", 1, 86400, &n, err, sizeof(err)), 0);
    assert_int_equal(dbl_arg_bool(&req, "detach", &b, err, sizeof(err)), 0);
    assert_string_equal(s, "default");
    assert_int_equal(n, 900);
    assert_true(b);
    dbl_request_free(&req);
    (void)state;
}

static void test_null_arg_counts_as_absent(void **state)
{
    dbl_request_t req;
    const char *s = "default";
    int64_t n = 900;
    bool b = false;
    char err[ERRLEN];

    with_args(&req, "\"template\":null,\"ttl_s\":null,\"detach\":null");
    assert_int_equal(dbl_arg_string(&req, "template", &s, err, sizeof(err)), 0);
    assert_int_equal(dbl_arg_int(&req, "ttl_s", 1, 86400, &n, err, sizeof(err)), 0);
    assert_int_equal(dbl_arg_bool(&req, "detach", &b, err, sizeof(err)), 0);
    assert_string_equal(s, "default");
    assert_int_equal(n, 900);
    assert_false(b);
    dbl_request_free(&req);
    (void)state;
}

static void test_string_arg_read(void **state)
{
    dbl_request_t req;
    const char *s = NULL;
    char err[ERRLEN];

    with_args(&req, "\"template\":\"app\"");
    assert_int_equal(dbl_arg_string(&req, "template", &s, err, sizeof(err)), 0);
    assert_string_equal(s, "app");
    dbl_request_free(&req);
    (void)state;
}

static void test_string_arg_rejects_number(void **state)
{
    dbl_request_t req;
    const char *s = "default";
    char err[ERRLEN];

    with_args(&req, "\"template\":5");
    assert_int_equal(dbl_arg_string(&req, "template", &s, err, sizeof(err)), -1);
    assert_string_equal(err, "template must be a string");
    assert_string_equal(s, "default");
    dbl_request_free(&req);
    (void)state;
}

static void test_string_arg_rejects_embedded_nul(void **state)
{
    dbl_request_t req;
    const char *s = NULL;
    char err[ERRLEN];

    with_args(&req, "\"template\":\"app\\u0000evil\"");
    assert_int_equal(dbl_arg_string(&req, "template", &s, err, sizeof(err)), -1);
    dbl_request_free(&req);
    (void)state;
}

static void test_int_arg_read(void **state)
{
    dbl_request_t req;
    int64_t n = 0;
    char err[ERRLEN];

    with_args(&req, "\"ttl_s\":120");
    assert_int_equal(dbl_arg_int(&req, "ttl_s", 1, 86400, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 120);
    dbl_request_free(&req);
    (void)state;
}

static void test_int_arg_bounds_inclusive(void **state)
{
    dbl_request_t req;
    int64_t n = 0;
    char err[ERRLEN];

    with_args(&req, "\"lo\":1,\"hi\":86400,\"over\":86401");
    assert_int_equal(dbl_arg_int(&req, "lo", 1, 86400, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 1);
    assert_int_equal(dbl_arg_int(&req, "hi", 1, 86400, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 86400);
    assert_int_equal(dbl_arg_int(&req, "over", 1, 86400, &n, err, sizeof(err)), -1);
    assert_int_equal(n, 86400);
    dbl_request_free(&req);
    (void)state;
}

static void expect_int_rejected(const char *args, const char *key, int64_t min, int64_t max,
                                const char *want_err)
{
    dbl_request_t req;
    int64_t n = 900;
    char err[ERRLEN];

    with_args(&req, args);
    assert_int_equal(dbl_arg_int(&req, key, min, max, &n, err, sizeof(err)), -1);
    assert_string_equal(err, want_err);
    assert_int_equal(n, 900);
    dbl_request_free(&req);
}

static void test_int_arg_rejects_double(void **state)
{
    expect_int_rejected("\"ttl_s\":60.0", "ttl_s", 1, 86400,
                        "ttl_s must be an integer from 1 to 86400");
    expect_int_rejected("\"ttl_s\":6e1", "ttl_s", 1, 86400,
                        "ttl_s must be an integer from 1 to 86400");
    (void)state;
}

static void test_int_arg_rejects_string(void **state)
{
    expect_int_rejected("\"wait_ms\":\"100\"", "wait_ms", 0, 600000,
                        "wait_ms must be an integer from 0 to 600000");
    (void)state;
}

static void test_int_arg_rejects_bool(void **state)
{
    expect_int_rejected("\"wait_ms\":true", "wait_ms", 0, 600000,
                        "wait_ms must be an integer from 0 to 600000");
    (void)state;
}

static void test_negative_ttl_rejected(void **state)
{
    expect_int_rejected("\"ttl_s\":-5", "ttl_s", 1, 86400,
                        "ttl_s must be an integer from 1 to 86400");
    (void)state;
}

static void test_int_arg_rejects_values_beyond_int64(void **state)
{
    /* json-c saturates these to INT64_MAX/UINT64_MAX; they must not pass. */
    expect_int_rejected("\"n\":18446744073709551615", "n", 0, INT64_MAX,
                        "n must be an integer from 0 to 9223372036854775807");
    expect_int_rejected("\"n\":9223372036854775808", "n", 0, INT64_MAX,
                        "n must be an integer from 0 to 9223372036854775807");
    (void)state;
}

static void test_bool_arg_read(void **state)
{
    dbl_request_t req;
    bool b = false;
    char err[ERRLEN];

    with_args(&req, "\"detach\":true");
    assert_int_equal(dbl_arg_bool(&req, "detach", &b, err, sizeof(err)), 0);
    assert_true(b);
    dbl_request_free(&req);
    (void)state;
}

static void test_bool_arg_rejects_int_and_string(void **state)
{
    dbl_request_t req;
    bool b = false;
    char err[ERRLEN];

    with_args(&req, "\"a\":1,\"b\":\"true\"");
    assert_int_equal(dbl_arg_bool(&req, "a", &b, err, sizeof(err)), -1);
    assert_string_equal(err, "a must be true or false");
    assert_int_equal(dbl_arg_bool(&req, "b", &b, err, sizeof(err)), -1);
    assert_false(b);
    dbl_request_free(&req);
    (void)state;
}

/* ---- hostile input ----------------------------------------------------- */

static uint32_t rng_next(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* Mutated copies of valid messages, through both parsers and every typed
 * getter: under ASan/UBSan this is a small, deterministic fuzz run. */
static void test_mutated_lines_never_crash_parsers(void **state)
{
    static const char *const seeds[] = {
        "{\"id\":7,\"op\":\"lease\",\"kind\":\"postgres\",\"ttl_s\":60,\"detach\":true}",
        "{\"id\":\"x\",\"ok\":false,\"error\":{\"code\":\"timeout\",\"message\":\"m\"}}",
        "{\"event\":\"lease_expired\",\"lease\":\"L-0011223344556677\"}",
    };
    static const char alphabet[] = "{}[]\":,\\ \t\r\0\x80\xc3\xff"
                                   "0123456789-.eEtrufalsn";
    uint32_t seed = 0x2545f491;
    char buf[128];

    for (int i = 0; i < 20000; i++) {
        const char *src = seeds[rng_next(&seed) % 3];
        size_t len = strlen(src);
        int edits = 1 + (int)(rng_next(&seed) % 4);
        dbl_request_t req;
        dbl_reply_t rep;
        const char *str;
        int64_t n;
        bool b;

        memcpy(buf, src, len);
        while (edits--) {
            size_t at = rng_next(&seed) % len;
            char c = alphabet[rng_next(&seed) % (sizeof(alphabet) - 1)];

            switch (rng_next(&seed) % 3) {
            case 0: buf[at] = c; break;  /* replace */
            case 1: len = at + 1; break; /* truncate */
            default:                     /* insert */
                if (len < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = c;
                    len++;
                }
            }
        }
        dbl_request_parse(buf, len, &req, NULL, 0);
        dbl_arg_string(&req, "kind", &str, NULL, 0);
        dbl_arg_int(&req, "ttl_s", 1, 86400, &n, NULL, 0);
        dbl_arg_bool(&req, "detach", &b, NULL, 0);
        dbl_request_free(&req);
        if (dbl_reply_parse(buf, len, &rep) == 0 && !rep.ok && !rep.is_event)
            assert_non_null(rep.message);
        dbl_reply_free(&rep);
    }
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_with_op_parsed),
        cmocka_unit_test(test_integer_id_exposed),
        cmocka_unit_test(test_string_id_exposed),
        cmocka_unit_test(test_null_id_treated_as_absent),
        cmocka_unit_test(test_surrounding_whitespace_accepted),
        cmocka_unit_test(test_empty_line_rejected),
        cmocka_unit_test(test_non_object_rejected),
        cmocka_unit_test(test_invalid_json_rejected),
        cmocka_unit_test(test_truncated_json_rejected),
        cmocka_unit_test(test_trailing_garbage_rejected),
        cmocka_unit_test(test_second_object_on_line_rejected),
        cmocka_unit_test(test_nul_byte_after_object_rejected),
        cmocka_unit_test(test_invalid_utf8_rejected),
        cmocka_unit_test(test_non_rfc3629_utf8_rejected),
        cmocka_unit_test(test_utf8_edges_and_escaped_surrogates_accepted),
        cmocka_unit_test(test_valid_utf8_accepted),
        cmocka_unit_test(test_deep_nesting_rejected),
        cmocka_unit_test(test_missing_op_rejected),
        cmocka_unit_test(test_non_string_op_rejected),
        cmocka_unit_test(test_id_of_wrong_type_rejected_and_not_exposed),
        cmocka_unit_test(test_id_echoed_in_error),
        cmocka_unit_test(test_error_buffer_may_be_null),
        cmocka_unit_test(test_absent_arg_keeps_default),
        cmocka_unit_test(test_null_arg_counts_as_absent),
        cmocka_unit_test(test_string_arg_read),
        cmocka_unit_test(test_string_arg_rejects_number),
        cmocka_unit_test(test_string_arg_rejects_embedded_nul),
        cmocka_unit_test(test_int_arg_read),
        cmocka_unit_test(test_int_arg_bounds_inclusive),
        cmocka_unit_test(test_int_arg_rejects_double),
        cmocka_unit_test(test_int_arg_rejects_string),
        cmocka_unit_test(test_int_arg_rejects_bool),
        cmocka_unit_test(test_negative_ttl_rejected),
        cmocka_unit_test(test_int_arg_rejects_values_beyond_int64),
        cmocka_unit_test(test_bool_arg_read),
        cmocka_unit_test(test_bool_arg_rejects_int_and_string),
        cmocka_unit_test(test_mutated_lines_never_crash_parsers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
