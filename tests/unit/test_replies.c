/* Replies and events: what they look like on the wire, how a client reads
 * them back, and the error code names. Requests are in test_messages.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dbl_proto.h"

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

/* ---- replies, events, encoding ----------------------------------------- */

static void test_reply_ok_carries_id_first(void **state)
{
    json_object *id = json_object_new_int(7);
    json_object *r = dbl_reply_ok(id);

    json_object_object_add(r, "expires_at", json_object_new_int64(1732521600));
    expect_encoded(r, "{\"id\":7,\"ok\":true,\"expires_at\":1732521600}");
    json_object_put(id);
    (void)state;
}

static void test_reply_ok_without_id_has_no_id_key(void **state)
{
    expect_encoded(dbl_reply_ok(NULL), "{\"ok\":true}");
    (void)state;
}

static void test_reply_references_id_without_stealing_it(void **state)
{
    static const char line[] = "{\"id\":\"abc\",\"op\":\"status\"}";
    dbl_request_t req;
    json_object *r;

    assert_int_equal(dbl_request_parse(line, sizeof(line) - 1, &req, NULL, 0), DBL_E_NONE);
    r = dbl_reply_ok(req.id);
    dbl_request_free(&req); /* the reply must still hold its own reference */
    expect_encoded(r, "{\"id\":\"abc\",\"ok\":true}");
    (void)state;
}

static void test_reply_error_shape(void **state)
{
    json_object *id = json_object_new_string("w1");

    expect_encoded(dbl_reply_error(id, DBL_E_POOL_EXHAUSTED, "no database ready; retry"),
                   "{\"id\":\"w1\",\"ok\":false,\"error\":{\"code\":\"pool_exhausted\","
                   "\"message\":\"no database ready; retry\"}}");
    json_object_put(id);
    (void)state;
}

static void test_line_too_long_error_has_no_id(void **state)
{
    expect_encoded(dbl_reply_error(NULL, DBL_E_LINE_TOO_LONG, "line over 65536 bytes"),
                   "{\"ok\":false,\"error\":{\"code\":\"line_too_long\","
                   "\"message\":\"line over 65536 bytes\"}}");
    (void)state;
}

static void test_reply_error_never_sends_none(void **state)
{
    expect_encoded(dbl_reply_error(NULL, DBL_E_NONE, "oops"),
                   "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"oops\"}}");
    (void)state;
}

static void test_reply_error_without_message_uses_code(void **state)
{
    expect_encoded(dbl_reply_error(NULL, DBL_E_TIMEOUT, NULL),
                   "{\"ok\":false,\"error\":{\"code\":\"timeout\",\"message\":\"timeout\"}}");
    (void)state;
}

static void test_event_shape(void **state)
{
    json_object *ev = dbl_event_new("lease_expired");

    json_object_object_add(ev, "lease", json_object_new_string("L-00112233aabbccdd"));
    expect_encoded(ev, "{\"event\":\"lease_expired\",\"lease\":\"L-00112233aabbccdd\"}");
    (void)state;
}

static void test_encode_leaves_slashes_and_utf8_alone(void **state)
{
    json_object *r = dbl_reply_ok(NULL);

    json_object_object_add(r, "url", json_object_new_string("postgresql://u:p@h:5/d"));
    json_object_object_add(r, "client", json_object_new_string("caf\xc3\xa9"));
    expect_encoded(r,
                   "{\"ok\":true,\"url\":\"postgresql://u:p@h:5/d\",\"client\":\"caf\xc3\xa9\"}");
    (void)state;
}

static void test_encode_escapes_newlines_in_strings(void **state)
{
    json_object *r = dbl_reply_error(NULL, DBL_E_INTERNAL, "two\nlines");

    expect_encoded(r,
                   "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"two\\nlines\"}}");
    (void)state;
}

/* Found by tests/fuzz: a message quoting a client's argument, cut to fit a
 * fixed buffer by snprintf, can end inside a multi-byte character. json-c
 * sends those bytes as they are, and then the client's own parser (and any
 * strict UTF-8 reader) rejects the whole reply. */
static void test_encode_repairs_cut_utf8(void **state)
{
    char msg[16];
    dbl_reply_t r;
    size_t len;
    char *line;
    json_object *e;

    /* "unknown op "é"" cut to 13 bytes: é loses its second byte. */
    memcpy(msg, "unknown op \"\xc3\xa9\"", 13);
    msg[13] = '\0';
    expect_encoded(dbl_reply_error(NULL, DBL_E_UNKNOWN_OP, msg),
                   "{\"ok\":false,\"error\":{\"code\":\"unknown_op\","
                   "\"message\":\"unknown op \\\"\xef\xbf\xbd\"}}");

    /* Every kind of bad byte, in a value and in a key, each one U+FFFD;
     * the line parses back. */
    e = dbl_event_new("x");
    json_object_object_add(e, "k\xff", json_object_new_string("a\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe6\x97"));
    line = dbl_encode(e, &len);
    assert_non_null(line);
    assert_string_equal(line, "{\"event\":\"x\",\"k\xef\xbf\xbd\":\"a"
                              "\xef\xbf\xbd\xef\xbf\xbd" /* C0 AF: overlong */
                              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" /* ED A0 80: surrogate */
                              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" /* past U+10FFFF */
                              "\xef\xbf\xbd\xef\xbf\xbd\"}\n"); /* cut 3-byte */
    assert_int_equal(len, strlen(line));
    assert_int_equal(dbl_reply_parse(line, len, &r), 0);
    assert_true(r.is_event);
    dbl_reply_free(&r);
    free(line);
    json_object_put(e);
    (void)state;
}

static void test_encode_len_may_be_null(void **state)
{
    json_object *r = dbl_reply_ok(NULL);
    char *line = dbl_encode(r, NULL);

    assert_string_equal(line, "{\"ok\":true}\n");
    free(line);
    json_object_put(r);
    (void)state;
}

/* ---- reply parsing (client side) --------------------------------------- */

static int rparse(const char *s, dbl_reply_t *r)
{
    return dbl_reply_parse(s, strlen(s), r);
}

static void test_reply_parse_ok(void **state)
{
    dbl_reply_t r;
    json_object *lease;

    assert_int_equal(rparse("{\"id\":3,\"ok\":true,\"lease\":{\"id\":\"L-1\"}}", &r), 0);
    assert_true(r.ok);
    assert_false(r.is_event);
    assert_int_equal(json_object_get_int(r.id), 3);
    assert_int_equal(r.code, DBL_E_NONE);
    assert_true(json_object_object_get_ex(r.root, "lease", &lease));
    dbl_reply_free(&r);
    (void)state;
}

static void test_reply_parse_error(void **state)
{
    dbl_reply_t r;

    assert_int_equal(rparse("{\"id\":\"a\",\"ok\":false,\"error\":{\"code\":\"not_owner\","
                            "\"message\":\"lease L-1 belongs to another client\"}}",
                            &r),
                     0);
    assert_false(r.ok);
    assert_false(r.is_event);
    assert_string_equal(json_object_get_string(r.id), "a");
    assert_int_equal(r.code, DBL_E_NOT_OWNER);
    assert_string_equal(r.code_name, "not_owner");
    assert_string_equal(r.message, "lease L-1 belongs to another client");
    dbl_reply_free(&r);
    (void)state;
}

static void test_reply_parse_unknown_code_keeps_name(void **state)
{
    dbl_reply_t r;

    assert_int_equal(rparse("{\"ok\":false,\"error\":{\"code\":\"quota_exceeded\"}}", &r), 0);
    assert_int_equal(r.code, DBL_E_NONE);
    assert_string_equal(r.code_name, "quota_exceeded");
    assert_string_equal(r.message, "");
    assert_null(r.id);
    dbl_reply_free(&r);
    (void)state;
}

static void test_reply_parse_event(void **state)
{
    dbl_reply_t r;

    assert_int_equal(
        rparse("{\"event\":\"instance_down\",\"lease\":\"L-1\",\"kind\":\"redis\"}", &r), 0);
    assert_true(r.is_event);
    assert_string_equal(r.event, "instance_down");
    assert_null(r.id);
    dbl_reply_free(&r);
    (void)state;
}

static void test_reply_parse_round_trips_encoded_reply(void **state)
{
    json_object *id = json_object_new_int(9);
    json_object *msg = dbl_reply_error(id, DBL_E_SHUTTING_DOWN, "draining");
    size_t len;
    char *line = dbl_encode(msg, &len);
    dbl_reply_t r;

    assert_int_equal(dbl_reply_parse(line, len, &r), 0); /* the '\n' is whitespace */
    assert_int_equal(r.code, DBL_E_SHUTTING_DOWN);
    assert_int_equal(json_object_get_int(r.id), 9);
    dbl_reply_free(&r);
    free(line);
    json_object_put(msg);
    json_object_put(id);
    (void)state;
}

static void test_reply_parse_rejects_malformed(void **state)
{
    static const char *const lines[] = {
        "",
        "garbage",
        "[true]",
        "{\"id\":1}",                                   /* neither ok nor event */
        "{\"ok\":\"yes\"}",                             /* ok not a bool */
        "{\"ok\":false}",                               /* failure without error */
        "{\"ok\":false,\"error\":\"pool_exhausted\"}",  /* error not an object */
        "{\"ok\":false,\"error\":{\"message\":\"x\"}}", /* no code */
        "{\"event\":5}",                                /* event name not a string */
        "{\"id\":1.5,\"ok\":true}",                     /* id of a wrong type */
        "{\"ok\":true} trailing",
    };

    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        dbl_reply_t r;

        assert_int_equal(rparse(lines[i], &r), -EINVAL);
        assert_null(r.root);
        dbl_reply_free(&r); /* harmless after a failure */
    }
    (void)state;
}

/* ---- error codes -------------------------------------------------------- */

static void test_errcode_names_round_trip(void **state)
{
    for (int c = DBL_E_NONE + 1; c < DBL_E__COUNT; c++) {
        const char *name = dbl_errcode_name((dbl_errcode_t)c);

        assert_non_null(name);
        assert_int_equal(dbl_errcode_from_name(name), c);
    }
    (void)state;
}

static void test_errcode_wire_names_are_the_documented_ones(void **state)
{
    static const struct {
        dbl_errcode_t code;
        const char *name;
    } want[] = {
        {DBL_E_BAD_REQUEST, "bad_request"},
        {DBL_E_UNKNOWN_OP, "unknown_op"},
        {DBL_E_PROTO_VERSION, "proto_version"},
        {DBL_E_UNKNOWN_TEMPLATE, "unknown_template"},
        {DBL_E_POOL_EXHAUSTED, "pool_exhausted"},
        {DBL_E_TIMEOUT, "timeout"},
        {DBL_E_NOT_FOUND, "not_found"},
        {DBL_E_NOT_OWNER, "not_owner"},
        {DBL_E_INSTANCE_DOWN, "instance_down"},
        {DBL_E_INTERNAL, "internal"},
        {DBL_E_LINE_TOO_LONG, "line_too_long"},
        {DBL_E_SHUTTING_DOWN, "shutting_down"},
        {DBL_E_FORBIDDEN, "forbidden"},
        {DBL_E_TEMPLATE_FAILED, "template_failed"},
        {DBL_E_TOO_MANY_LEASES, "too_many_leases"},
        {DBL_E_TOO_MANY_CLIENTS, "too_many_clients"},
        {DBL_E_DISK_FULL, "disk_full"},
        {DBL_E_TOO_MANY_TEMPLATES, "too_many_templates"},
    };

    assert_int_equal(sizeof(want) / sizeof(want[0]), DBL_E__COUNT - 1);
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        assert_string_equal(dbl_errcode_name(want[i].code), want[i].name);
    (void)state;
}

static void test_errcode_out_of_range_is_internal(void **state)
{
    assert_string_equal(dbl_errcode_name(DBL_E__COUNT), "internal");
    assert_string_equal(dbl_errcode_name((dbl_errcode_t)-1), "internal");
    (void)state;
}

static void test_errcode_unknown_or_null_name_is_none(void **state)
{
    assert_int_equal(dbl_errcode_from_name("no_such_code"), DBL_E_NONE);
    assert_int_equal(dbl_errcode_from_name("BAD_REQUEST"), DBL_E_NONE);
    assert_int_equal(dbl_errcode_from_name(""), DBL_E_NONE);
    assert_int_equal(dbl_errcode_from_name(NULL), DBL_E_NONE);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_ok_carries_id_first),
        cmocka_unit_test(test_reply_ok_without_id_has_no_id_key),
        cmocka_unit_test(test_reply_references_id_without_stealing_it),
        cmocka_unit_test(test_reply_error_shape),
        cmocka_unit_test(test_line_too_long_error_has_no_id),
        cmocka_unit_test(test_reply_error_never_sends_none),
        cmocka_unit_test(test_reply_error_without_message_uses_code),
        cmocka_unit_test(test_event_shape),
        cmocka_unit_test(test_encode_leaves_slashes_and_utf8_alone),
        cmocka_unit_test(test_encode_escapes_newlines_in_strings),
        cmocka_unit_test(test_encode_repairs_cut_utf8),
        cmocka_unit_test(test_encode_len_may_be_null),
        cmocka_unit_test(test_reply_parse_ok),
        cmocka_unit_test(test_reply_parse_error),
        cmocka_unit_test(test_reply_parse_unknown_code_keeps_name),
        cmocka_unit_test(test_reply_parse_event),
        cmocka_unit_test(test_reply_parse_round_trips_encoded_reply),
        cmocka_unit_test(test_reply_parse_rejects_malformed),
        cmocka_unit_test(test_errcode_names_round_trip),
        cmocka_unit_test(test_errcode_wire_names_are_the_documented_ones),
        cmocka_unit_test(test_errcode_out_of_range_is_internal),
        cmocka_unit_test(test_errcode_unknown_or_null_name_is_none),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
