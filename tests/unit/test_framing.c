/* Line framing: how any chunking of the byte stream becomes lines, and how a
 * line over the limit is refused without holding it in memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dbl_proto.h"

#define SMALL_LIMIT 16

static int setup(void **state)
{
    dbl_decoder_t *d = malloc(sizeof(*d));

    if (!d)
        return -1;
    dbl_decoder_init(d, SMALL_LIMIT);
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    dbl_decoder_free(*state);
    free(*state);
    return 0;
}

static void feed_str(dbl_decoder_t *d, const char *s)
{
    assert_int_equal(dbl_decoder_feed(d, s, strlen(s)), 0);
}

static void expect_line(dbl_decoder_t *d, const char *want)
{
    const char *line = NULL;
    size_t len = 0;

    assert_int_equal(dbl_decoder_next(d, &line, &len), 1);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(line, want, len);
}

static void expect_no_line(dbl_decoder_t *d)
{
    const char *line;
    size_t len;

    assert_int_equal(dbl_decoder_next(d, &line, &len), 0);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_line_returned_without_newline(void **state)
{
    feed_str(*state, "{\"op\":\"status\"}\n");
    expect_line(*state, "{\"op\":\"status\"}");
    expect_no_line(*state);
}

static void test_no_line_before_newline(void **state)
{
    feed_str(*state, "{\"op\":");
    expect_no_line(*state);
}

static void test_line_split_across_feeds(void **state)
{
    feed_str(*state, "ab");
    expect_no_line(*state);
    feed_str(*state, "cd");
    expect_no_line(*state);
    feed_str(*state, "e\nf");
    expect_line(*state, "abcde");
    expect_no_line(*state);
}

static void test_many_lines_in_one_feed(void **state)
{
    feed_str(*state, "one\ntwo\nthree\nfour");
    expect_line(*state, "one");
    expect_line(*state, "two");
    expect_line(*state, "three");
    expect_no_line(*state);
    feed_str(*state, "\n");
    expect_line(*state, "four");
}

static void test_byte_at_a_time_multi_line_stream(void **state)
{
    static const char stream[] = "{\"id\":1}\r\n\n{\"id\":2}\nx\n";
    static const char *const want[] = {"{\"id\":1}", "", "{\"id\":2}", "x"};
    size_t got = 0;

    for (size_t i = 0; i < sizeof(stream) - 1; i++) {
        const char *line;
        size_t len;
        int rc;

        assert_int_equal(dbl_decoder_feed(*state, &stream[i], 1), 0);
        while ((rc = dbl_decoder_next(*state, &line, &len)) == 1) {
            assert_true(got < 4);
            assert_int_equal(len, strlen(want[got]));
            assert_memory_equal(line, want[got], len);
            got++;
        }
        assert_int_equal(rc, 0);
    }
    assert_int_equal(got, 4);
}

static void test_lines_fed_without_pulling_are_kept_in_order(void **state)
{
    feed_str(*state, "a\n");
    feed_str(*state, "b\nc");
    feed_str(*state, "\n");
    expect_line(*state, "a");
    expect_line(*state, "b");
    expect_line(*state, "c");
    expect_no_line(*state);
}

static void test_crlf_stripped(void **state)
{
    feed_str(*state, "abc\r\n");
    expect_line(*state, "abc");
}

static void test_crlf_split_between_feeds_stripped(void **state)
{
    feed_str(*state, "abc\r");
    expect_no_line(*state);
    feed_str(*state, "\n");
    expect_line(*state, "abc");
}

static void test_cr_inside_line_kept(void **state)
{
    feed_str(*state, "a\rb\r\r\n");
    expect_line(*state, "a\rb\r");
}

static void test_empty_line_returned_as_zero_length(void **state)
{
    feed_str(*state, "\n\r\n");
    expect_line(*state, "");
    expect_line(*state, "");
    expect_no_line(*state);
}

static void test_returned_line_is_nul_terminated(void **state)
{
    const char *line;
    size_t len;

    feed_str(*state, "ab\r\ncd\n");
    assert_int_equal(dbl_decoder_next(*state, &line, &len), 1);
    assert_string_equal(line, "ab");
    assert_int_equal(dbl_decoder_next(*state, &line, &len), 1);
    assert_string_equal(line, "cd");
}

static void test_line_at_limit_accepted(void **state)
{
    char *s = repeat('x', SMALL_LIMIT);

    feed_str(*state, s);
    feed_str(*state, "\n");
    expect_line(*state, s);
    free(s);
}

static void test_line_at_limit_with_crlf_accepted(void **state)
{
    char *s = repeat('x', SMALL_LIMIT);

    feed_str(*state, s);
    feed_str(*state, "\r");
    feed_str(*state, "\n");
    expect_line(*state, s);
    free(s);
}

static void test_line_over_limit_poisons_decoder(void **state)
{
    char *s = repeat('x', SMALL_LIMIT + 1);
    const char *line;
    size_t len;

    feed_str(*state, s); /* may still end in '\r' */
    assert_int_equal(dbl_decoder_feed(*state, "\n", 1), -E2BIG);
    assert_int_equal(dbl_decoder_next(*state, &line, &len), -E2BIG);
    free(s);
}

static void test_complete_line_over_limit_in_one_feed_rejected(void **state)
{
    char *s = repeat('x', SMALL_LIMIT + 1);

    s[SMALL_LIMIT] = '\n'; /* SMALL_LIMIT bytes, newline: fine */
    assert_int_equal(dbl_decoder_feed(*state, s, SMALL_LIMIT + 1), 0);
    free(s);
    s = repeat('y', SMALL_LIMIT + 2);
    s[SMALL_LIMIT + 1] = '\n'; /* one byte too many */
    assert_int_equal(dbl_decoder_feed(*state, s, SMALL_LIMIT + 2), -E2BIG);
    free(s);
}

static void test_unfinished_line_over_limit_rejected_before_newline(void **state)
{
    char *s = repeat('x', SMALL_LIMIT + 2);

    assert_int_equal(dbl_decoder_feed(*state, s, SMALL_LIMIT + 1), 0);
    assert_int_equal(dbl_decoder_feed(*state, s, 1), -E2BIG);
    free(s);
}

static void test_overflow_is_sticky(void **state)
{
    const char *line;
    size_t len;
    char *s = repeat('x', SMALL_LIMIT + 2);

    assert_int_equal(dbl_decoder_feed(*state, s, strlen(s)), -E2BIG);
    assert_int_equal(dbl_decoder_feed(*state, "ok\n", 3), -E2BIG);
    assert_int_equal(dbl_decoder_next(*state, &line, &len), -E2BIG);
    free(s);
}

static void test_overflow_releases_buffer(void **state)
{
    dbl_decoder_t *d = *state;
    char *s = repeat('x', SMALL_LIMIT + 2);

    feed_str(d, "partial");
    assert_int_equal(dbl_decoder_feed(d, s, strlen(s)), -E2BIG);
    assert_null(d->buf);
    assert_int_equal(d->cap, 0);
    free(s);
}

static void test_slow_stream_of_long_input_stays_bounded(void **state)
{
    dbl_decoder_t d;
    int rc = 0;
    size_t fed = 0;

    dbl_decoder_init(&d, DBL_PROTO_MAX_LINE);
    /* A peer that never sends '\n': fed a byte at a time, it is cut off right
     * past the limit and we never held more than the limit plus one. */
    while (rc == 0 && fed < 2 * DBL_PROTO_MAX_LINE) {
        rc = dbl_decoder_feed(&d, "a", 1);
        fed++;
        if (rc == 0)
            assert_true(d.len - d.start <= DBL_PROTO_MAX_LINE + 1);
    }
    assert_int_equal(rc, -E2BIG);
    assert_int_equal(fed, DBL_PROTO_MAX_LINE + 2);
    dbl_decoder_free(&d);
    (void)state;
}

static void test_buffer_compacts_instead_of_growing(void **state)
{
    dbl_decoder_t *d = *state;
    size_t cap = 0;

    /* A long run of lines, each pulled as soon as it is complete and each
     * fed in two halves so the buffer is never fully drained: the buffer
     * must reuse its space rather than grow with the stream. */
    feed_str(d, "head");
    for (int i = 0; i < 10000; i++) {
        feed_str(d, "\nline-");
        feed_str(d, "body");
        expect_line(d, i == 0 ? "head" : "line-body");
        if (i == 0)
            cap = d->cap;
    }
    assert_int_equal(d->cap, cap);
}

static void test_buffer_compacts_when_start_passes_half(void **state)
{
    dbl_decoder_t d;
    char *s = repeat('x', 3000);

    dbl_decoder_init(&d, 0);
    feed_str(&d, s);
    feed_str(&d, "\nab");
    expect_line(&d, s);
    assert_true(d.start > d.cap / 2);
    assert_true(d.len + 1 <= d.cap);
    feed_str(&d, "c"); /* fits without moving, but half the buffer is dead */
    assert_int_equal(d.start, 0);
    assert_int_equal(d.len, 3);
    assert_memory_equal(d.buf, "abc", 3);
    dbl_decoder_free(&d);
    free(s);
    (void)state;
}

static void test_idle_decoder_gives_back_large_buffer(void **state)
{
    dbl_decoder_t d;
    size_t n = 200 * 100; /* 200 KiB-ish read of 99-byte lines */
    char *s = malloc(n * 10);
    char want[100];

    assert_non_null(s);
    n *= 10;
    for (size_t i = 0; i < n; i++)
        s[i] = (i % 100 == 99) ? '\n' : 'x';
    memset(want, 'x', 99);
    want[99] = '\0';
    dbl_decoder_init(&d, 0);
    assert_int_equal(dbl_decoder_feed(&d, s, n), 0);
    assert_true(d.cap >= n);
    for (size_t i = 0; i < n / 100; i++)
        expect_line(&d, want);
    expect_no_line(&d);
    feed_str(&d, "x");
    assert_true(d.cap <= 64 * 1024);
    dbl_decoder_free(&d);
    free(s);
    (void)state;
}

static void test_zero_limit_means_protocol_default(void **state)
{
    dbl_decoder_t d;

    dbl_decoder_init(&d, 0);
    assert_int_equal(d.max_line, DBL_PROTO_MAX_LINE);
    dbl_decoder_free(&d);
    (void)state;
}

static void test_free_leaves_decoder_reusable_after_init(void **state)
{
    dbl_decoder_t d;

    dbl_decoder_init(&d, SMALL_LIMIT);
    dbl_decoder_free(&d); /* never fed: nothing to free, must not crash */
    dbl_decoder_init(&d, SMALL_LIMIT);
    feed_str(&d, "again\n");
    expect_line(&d, "again");
    dbl_decoder_free(&d);
    dbl_decoder_free(&d); /* twice is harmless */
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_line_returned_without_newline),
        T(test_no_line_before_newline),
        T(test_line_split_across_feeds),
        T(test_many_lines_in_one_feed),
        T(test_byte_at_a_time_multi_line_stream),
        T(test_lines_fed_without_pulling_are_kept_in_order),
        T(test_crlf_stripped),
        T(test_crlf_split_between_feeds_stripped),
        T(test_cr_inside_line_kept),
        T(test_empty_line_returned_as_zero_length),
        T(test_returned_line_is_nul_terminated),
        T(test_line_at_limit_accepted),
        T(test_line_at_limit_with_crlf_accepted),
        T(test_line_over_limit_poisons_decoder),
        T(test_complete_line_over_limit_in_one_feed_rejected),
        T(test_unfinished_line_over_limit_rejected_before_newline),
        T(test_overflow_is_sticky),
        T(test_overflow_releases_buffer),
        T(test_buffer_compacts_instead_of_growing),
        cmocka_unit_test(test_slow_stream_of_long_input_stays_bounded),
        cmocka_unit_test(test_buffer_compacts_when_start_passes_half),
        cmocka_unit_test(test_idle_decoder_gives_back_large_buffer),
        cmocka_unit_test(test_zero_limit_means_protocol_default),
        cmocka_unit_test(test_free_leaves_decoder_reusable_after_init),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
