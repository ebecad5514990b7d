/* Whose container is it, and is that daemon provably dead
 * (daemon/runtime/dk_owner.c): only a pid looked up in the boot and pid
 * namespace it was taken in proves anything; labels round-trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(verdicts),
        cmocka_unit_test(labels_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
