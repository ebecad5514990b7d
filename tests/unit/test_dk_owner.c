/* Whose container is it, and is that daemon provably dead
 * (daemon/runtime/dk_owner.c): only a pid looked up in the boot and pid
 * namespace it was taken in proves anything; labels round-trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "dk_owner.h"

static const char *live_pid = "100", *live_start = "555";

static bool fake_start(const char *pid, char *buf, size_t len)
{
    if (strcmp(pid, live_pid) != 0)
        return false;
    snprintf(buf, len, "%s", live_start);
    return true;
}

static dk_owner_t owner(const char *id, const char *boot, const char *ns, const char *pid,
                        const char *start)
{
    dk_owner_t o = {0};
    snprintf(o.id, sizeof o.id, "%s", id);
    snprintf(o.boot, sizeof o.boot, "%s", boot);
    snprintf(o.pidns, sizeof o.pidns, "%s", ns);
    snprintf(o.pid, sizeof o.pid, "%s", pid);
    snprintf(o.start, sizeof o.start, "%s", start);
    snprintf(o.host, sizeof o.host, "h");
    return o;
}

static void verdicts(void **state)
{
    (void)state;
    dk_owner_t me = owner("aaaa", "boot1", "pid:[1]", "1", "1");
    dk_owner_t o = owner("bbbb", "boot1", "pid:[1]", "100", "555");
    assert_int_equal(dk_owner_verdict(&me, &me, fake_start), DK_OWNER_SELF);
    assert_int_equal(dk_owner_verdict(&me, &o, fake_start), DK_OWNER_ALIVE);
    /* The pid reused by a later process: the owner is dead. */
    o = owner("bbbb", "boot1", "pid:[1]", "100", "554");
    assert_int_equal(dk_owner_verdict(&me, &o, fake_start), DK_OWNER_DEAD);
    o = owner("bbbb", "boot1", "pid:[1]", "101", "555");
    assert_int_equal(dk_owner_verdict(&me, &o, fake_start), DK_OWNER_DEAD);
    /* Another pid namespace (a job container), another boot or host: a
     * pid there says nothing here, however dead it looks. */
    o = owner("bbbb", "boot1", "pid:[2]", "101", "555");
    assert_int_equal(dk_owner_verdict(&me, &o, fake_start), DK_OWNER_UNKNOWN);
    o = owner("bbbb", "boot2", "pid:[1]", "101", "555");
    assert_int_equal(dk_owner_verdict(&me, &o, fake_start), DK_OWNER_UNKNOWN);
    /* We could not read our own boot id: we judge nobody. */
    me.boot[0] = '\0';
    o = owner("bbbb", "", "pid:[1]", "101", "555");
    assert_int_equal(dk_owner_verdict(&me, &o, fake_start), DK_OWNER_UNKNOWN);
}

static void labels_round_trip(void **state)
{
    (void)state;
    dk_owner_t me, back;
    assert_int_equal(dk_owner_self(&me), 0);
    assert_int_equal(strlen(me.id), 16);
    json_object *labels = json_object_new_object();
    dk_owner_labels(&me, labels);
    assert_true(dk_owner_from_labels(labels, &back));
    assert_memory_equal(&me, &back, sizeof me);
    /* This very process is alive by its own labels. */
    dk_owner_t judge = me;
    snprintf(judge.id, sizeof judge.id, "other");
    assert_int_equal(dk_owner_verdict(&judge, &back, dk_owner_proc_start), DK_OWNER_ALIVE);
    /* An older dbleased's container: only dblease.daemon. */
    json_object_object_del(labels, "dblease.owner.start");
    assert_false(dk_owner_from_labels(labels, &back));
    json_object_put(labels);
}

/* Field 22 of /proc/PID/stat, not a neighbour that changes as the process
 * grows (vsize, field 23, once made a live daemon look dead). */
static void start_time_is_stable_and_right(void **state)
{
    (void)state;
    char pid[16], before[24], after[24], stat[1024];
    snprintf(pid, sizeof pid, "%ld", (long)getpid());
    assert_true(dk_owner_proc_start(pid, before, sizeof before));
    size_t big = 64u << 20;
    char *grow = malloc(big);
    assert_non_null(grow);
    memset(grow, 1, big);
    assert_true(dk_owner_proc_start(pid, after, sizeof after));
    free(grow);
    assert_string_equal(before, after);
    FILE *f = fopen("/proc/self/stat", "r");
    assert_non_null(f);
    assert_non_null(fgets(stat, sizeof stat, f));
    fclose(f);
    unsigned long long start = 0;
    char *p = strrchr(stat, ')') + 2;
    assert_int_equal(sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
                               "%*d %*d %llu",
                            &start),
                     1);
    char want[24];
    snprintf(want, sizeof want, "%llu", start);
    assert_string_equal(before, want);
    assert_false(dk_owner_proc_start("999999999", after, sizeof after));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(verdicts),
        cmocka_unit_test(labels_round_trip),
        cmocka_unit_test(start_time_is_stable_and_right),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
