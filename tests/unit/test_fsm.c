/* The one state-machine helper every daemon object uses (daemon/base/fsm.c):
 * allowed changes pass and are returned, impossible ones abort. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fsm.h"

enum { A, B, C, N };
static const char *const names[N] = {[A] = "a", [B] = "b", [C] = "c"};
static const unsigned allowed[N] = {[A] = FSM_TO(B), [B] = FSM_TO(A) | FSM_TO(C), [C] = 0};
static const fsm_def_t def = {"test", N, names, allowed};

static void allowed_changes_are_returned(void **state)
{
    (void)state;
    assert_int_equal(fsm_step(&def, A, B, "x"), B);
    assert_int_equal(fsm_step(&def, B, C, "x"), C);
    assert_true(fsm_allowed(&def, B, A));
}

static void refused_changes_and_out_of_range_states(void **state)
{
    (void)state;
    assert_false(fsm_allowed(&def, A, C));
    assert_false(fsm_allowed(&def, C, A));
    assert_false(fsm_allowed(&def, -1, A));
    assert_false(fsm_allowed(&def, A, N));
    assert_string_equal(fsm_name(&def, C), "c");
    assert_string_equal(fsm_name(&def, N), "?");
}

/* An impossible change is a daemon bug: it must stop the process, not
 * leave an object in a state nobody planned for. */
static void impossible_change_aborts(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fsm_step(&def, A, C, "x");
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(allowed_changes_are_returned),
        cmocka_unit_test(refused_changes_and_out_of_range_states),
        cmocka_unit_test(impossible_change_aborts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
