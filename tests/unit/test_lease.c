/* Leases (daemon/pool/lease.c) under re-entry: the holder's hook may end
 * other leases, or the same one again, from inside lease_end, as a session
 * closed by the event it is sent does. Nothing may end twice, be used
 * after it is freed, or be skipped by a walk whose next element went. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dbld.h"
#include "fake_engine.h"
#include "lease.h"
#include "pool.h"

#define N 4

typedef struct fixture {
    dbld_t d;
    fake_engine_t fe;
    pool_t *pool;
    lease_t *leases[N];
    int ends[N]; /* how often each holder heard its lease end */
    lease_end_reason_t why[N];
    /* What the hook does on its first call (as a session closing would). */
    enum { HOOK_NOTHING, HOOK_END_ALL, HOOK_END_NEXT } hook;
    int hooked;
} fixture_t;

static int index_of(fixture_t *fx, const lease_t *l)
{
    for (int i = 0; i < N; i++)
        if (fx->leases[i] == l)
            return i;
    fail_msg("unknown lease %p", (const void *)l);
    return -1;
}

static void on_end(lease_t *l, lease_end_reason_t why, void *ud)
{
    fixture_t *fx = ud;
    int i = index_of(fx, l);
    fx->ends[i]++;
    fx->why[i] = why;
    assert_int_equal(l->state, LEASE_ENDED);
    assert_non_null(l->slot); /* still readable for the event (its kind) */
    if (fx->hooked++)
        return;
    if (fx->hook == HOOK_END_ALL) {
        lease_end(l, LEASE_DISCONNECTED, false); /* again: must be a no-op */
        for (int k = 0; k < N; k++)
            lease_end(fx->leases[k], LEASE_DISCONNECTED, false);
    } else if (fx->hook == HOOK_END_NEXT && i + 1 < N) {
        lease_end(fx->leases[i + 1], LEASE_DISCONNECTED, false);
    }
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    list_init(&fx->d.leases);
    list_init(&fx->d.dead_leases);
    pool_limits_init(&fx->d.limits, 100);
    fx->pool = pool_new(&fx->d.limits, "postgres", "default", "t_", N, N, &fake_engine_ops,
                        &fx->fe);
    pool_set_up(fx->pool, true, 1);
    slot_t *s;
    while ((s = fake_next_pending(&fx->fe, OP_CREATE))) {
        fake_answer(&fx->fe, s);
        pool_slot_done(s, 0, NULL, 1);
    }
    const lease_owner_t owner = {1000, 42, "test", "cmocka"};
    const lease_holder_t holder = {on_end, fx};
    for (int i = 0; i < N; i++) {
        s = pool_take(fx->pool);
        assert_non_null(s);
        fx->leases[i] = lease_new(&fx->d, s, &owner, false, 60);
        assert_non_null(fx->leases[i]);
        lease_set_holder(fx->leases[i], &holder);
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    lease_reap_dead(&fx->d);
    pool_set_up(fx->pool, false, 1);
    while (!list_empty(&fx->d.leases))
        lease_end(list_entry(list_first(&fx->d.leases), lease_t, node), LEASE_SHUTDOWN, false);
    lease_reap_dead(&fx->d);
    for (int round = 0; round < 4; round++) {
        pool_drain(fx->pool, 1);
        for (int op = 0; op < OP__COUNT; op++) {
            slot_t *s;
            while ((s = fake_next_pending(&fx->fe, (fake_op_t)op))) {
                fake_answer(&fx->fe, s);
                pool_slot_done(s, 0, NULL, 1);
            }
        }
    }
    assert_int_equal(pool_total(fx->pool), 0);
    pool_free(fx->pool);
    free(fx);
    return 0;
}

static void assert_each_ended_once(fixture_t *fx)
{
    for (int i = 0; i < N; i++)
        assert_int_equal(fx->ends[i], 1);
    assert_true(list_empty(&fx->d.leases));
    assert_int_equal(fx->d.dead_leases.count, N);
    assert_int_equal(pool_count(fx->pool, SLOT_LEASED), 0);
    assert_int_equal(fake_count(&fx->fe, OP_DROP, NULL, true), N); /* each slot given back once */
}

static void test_hook_ending_every_lease_again_ends_each_once(void **state)
{
    fixture_t *fx = *state;
    fx->hook = HOOK_END_ALL;
    lease_end(fx->leases[0], LEASE_EXPIRED, false);
    assert_each_ended_once(fx);
    assert_int_equal(fx->why[0], LEASE_EXPIRED);
    assert_int_equal(fx->why[1], LEASE_DISCONNECTED);
    assert_int_equal(fx->d.counters.leases_expired, 1);
    assert_int_equal(fx->d.counters.leases_disconnected, N - 1);
}

static bool every(const lease_t *l, const void *arg)
{
    (void)l;
    (void)arg;
    return true;
}

/* The walk's saved next lease is the one the hook ends. */
static void test_walk_survives_a_hook_ending_the_next_lease(void **state)
{
    fixture_t *fx = *state;
    fx->hook = HOOK_END_NEXT;
    lease_end_matching(&fx->d, every, NULL, LEASE_INSTANCE_DOWN);
    assert_each_ended_once(fx);
    assert_int_equal(fx->why[0], LEASE_INSTANCE_DOWN);
    assert_int_equal(fx->why[1], LEASE_DISCONNECTED);
}

static void test_only_expired_leases_are_reaped(void **state)
{
    fixture_t *fx = *state;
    fx->hook = HOOK_END_NEXT; /* ends lease 1 too, though it has time left */
    fx->leases[0]->expires_at = 100;
    fx->leases[2]->expires_at = 100;
    lease_reap_expired(&fx->d, 100);
    assert_int_equal(fx->ends[0], 1);
    assert_int_equal(fx->ends[1], 1);
    assert_int_equal(fx->ends[2], 1);
    assert_int_equal(fx->ends[3], 0);
    assert_ptr_equal(lease_find(&fx->d, fx->leases[3]->id), fx->leases[3]);
    assert_null(lease_find(&fx->d, fx->leases[0]->id)); /* ended: not found */
    assert_int_equal(fx->d.counters.leases_expired, 2);
}

static void test_ended_lease_is_freed_only_by_the_reaper(void **state)
{
    fixture_t *fx = *state;
    lease_end(fx->leases[0], LEASE_RELEASED, true);
    /* Still there for a caller that holds it (ASan would see a free). */
    assert_int_equal(fx->leases[0]->state, LEASE_ENDED);
    lease_end(fx->leases[0], LEASE_RELEASED, true);
    assert_int_equal(fx->ends[0], 1);
    assert_int_equal(fx->d.counters.leases_released, 1);
    assert_int_equal(fake_count(&fx->fe, OP_ROTATE, NULL, true), 1); /* clean: rotated once */
    lease_reap_dead(&fx->d);
    assert_true(list_empty(&fx->d.dead_leases));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hook_ending_every_lease_again_ends_each_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_walk_survives_a_hook_ending_the_next_lease, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_only_expired_leases_are_reaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ended_lease_is_freed_only_by_the_reaper, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
