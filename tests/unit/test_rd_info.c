/* Reading INFO for the Redis reset (daemon/engine/rd_info.c): the replies
 * below are what redis-server 7.0 sends for INFO persistence keyspace memory,
 * cut to the fields around the ones read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rd_info.h"

#define MEMORY(scripts, libs)                                                                      \
    "# Memory\r\nused_memory:964512\r\nused_memory_scripts_eval:0\r\n"                            \
    "number_of_cached_scripts:" scripts "\r\nnumber_of_functions:0\r\n"                            \
    "number_of_libraries:" libs "\r\nused_memory_vm_functions:32768\r\n\r\n"
#define PERSISTENCE(changes)                                                                       \
    "# Persistence\r\nloading:0\r\nrdb_changes_since_last_save:" changes                           \
    "\r\nrdb_bgsave_in_progress:0\r\n\r\n"

#define STATS(tracked) "# Stats\r\ntotal_commands_processed:12\r\ntracking_total_keys:" tracked "\r\n\r\n"

static const char fresh[] = MEMORY("0", "0") PERSISTENCE("4") STATS("0") "# Keyspace\r\n";

static void a_fresh_server_is_untouched_at_its_mark(void **state)
{
    (void)state;
    assert_true(rd_info_untouched(fresh, 4));
    long long v = 0;
    assert_int_equal(rd_info_int(fresh, "rdb_changes_since_last_save", &v), 0);
    assert_int_equal(v, 4);
}

static void any_write_since_the_mark_is_a_touch(void **state)
{
    (void)state;
    /* a SET then a DEL: no key left, but two changes */
    assert_false(rd_info_untouched(fresh, 2));
}

static void keys_scripts_or_libraries_left_are_a_touch(void **state)
{
    (void)state;
    assert_false(rd_info_untouched(MEMORY("0", "0") PERSISTENCE("4") STATS("0")
                                   "# Keyspace\r\ndb7:keys=1,expires=0,avg_ttl=0\r\n",
                                   4));
    assert_false(rd_info_untouched(MEMORY("1", "0") PERSISTENCE("4") STATS("0") "# Keyspace\r\n", 4));
    assert_false(rd_info_untouched(MEMORY("0", "1") PERSISTENCE("4") STATS("0") "# Keyspace\r\n", 4));
    /* a connection with CLIENT TRACKING read a key: its entry outlives it */
    assert_false(rd_info_untouched(MEMORY("0", "0") PERSISTENCE("4") STATS("1") "# Keyspace\r\n", 4));
}

static void a_reply_missing_a_field_is_a_touch(void **state)
{
    (void)state;
    /* Redis 6: no number_of_libraries; a reply without the keyspace section */
    assert_false(rd_info_untouched("# Memory\r\nnumber_of_cached_scripts:0\r\n" PERSISTENCE("4")
                                   STATS("0") "# Keyspace\r\n",
                                   4));
    assert_false(rd_info_untouched(MEMORY("0", "0") PERSISTENCE("4") STATS("0"), 4));
    assert_false(rd_info_untouched(MEMORY("0", "0") PERSISTENCE("x") STATS("0") "# Keyspace\r\n", 4));
    assert_false(rd_info_untouched(MEMORY("0", "0") PERSISTENCE("4") "# Keyspace\r\n", 4));
    assert_false(rd_info_untouched(NULL, 0));
    long long v;
    /* a field is matched whole, at the start of a line */
    assert_int_equal(rd_info_int(fresh, "number_of", &v), -1);
    assert_int_equal(rd_info_int(fresh, "memory", &v), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_fresh_server_is_untouched_at_its_mark),
        cmocka_unit_test(any_write_since_the_mark_is_a_touch),
        cmocka_unit_test(keys_scripts_or_libraries_left_are_a_touch),
        cmocka_unit_test(a_reply_missing_a_field_is_a_touch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
