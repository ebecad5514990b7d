/* The release path's decisions (daemon/pool/reset_policy.c): which verdict
 * leads to which reset, and when the adaptive policy skips the detector:
 * it compares the measured cost of checking with that of a clone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "reset_policy.h"

static void verdicts_map_to_the_cheapest_correct_action(void **state)
{
    (void)state;
    assert_int_equal(reset_action_for(VERDICT_CLEAN, true), RESET_REUSE);
    assert_int_equal(reset_action_for(VERDICT_CLEAN, false), RESET_REUSE);
    assert_int_equal(reset_action_for(VERDICT_ROWS, true), RESET_RELOAD);
    /* no seed rows known, or ENABLE ALWAYS/REPLICA triggers: cannot reload */
    assert_int_equal(reset_action_for(VERDICT_ROWS, false), RESET_RECLONE);
    assert_int_equal(reset_action_for(VERDICT_DIRTY, true), RESET_RECLONE);
}

static void modes_parse_and_unknown_ones_are_refused(void **state)
{
    (void)state;
    reset_mode_t m;
    assert_int_equal(reset_mode_parse("auto", &m), 0);
    assert_int_equal(m, RESET_AUTO);
    assert_int_equal(reset_mode_parse("detect", &m), 0);
    assert_int_equal(m, RESET_DETECT);
    assert_int_equal(reset_mode_parse("clone", &m), 0);
    assert_int_equal(m, RESET_CLONE);
    assert_int_equal(reset_mode_parse("always", &m), -1);
    assert_string_equal(reset_action_name(RESET_RELOAD), "reloaded");
}

/* A pool whose clones cost clone_ms (create + drop, measured). */
static void with_clones(reset_policy_t *p, double create_ms, double drop_ms)
{
    reset_policy_init(p);
    for (int i = 0; i < 4; i++) {
        reset_policy_note_create(p, create_ms);
        reset_policy_note_drop(p, drop_ms);
    }
}

static void clone_mode_never_checks_and_detect_mode_always_does(void **state)
{
    (void)state;
    reset_policy_t p;
    with_clones(&p, 10, 2);
    for (int i = 0; i < 20; i++) {
        assert_false(reset_policy_should_check(&p, RESET_CLONE, true));
        assert_true(reset_policy_should_check(&p, RESET_DETECT, false));
        reset_policy_record(&p, VERDICT_DIRTY, 50);
    }
}

/* Nothing measured yet: check (and learn) on every release. */
static void auto_checks_until_it_has_measured_both_sides(void **state)
{
    (void)state;
    reset_policy_t p;
    reset_policy_init(&p);
    for (int i = 0; i < 10; i++) { /* checks known, no clone measured */
        assert_true(reset_policy_should_check(&p, RESET_AUTO, false));
        reset_policy_record(&p, VERDICT_DIRTY, 500);
    }
    assert_true(reset_policy_check_cost(&p, false) < 0);
    with_clones(&p, 10, 2);
    for (int i = 0; i < RESET_LEARN_CHECKS; i++) { /* clones known, too few checks */
        assert_true(reset_policy_should_check(&p, RESET_AUTO, false));
        reset_policy_record(&p, VERDICT_DIRTY, 500);
    }
    assert_false(reset_policy_should_check(&p, RESET_AUTO, false));
}

/* Every release dirty (an all-DDL suite): the check is wasted on top of
 * the clone, so the policy clones unchecked and probes every
 * probe_every-th release. */
static void all_dirty_stops_checking_and_probes(void **state)
{
    (void)state;
    reset_policy_t p;
    with_clones(&p, 40, 5);
    for (int i = 0; i < RESET_LEARN_CHECKS; i++) {
        assert_true(reset_policy_should_check(&p, RESET_AUTO, false));
        reset_policy_record(&p, VERDICT_DIRTY, 3);
    }
    int checks = 0;
    for (int i = 0; i < 4 * RESET_PROBE_EVERY; i++) {
        if (reset_policy_should_check(&p, RESET_AUTO, false)) {
            checks++;
            reset_policy_record(&p, VERDICT_DIRTY, 3);
        }
    }
    assert_int_equal(checks, 4);
    assert_float_equal(reset_policy_check_cost(&p, false), 48, 0.01);
    assert_float_equal(reset_policy_clone_cost(&p), 45, 0.01);
}

/* A mixed suite where checks are cheap next to a clone: always check. */
static void cheap_checks_are_always_run(void **state)
{
    (void)state;
    reset_policy_t p;
    with_clones(&p, 40, 5);
    const reset_verdict_t mix[] = {VERDICT_CLEAN, VERDICT_ROWS, VERDICT_CLEAN, VERDICT_DIRTY,
                                   VERDICT_ROWS};
    const double ms[] = {4, 20, 4, 3, 20};
    for (int i = 0; i < 50; i++) {
        assert_true(reset_policy_should_check(&p, RESET_AUTO, false));
        reset_policy_record(&p, mix[i % 5], ms[i % 5]);
    }
}

/* The same mix where a check is dearer than a clone (a loaded server, a
 * tiny template): clone instead, and probe. */
static void checks_dearer_than_a_clone_are_skipped(void **state)
{
    (void)state;
    reset_policy_t p;
    with_clones(&p, 8, 2);
    for (int i = 0; i < 10; i++)
        reset_policy_record(&p, i % 2 ? VERDICT_CLEAN : VERDICT_ROWS, i % 2 ? 30 : 60);
    int checks = 0;
    for (int i = 0; i < 2 * RESET_PROBE_EVERY; i++)
        checks += reset_policy_should_check(&p, RESET_AUTO, false);
    assert_int_equal(checks, 2);
}

/* When the suite changes (clean probes after a dirty run), checking
 * resumes: a clean verdict saves a whole clone. */
static void clean_probes_resume_checking(void **state)
{
    (void)state;
    reset_policy_t p;
    with_clones(&p, 40, 5);
    for (int i = 0; i < 10; i++)
        reset_policy_record(&p, VERDICT_DIRTY, 3);
    int n = 0;
    while (!reset_policy_should_check(&p, RESET_AUTO, false))
        n++;
    assert_int_equal(n, RESET_PROBE_EVERY - 1);
    reset_policy_record(&p, VERDICT_CLEAN, 3);
    assert_true(reset_policy_should_check(&p, RESET_AUTO, false));
    assert_true(reset_policy_should_check(&p, RESET_AUTO, false));
}

/* A clean hint is checked while a clean check costs less than a clone,
 * however dirty the pool's other releases are. */
static void a_clean_hint_is_checked_while_a_clean_check_pays(void **state)
{
    (void)state;
    reset_policy_t p;
    with_clones(&p, 40, 5);
    reset_policy_record(&p, VERDICT_CLEAN, 4);
    for (int i = 0; i < 10; i++)
        reset_policy_record(&p, VERDICT_DIRTY, 3);
    assert_true(reset_policy_should_check(&p, RESET_AUTO, true));
    assert_false(reset_policy_should_check(&p, RESET_AUTO, false));
    for (int i = 0; i < 10; i++) /* clean checks got dear */
        reset_policy_record(&p, VERDICT_CLEAN, 200);
    for (int i = 0; i < 10; i++)
        reset_policy_record(&p, VERDICT_DIRTY, 3);
    assert_false(reset_policy_should_check(&p, RESET_AUTO, true));
}

/* Moving averages follow the newest samples. */
static void costs_follow_the_measurements(void **state)
{
    (void)state;
    reset_policy_t p;
    reset_policy_init(&p);
    reset_policy_note_create(&p, 100);
    assert_float_equal(reset_policy_clone_cost(&p), 100, 0.01);
    for (int i = 0; i < 40; i++)
        reset_policy_note_create(&p, 10);
    assert_float_equal(reset_policy_clone_cost(&p), 10, 0.1);
    reset_policy_note_drop(&p, 5);
    assert_float_equal(reset_policy_clone_cost(&p), 15, 0.1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(verdicts_map_to_the_cheapest_correct_action),
        cmocka_unit_test(modes_parse_and_unknown_ones_are_refused),
        cmocka_unit_test(clone_mode_never_checks_and_detect_mode_always_does),
        cmocka_unit_test(auto_checks_until_it_has_measured_both_sides),
        cmocka_unit_test(all_dirty_stops_checking_and_probes),
        cmocka_unit_test(cheap_checks_are_always_run),
        cmocka_unit_test(checks_dearer_than_a_clone_are_skipped),
        cmocka_unit_test(clean_probes_resume_checking),
        cmocka_unit_test(a_clean_hint_is_checked_while_a_clean_check_pays),
        cmocka_unit_test(costs_follow_the_measurements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
