/* The pool and slot state machine (daemon/pool/pool.c), driven directly: the
 * tests pass the time in and, through a recording fake engine
 * (fake_engine.h), complete each create, drop or rotate when and how they
 * choose. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fake_engine.h"
#include "log.h"
#include "pool.h"

#define T0 1000u /* an arbitrary monotonic "now" */

#define calls(fe, op) fake_count(fe, op, NULL, false)
#define pending(fe, op) fake_count(fe, op, NULL, true)
#define pending_on(fe, s, op) fake_count(fe, op, s, true)

/* ---- Fixture ------------------------------------------------------------- */

typedef struct fixture fixture_t;

typedef struct waiter {
    pool_waiter_t w;
    fixture_t *fx;
    slot_t *got;
    int served_as;     /* 1 for the first waiter served, 2 for the next… */
    bool refuse_lease; /* give the slot straight back, as ops.c does on ENOMEM */
} waiter_t;

struct fixture {
    fake_engine_t fe;
    pool_limits_t limits;
    pool_t *pools[2];
    int npools;
    waiter_t waiters[3]; /* here, not on a test's stack: teardown outlives it */
    int served;
};

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    pool_limits_init(&fx->limits, 200);
    fx->limits.max_creating = 64; /* out of the way unless a test is about it */
    *state = fx;
    return 0;
}

static pool_t *new_pool(fixture_t *fx, int min_ready, int max_total)
{
    static const char *const prefixes[] = {"a_", "b_"};
    assert_true(fx->npools < 2);
    pool_t *p = pool_new(&fx->limits, "postgres", "default", prefixes[fx->npools], min_ready,
                         max_total, &fake_engine_ops, &fx->fe);
    assert_non_null(p);
    p->max_parallel = 16; /* out of the way unless a test is about it */
    fx->pools[fx->npools++] = p;
    return p;
}

/* Every slot sits on the list of its state; every slot with work in flight
 * has exactly one matching call pending and nothing else does; the global
 * total is the sum over pools. */
static void check_invariants(const fixture_t *fx)
{
    /* The call a slot in each state waits for; -1: none. */
    static const int op_of[SLOT__COUNT] = {
        [SLOT_CREATING] = OP_CREATE, [SLOT_READY] = -1,          [SLOT_LEASED] = -1,
        [SLOT_ROTATING] = OP_ROTATE, [SLOT_DROPPING] = OP_DROP, [SLOT_FAILED] = -1,
    };
    int total = 0, busy[OP__COUNT] = {0};
    for (int i = 0; i < fx->npools; i++) {
        const pool_t *p = fx->pools[i];
        for (int st = 0; st < SLOT__COUNT; st++) {
            size_t n = 0;
            const list_node_t *it;
            for (it = p->slots[st].head.next; it != &p->slots[st].head; it = it->next, n++) {
                const slot_t *s = list_entry(it, slot_t, node);
                assert_int_equal(s->state, st);
                assert_ptr_equal(s->pool, p);
                for (int op = 0; op < OP__COUNT; op++)
                    assert_int_equal(pending_on(&fx->fe, s, (fake_op_t)op), op == op_of[st]);
                if (op_of[st] >= 0)
                    busy[op_of[st]]++;
            }
            assert_int_equal(n, p->slots[st].count);
        }
        total += pool_total(p);
    }
    assert_int_equal(total, fx->limits.total);
    for (int op = 0; op < OP__COUNT; op++)
        assert_int_equal(pending(&fx->fe, (fake_op_t)op), busy[op]);
}

/* The engine reports on the call pending on s. */
static void finish(fixture_t *fx, slot_t *s, int err, uint64_t now)
{
    if (!fake_answer(&fx->fe, s))
        fail_msg("no call pending on %s", s->dbname);
    pool_slot_done(s, err, err ? "boom" : NULL, now);
    check_invariants(fx);
}

#define next_pending(fx, op) fake_next_pending(&(fx)->fe, op)

/* Complete the calls of op pending now, oldest first; not those they start. */
static void finish_all(fixture_t *fx, fake_op_t op, int err, uint64_t now)
{
    int n = pending(&fx->fe, op);
    for (int i = 0, upto = fx->fe.ncalls; i < upto && n > 0; i++) {
        const fake_call_t *c = &fx->fe.calls[i];
        if (c->op == op && c->pending) {
            finish(fx, c->slot, err, now);
            n--;
        }
    }
}

/* The API under test, each step followed by the invariant check. */
static void set_up(fixture_t *fx, pool_t *p, bool up, uint64_t now)
{
    pool_set_up(p, up, now);
    check_invariants(fx);
}

static void refill(fixture_t *fx, pool_t *p, uint64_t now)
{
    pool_refill(p, now);
    check_invariants(fx);
}

static slot_t *take(fixture_t *fx, pool_t *p)
{
    slot_t *s = pool_take(p);
    check_invariants(fx);
    return s;
}

static void give_back(fixture_t *fx, slot_t *s, bool clean, uint64_t now)
{
    pool_give_back(s, clean, now);
    check_invariants(fx);
}

static void drain(fixture_t *fx, pool_t *p, uint64_t now)
{
    pool_drain(p, now);
    check_invariants(fx);
}

static void on_served(pool_waiter_t *w, slot_t *s)
{
    waiter_t *wt = w->ud;
    assert_int_equal(s->state, SLOT_LEASED);
    assert_null(w->pool); /* no longer queued */
    wt->got = s;
    wt->served_as = ++wt->fx->served;
    if (wt->refuse_lease)
        pool_give_back(s, false, T0);
}

static waiter_t *wait_for(fixture_t *fx, pool_t *p, int i)
{
    waiter_t *wt = &fx->waiters[i];
    wt->fx = fx;
    pool_wait(p, &wt->w, on_served, wt);
    check_invariants(fx);
    return wt;
}

/* A pool that is up with n READY slots. */
static pool_t *ready_pool(fixture_t *fx, int n, int max_total)
{
    pool_t *p = new_pool(fx, n, max_total);
    set_up(fx, p, true, T0);
    finish_all(fx, OP_CREATE, 0, T0);
    assert_int_equal(pool_count(p, SLOT_READY), n);
    return p;
}

/* Wind down as the daemon does at shutdown: pools down, leases returned,
 * everything drained, every call answered; then nothing may be left. */
static int teardown(void **state)
{
    fixture_t *fx = *state;
    memset(fx->fe.refuse, 0, sizeof fx->fe.refuse);
    for (int i = 0; i < fx->npools; i++)
        set_up(fx, fx->pools[i], false, T0);
    for (int round = 0; round < 10 && fx->limits.total > 0; round++) {
        for (int i = 0; i < fx->npools; i++) {
            pool_t *p = fx->pools[i];
            while (pool_count(p, SLOT_LEASED))
                give_back(fx, list_entry(list_first(&p->slots[SLOT_LEASED]), slot_t, node),
                          false, T0);
            drain(fx, p, T0);
        }
        for (int op = 0; op < OP__COUNT; op++)
            finish_all(fx, (fake_op_t)op, 0, T0);
    }
    assert_int_equal(fx->limits.total, 0);
    for (int i = 0; i < fx->npools; i++)
        pool_free(fx->pools[i]);
    assert_true(list_empty(&fx->limits.pools));
    free(fx);
    return 0;
}

/* ---- Refill -------------------------------------------------------------- */

static void test_refill_creates_up_to_min_ready(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 3, 10);

    set_up(fx, p, true, T0);
    assert_int_equal(pending(&fx->fe, OP_CREATE), 3);
    finish_all(fx, OP_CREATE, 0, T0);
    refill(fx, p, T0);
    assert_int_equal(pool_count(p, SLOT_READY), 3);
    assert_int_equal(calls(&fx->fe, OP_CREATE), 3);
}

static void test_refill_names_slots_from_prefix_and_sequence(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 2, 10);

    set_up(fx, p, true, T0);
    assert_string_equal(fx->fe.calls[0].slot->dbname, "a_1");
    assert_string_equal(fx->fe.calls[1].slot->dbname, "a_2");
}

static void test_refill_never_exceeds_max_total(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = ready_pool(fx, 3, 3);
    p->min_ready = 5;

    refill(fx, p, T0);
    assert_non_null(take(fx, p));
    assert_non_null(take(fx, p));
    refill(fx, p, T0);
    assert_int_equal(calls(&fx->fe, OP_CREATE), 3);
    assert_int_equal(pool_total(p), 3);
}

/* Two pools of one kind (max_total 10) brought up in turn; each then has
 * this many creates in flight. */
static void two_pools_up(fixture_t *fx, int min_ready, pool_t **a, pool_t **b, int creating_a,
                         int creating_b)
{
    *a = new_pool(fx, min_ready, 10);
    *b = new_pool(fx, min_ready, 10);
    set_up(fx, *a, true, T0);
    set_up(fx, *b, true, T0);
    assert_int_equal(pool_count(*a, SLOT_CREATING), creating_a);
    assert_int_equal(pool_count(*b, SLOT_CREATING), creating_b);
}

static void test_refill_respects_global_limit_across_pools(void **state)
{
    fixture_t *fx = *state;
    fx->limits.max = 3;
    pool_t *a, *b;
    two_pools_up(fx, 2, &a, &b, 2, 1);
    finish_all(fx, OP_CREATE, 0, T0);
    refill(fx, b, T0);
    assert_int_equal(fx->limits.total, 3);
}

static void test_room_freed_in_one_pool_is_used_by_another(void **state)
{
    fixture_t *fx = *state;
    fx->limits.max = 3;
    pool_t *a = ready_pool(fx, 2, 10);
    pool_t *b = new_pool(fx, 2, 10);
    set_up(fx, b, true, T0);
    assert_int_equal(pool_count(b, SLOT_CREATING), 1);

    set_up(fx, a, false, T0);
    drain(fx, a, T0);
    assert_int_equal(pool_count(b, SLOT_CREATING), 1); /* dropping still counts */
    finish_all(fx, OP_DROP, 0, T0);
    assert_int_equal(pool_count(b, SLOT_CREATING), 2);
    assert_int_equal(pool_total(a), 0);
}

static void test_at_most_max_parallel_creates_in_flight(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 5, 10);
    p->max_parallel = 2;

    set_up(fx, p, true, T0);
    assert_int_equal(pending(&fx->fe, OP_CREATE), 2);
    finish(fx, next_pending(fx, OP_CREATE), 0, T0);
    assert_int_equal(pending(&fx->fe, OP_CREATE), 2); /* the next one started */
    while (next_pending(fx, OP_CREATE)) {
        assert_true(pending(&fx->fe, OP_CREATE) <= 2);
        finish(fx, next_pending(fx, OP_CREATE), 0, T0);
    }
    assert_int_equal(pool_count(p, SLOT_READY), 5);
    assert_int_equal(calls(&fx->fe, OP_CREATE), 5);
}

/* Pools of one kind share a server: past max_creating they wait, except
 * that every pool may always have one create of its own in flight. */
static void test_pools_of_a_kind_share_the_creates_in_flight(void **state)
{
    fixture_t *fx = *state;
    fx->limits.max_creating = 2;
    pool_t *a, *b;
    two_pools_up(fx, 4, &a, &b, 2, 1); /* b: its own one */
    while (next_pending(fx, OP_CREATE)) {
        assert_true(pool_count(a, SLOT_CREATING) + pool_count(b, SLOT_CREATING) <= 3);
        assert_true(pool_count(b, SLOT_CREATING) >= 1 || pool_count(b, SLOT_READY) == 4);
        finish(fx, next_pending(fx, OP_CREATE), 0, T0);
    }
    assert_int_equal(pool_count(a, SLOT_READY), 4);
    assert_int_equal(pool_count(b, SLOT_READY), 4);
}

static void test_down_pool_does_not_refill(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 3, 10); /* pools start down */

    refill(fx, p, T0);
    assert_int_equal(fx->fe.ncalls, 0);
    set_up(fx, p, true, T0);
    set_up(fx, p, false, T0);
    finish_all(fx, OP_CREATE, 0, T0);
    assert_non_null(take(fx, p));
    refill(fx, p, T0);
    assert_int_equal(calls(&fx->fe, OP_CREATE), 3);
}

static void test_create_refused_by_engine_frees_slot_without_retrying(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 3, 10);
    fx->fe.refuse[OP_CREATE] = true;

    set_up(fx, p, true, T0);
    assert_int_equal(calls(&fx->fe, OP_CREATE), 1);
    assert_int_equal(pool_total(p), 0);
    refill(fx, p, T0 + 1); /* the next tick tries once more */
    assert_int_equal(calls(&fx->fe, OP_CREATE), 2);
    fx->fe.refuse[OP_CREATE] = false;
    refill(fx, p, T0 + 2);
    assert_int_equal(pending(&fx->fe, OP_CREATE), 3);
}

/* ---- Take and wait ------------------------------------------------------- */

static void test_take_returns_null_when_nothing_is_ready(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 2, 10);

    assert_null(take(fx, p));
    set_up(fx, p, true, T0);
    assert_null(take(fx, p)); /* still being created */
}

static void test_take_returns_oldest_ready_slot_first(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 3, 10);
    set_up(fx, p, true, T0);
    slot_t *s1 = fx->fe.calls[0].slot, *s2 = fx->fe.calls[1].slot, *s3 = fx->fe.calls[2].slot;

    finish(fx, s2, 0, T0);
    finish(fx, s3, 0, T0);
    finish(fx, s1, 0, T0);
    assert_ptr_equal(take(fx, p), s2);
    assert_ptr_equal(take(fx, p), s3);
    assert_ptr_equal(take(fx, p), s1);
    assert_int_equal(s1->state, SLOT_LEASED);
    assert_int_equal(pool_count(p, SLOT_LEASED), 3);
}

static void test_waiters_raise_refill_target(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = ready_pool(fx, 1, 10);
    assert_non_null(take(fx, p));

    wait_for(fx, p, 0);
    wait_for(fx, p, 1);
    refill(fx, p, T0);
    assert_int_equal(pending(&fx->fe, OP_CREATE), 3); /* min_ready 1 + 2 waiting */
}

static void test_waiters_are_served_first_come_first_served(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 0, 10);
    set_up(fx, p, true, T0);
    waiter_t *w1 = wait_for(fx, p, 0), *w2 = wait_for(fx, p, 1);
    refill(fx, p, T0);
    slot_t *s1 = fx->fe.calls[0].slot, *s2 = fx->fe.calls[1].slot;

    finish(fx, s2, 0, T0); /* the later create finishes first */
    assert_ptr_equal(w1->got, s2);
    assert_null(w2->got);
    finish(fx, s1, 0, T0);
    assert_ptr_equal(w2->got, s1);
    assert_int_equal(w1->served_as, 1);
    assert_int_equal(w2->served_as, 2);
    assert_int_equal(pool_count(p, SLOT_READY), 0);
}

static void test_cancelled_waiter_is_not_served(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 0, 10);
    set_up(fx, p, true, T0);
    waiter_t *w1 = wait_for(fx, p, 0), *w2 = wait_for(fx, p, 1);
    refill(fx, p, T0);

    pool_cancel_wait(&w1->w);
    pool_cancel_wait(&w1->w); /* twice is harmless */
    finish(fx, next_pending(fx, OP_CREATE), 0, T0);
    assert_null(w1->got);
    assert_non_null(w2->got);
    finish(fx, next_pending(fx, OP_CREATE), 0, T0);
    assert_null(w1->got);
    assert_int_equal(pool_count(p, SLOT_READY), 1);
}

static void test_waiter_that_gives_slot_straight_back_leaves_pool_consistent(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 0, 10);
    set_up(fx, p, true, T0);
    waiter_t *w = wait_for(fx, p, 0);
    w->refuse_lease = true;
    refill(fx, p, T0);

    slot_t *s = next_pending(fx, OP_CREATE);
    finish(fx, s, 0, T0);
    assert_ptr_equal(w->got, s);
    assert_int_equal(s->state, SLOT_DROPPING);
    assert_int_equal(pending(&fx->fe, OP_CREATE), 0); /* min_ready 0, nobody waits */
}

/* ---- Giving back --------------------------------------------------------- */

static void test_dirty_give_back_drops_slot_and_creates_replacement(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = ready_pool(fx, 1, 4);
    slot_t *s = take(fx, p);

    give_back(fx, s, false, T0);
    assert_int_equal(s->state, SLOT_DROPPING);
    assert_int_equal(pending_on(&fx->fe, s, OP_DROP), 1);
    assert_int_equal(pending(&fx->fe, OP_CREATE), 1);
    finish(fx, s, 0, T0);
    assert_int_equal(p->counters.dropped, 1);
    assert_int_equal(pool_total(p), 1);
}

static void test_clean_give_back_rotates_slot_back_to_ready(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = ready_pool(fx, 1, 4);
    slot_t *s = take(fx, p);
    s->lease = &fx; /* anything: the pool must forget it */

    give_back(fx, s, true, T0);
    assert_null(s->lease);
    assert_int_equal(s->state, SLOT_ROTATING);
    assert_int_equal(pending(&fx->fe, OP_CREATE), 0); /* rotating counts as on its way */
    finish(fx, s, 0, T0);
    assert_int_equal(s->state, SLOT_READY);
    assert_int_equal(p->counters.rotated, 1);
    assert_ptr_equal(take(fx, p), s);
}

static void test_rotated_slot_goes_to_first_waiter(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = ready_pool(fx, 1, 1);
    slot_t *s = take(fx, p);
    waiter_t *w = wait_for(fx, p, 0);

    give_back(fx, s, true, T0);
    finish(fx, s, 0, T0);
    assert_ptr_equal(w->got, s);
}

static void test_failed_rotate_drops_slot(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = ready_pool(fx, 1, 4);
    slot_t *s = take(fx, p);

    give_back(fx, s, true, T0);
    finish(fx, s, -EIO, T0);
    assert_int_equal(s->state, SLOT_DROPPING);
    assert_int_equal(pending(&fx->fe, OP_CREATE), 1);
    assert_int_equal(p->counters.rotated, 0);
}

static void test_rotate_refused_by_engine_drops_slot(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = ready_pool(fx, 1, 4);
    slot_t *s = take(fx, p);
    fx->fe.refuse[OP_ROTATE] = true;

    give_back(fx, s, true, T0);
    assert_int_equal(s->state, SLOT_DROPPING);
    assert_int_equal(pending(&fx->fe, OP_CREATE), 1);
}

static void test_clean_give_back_to_down_pool_drops_slot(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = ready_pool(fx, 1, 4);
    slot_t *s = take(fx, p);
    set_up(fx, p, false, T0);

    give_back(fx, s, true, T0);
    assert_int_equal(calls(&fx->fe, OP_ROTATE), 0);
    assert_int_equal(s->state, SLOT_DROPPING);
}

static void test_drop_refused_by_engine_forgets_slot(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = ready_pool(fx, 1, 4);
    slot_t *s = take(fx, p);
    fx->fe.refuse[OP_DROP] = true;

    give_back(fx, s, false, T0);
    assert_int_equal(pool_count(p, SLOT_DROPPING), 0);
    assert_int_equal(p->counters.drop_failures, 1);
    assert_int_equal(pool_total(p), 1); /* just the replacement */
}

static void test_failed_drop_is_counted_but_cancelled_drop_is_not(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = ready_pool(fx, 2, 4);
    slot_t *s1 = take(fx, p), *s2 = take(fx, p);
    set_up(fx, p, false, T0);

    give_back(fx, s1, false, T0);
    give_back(fx, s2, false, T0);
    finish(fx, s1, -EIO, T0);
    finish(fx, s2, -ECANCELED, T0);
    assert_int_equal(p->counters.drop_failures, 1);
    assert_int_equal(p->counters.dropped, 0);
    assert_int_equal(pool_total(p), 0);
}

/* ---- Failed creates and back-off ----------------------------------------- */

static void test_failed_create_marks_slot_failed_and_counts(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 1, 4);
    set_up(fx, p, true, T0);
    slot_t *s = next_pending(fx, OP_CREATE);

    finish(fx, s, -EIO, T0);
    assert_int_equal(s->state, SLOT_FAILED);
    assert_int_equal(p->counters.create_failures, 1);
    assert_int_equal(p->counters.created, 0);
    assert_string_equal(p->last_error, "boom");
}

static void test_no_create_before_backoff_passes(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 1, 4);
    set_up(fx, p, true, T0);

    finish(fx, next_pending(fx, OP_CREATE), -EIO, T0);
    assert_int_equal(p->retry_at_ms, T0 + 500);
    refill(fx, p, T0 + 499);
    assert_int_equal(calls(&fx->fe, OP_CREATE), 1);
    refill(fx, p, T0 + 500);
    assert_int_equal(calls(&fx->fe, OP_CREATE), 2);
}

static void test_failed_slot_is_dropped_when_backoff_passes(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 1, 4);
    set_up(fx, p, true, T0);
    slot_t *s = next_pending(fx, OP_CREATE);
    finish(fx, s, -EIO, T0);

    refill(fx, p, T0 + 100);
    assert_int_equal(pool_count(p, SLOT_FAILED), 1);
    refill(fx, p, T0 + 500);
    assert_int_equal(s->state, SLOT_DROPPING);
    finish(fx, s, 0, T0 + 500);
    assert_int_equal(pool_count(p, SLOT_FAILED), 0);
    assert_int_equal(p->counters.dropped, 1);
}

static void test_backoff_doubles_up_to_a_cap(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 1, 4);
    static const uint64_t want[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
    uint64_t now = T0;
    set_up(fx, p, true, now);

    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        finish(fx, next_pending(fx, OP_CREATE), -EIO, now);
        assert_int_equal(p->backoff_ms, want[i]);
        assert_int_equal(p->retry_at_ms, now + want[i]);
        now = p->retry_at_ms;
        refill(fx, p, now);
        finish_all(fx, OP_DROP, 0, now);
    }
}

/* Creates in flight together are one attempt: their failures must not square
 * the back-off (with max_parallel 2 it would reach the cap in 4 rounds, not 7). */
static void test_creates_failing_together_double_backoff_once(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 2, 4);
    set_up(fx, p, true, T0);

    finish_all(fx, OP_CREATE, -EIO, T0);
    assert_int_equal(p->backoff_ms, 500);
    assert_int_equal(p->retry_at_ms, T0 + 500);
    refill(fx, p, T0 + 500);
    finish_all(fx, OP_CREATE, -EIO, T0 + 510);
    assert_int_equal(p->backoff_ms, 1000);
    assert_int_equal(p->retry_at_ms, T0 + 1510);
}

static void test_successful_create_resets_backoff(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 1, 4);
    set_up(fx, p, true, T0);
    finish(fx, next_pending(fx, OP_CREATE), -EIO, T0);
    refill(fx, p, T0 + 500);

    finish(fx, next_pending(fx, OP_CREATE), 0, T0 + 600);
    assert_int_equal(p->backoff_ms, 0);
    assert_string_equal(p->last_error, "");
    assert_non_null(take(fx, p));
    refill(fx, p, T0 + 700);
    finish(fx, next_pending(fx, OP_CREATE), -EIO, T0 + 800);
    assert_int_equal(p->backoff_ms, 500);
}

static void test_pool_coming_up_retries_at_once(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 1, 4);
    set_up(fx, p, true, T0);
    finish(fx, next_pending(fx, OP_CREATE), -ECANCELED, T0);
    set_up(fx, p, false, T0);

    set_up(fx, p, true, T0 + 1);
    assert_int_equal(pool_count(p, SLOT_FAILED), 0);
    assert_int_equal(pending(&fx->fe, OP_CREATE), 1);
}

/* ---- Drain, counters, names, aborts -------------------------------------- */

static void test_drain_drops_ready_and_failed_slots_only(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = new_pool(fx, 4, 10);
    set_up(fx, p, true, T0);
    slot_t *c[4];
    for (int i = 0; i < 4; i++)
        c[i] = fx->fe.calls[i].slot;
    finish(fx, c[0], 0, T0);
    finish(fx, c[1], 0, T0);
    assert_ptr_equal(take(fx, p), c[0]);
    finish(fx, c[2], -EIO, T0); /* back-off: nothing new starts */

    drain(fx, p, T0);
    assert_int_equal(c[0]->state, SLOT_LEASED);
    assert_int_equal(c[1]->state, SLOT_DROPPING);
    assert_int_equal(c[2]->state, SLOT_DROPPING);
    assert_int_equal(c[3]->state, SLOT_CREATING);
}

static void test_counters_count_finished_operations(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = ready_pool(fx, 2, 4);
    give_back(fx, take(fx, p), true, T0);
    finish_all(fx, OP_ROTATE, 0, T0);
    give_back(fx, take(fx, p), false, T0);
    finish_all(fx, OP_DROP, 0, T0);
    finish_all(fx, OP_CREATE, -EIO, T0);

    assert_int_equal(p->counters.created, 2);
    assert_int_equal(p->counters.rotated, 1);
    assert_int_equal(p->counters.dropped, 1);
    assert_int_equal(p->counters.create_failures, 1);
    assert_int_equal(p->counters.drop_failures, 0);
}

static void test_slot_state_names(void **state)
{
    (void)state;
    assert_string_equal(slot_state_name(SLOT_CREATING), "creating");
    assert_string_equal(slot_state_name(SLOT_READY), "ready");
    assert_string_equal(slot_state_name(SLOT_LEASED), "leased");
    assert_string_equal(slot_state_name(SLOT_ROTATING), "rotating");
    assert_string_equal(slot_state_name(SLOT_DROPPING), "dropping");
    assert_string_equal(slot_state_name(SLOT_FAILED), "failed");
    assert_string_equal(slot_state_name(SLOT__COUNT), "?");
}

/* Run f(s) in a child; it must die of SIGABRT. */
static void assert_aborts(void (*f)(slot_t *), slot_t *s)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDERR_FILENO); /* the expected log line is noise here */
        f(s);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
}

static void ready_to_creating(slot_t *s)
{
    slot_set_state(s, SLOT_CREATING);
}

static void report_on_idle_slot(slot_t *s)
{
    pool_slot_done(s, 0, NULL, T0);
}

static void test_impossible_transition_aborts(void **state)
{
    fixture_t *fx = *state;
    pool_t *p = ready_pool(fx, 1, 4);
    slot_t *s = list_entry(list_first(&p->slots[SLOT_READY]), slot_t, node);

    assert_aborts(ready_to_creating, s);
    assert_aborts(report_on_idle_slot, s); /* no call in flight on a READY slot */
}

int main(void)
{
    log_set_level(LOG_ERROR); /* failures the tests provoke would log warnings */
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_refill_creates_up_to_min_ready),
        T(test_refill_names_slots_from_prefix_and_sequence),
        T(test_refill_never_exceeds_max_total),
        T(test_refill_respects_global_limit_across_pools),
        T(test_room_freed_in_one_pool_is_used_by_another),
        T(test_at_most_max_parallel_creates_in_flight),
        T(test_pools_of_a_kind_share_the_creates_in_flight),
        T(test_down_pool_does_not_refill),
        T(test_create_refused_by_engine_frees_slot_without_retrying),
        T(test_take_returns_null_when_nothing_is_ready),
        T(test_take_returns_oldest_ready_slot_first),
        T(test_waiters_raise_refill_target),
        T(test_waiters_are_served_first_come_first_served),
        T(test_cancelled_waiter_is_not_served),
        T(test_waiter_that_gives_slot_straight_back_leaves_pool_consistent),
        T(test_dirty_give_back_drops_slot_and_creates_replacement),
        T(test_clean_give_back_rotates_slot_back_to_ready),
        T(test_rotated_slot_goes_to_first_waiter),
        T(test_failed_rotate_drops_slot),
        T(test_rotate_refused_by_engine_drops_slot),
        T(test_clean_give_back_to_down_pool_drops_slot),
        T(test_drop_refused_by_engine_forgets_slot),
        T(test_failed_drop_is_counted_but_cancelled_drop_is_not),
        T(test_failed_create_marks_slot_failed_and_counts),
        T(test_no_create_before_backoff_passes),
        T(test_failed_slot_is_dropped_when_backoff_passes),
        T(test_backoff_doubles_up_to_a_cap),
        T(test_creates_failing_together_double_backoff_once),
        T(test_successful_create_resets_backoff),
        T(test_pool_coming_up_retries_at_once),
        T(test_drain_drops_ready_and_failed_slots_only),
        T(test_counters_count_finished_operations),
        T(test_slot_state_names),
        T(test_impossible_transition_aborts),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
