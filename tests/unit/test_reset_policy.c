/* The release path's decisions (daemon/pool/reset_policy.c): which verdict
 * leads to which reset, and when the adaptive policy skips the detector. */
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

static void clone_mode_never_checks_and_detect_mode_always_does(void **state)
{
    (void)state;
    reset_policy_t p;
    reset_policy_init(&p);
    for (int i = 0; i < 20; i++) {
        assert_false(reset_policy_should_check(&p, RESET_CLONE, true));
        assert_true(reset_policy_should_check(&p, RESET_DETECT, false));
        reset_policy_record(&p, VERDICT_DIRTY);
    }
}

/* After dirty_limit dirty verdicts in a row: skip, and probe every
 * probe_every-th release. */
static void auto_stops_checking_after_dirty_runs_and_probes(void **state)
{
    (void)state;
    reset_policy_t p;
    reset_policy_init(&p);
    for (int i = 0; i < RESET_DIRTY_LIMIT; i++) {
        assert_true(reset_policy_should_check(&p, RESET_AUTO, false));
        reset_policy_record(&p, VERDICT_DIRTY);
    }
    int checks = 0;
    for (int i = 0; i < 4 * RESET_PROBE_EVERY; i++) {
        if (reset_policy_should_check(&p, RESET_AUTO, false)) {
            checks++;
            reset_policy_record(&p, VERDICT_DIRTY);
        }
    }
    assert_int_equal(checks, 4);
}

static void a_non_dirty_probe_resumes_checking(void **state)
{
    (void)state;
    reset_policy_t p;
    reset_policy_init(&p);
    for (int i = 0; i < RESET_DIRTY_LIMIT; i++)
        reset_policy_record(&p, VERDICT_DIRTY);
    int n = 0;
    while (!reset_policy_should_check(&p, RESET_AUTO, false))
        n++;
    assert_int_equal(n, RESET_PROBE_EVERY - 1);
    reset_policy_record(&p, VERDICT_ROWS);
    assert_true(reset_policy_should_check(&p, RESET_AUTO, false));
    assert_true(reset_policy_should_check(&p, RESET_AUTO, false));
}

static void a_clean_hint_is_always_checked(void **state)
{
    (void)state;
    reset_policy_t p;
    reset_policy_init(&p);
    for (int i = 0; i < 10; i++)
        reset_policy_record(&p, VERDICT_DIRTY);
    assert_true(reset_policy_should_check(&p, RESET_AUTO, true));
    assert_false(reset_policy_should_check(&p, RESET_AUTO, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(verdicts_map_to_the_cheapest_correct_action),
        cmocka_unit_test(modes_parse_and_unknown_ones_are_refused),
        cmocka_unit_test(clone_mode_never_checks_and_detect_mode_always_does),
        cmocka_unit_test(auto_stops_checking_after_dirty_runs_and_probes),
        cmocka_unit_test(a_non_dirty_probe_resumes_checking),
        cmocka_unit_test(a_clean_hint_is_always_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
