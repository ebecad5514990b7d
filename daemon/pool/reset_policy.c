#include "reset_policy.h"

#include <limits.h>
#include <string.h>

void reset_policy_init(reset_policy_t *p)
{
    memset(p, 0, sizeof *p);
    p->probe_every = RESET_PROBE_EVERY;
}

int reset_mode_parse(const char *s, reset_mode_t *out)
{
    static const char *const names[] = {[RESET_AUTO] = "auto", [RESET_DETECT] = "detect",
                                        [RESET_CLONE] = "clone"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (reset_mode_t)i;
            return 0;
        }
    }
    return -1;
}

const char *reset_action_name(reset_action_t a)
{
    static const char *const names[RESET__COUNT] = {
        [RESET_REUSE] = "reused", [RESET_RELOAD] = "reloaded", [RESET_RECLONE] = "recloned",
        [RESET_FLUSH] = "flushed"};
    return a < RESET__COUNT ? names[a] : "?";
}

/* The first sample is the average; later ones move it by the weight. */
static void ewma(double *avg, int *n, double sample)
{
    if (sample < 0)
        sample = 0;
    *avg = *n ? *avg + RESET_EWMA_WEIGHT * (sample - *avg) : sample;
    if (*n < INT_MAX)
        ++*n;
}

double reset_policy_clone_cost(const reset_policy_t *p)
{
    return p->creates ? p->create_ms + (p->drops ? p->drop_ms : 0) : -1;
}

double reset_policy_check_cost(const reset_policy_t *p, bool clean_hint)
{
    double clone = reset_policy_clone_cost(p);
    if (clone < 0 || p->checks < RESET_LEARN_CHECKS)
        return -1;
    if (clean_hint && p->seen[VERDICT_CLEAN])
        return p->check_ms[VERDICT_CLEAN];
    double sum = 0, cost = 0;
    for (int v = 0; v < VERDICT__COUNT; v++) {
        if (!p->seen[v])
            continue;
        sum += p->share[v];
        cost += p->share[v] * (p->check_ms[v] + (v == VERDICT_DIRTY ? clone : 0));
    }
    return sum > 0 ? cost / sum : -1;
}

bool reset_policy_should_check(reset_policy_t *p, reset_mode_t mode, bool clean_hint)
{
    if (mode == RESET_CLONE)
        return false;
    double check = reset_policy_check_cost(p, clean_hint);
    if (mode == RESET_DETECT || check < 0 || check <= reset_policy_clone_cost(p)) {
        p->skipped = 0;
        return true;
    }
    if (++p->skipped >= p->probe_every) {
        p->skipped = 0;
        return true;
    }
    return false;
}

void reset_policy_record(reset_policy_t *p, reset_verdict_t v, double ms)
{
    if (v >= VERDICT__COUNT)
        return;
    for (int k = 0; k < VERDICT__COUNT; k++)
        p->share[k] += RESET_EWMA_WEIGHT * ((k == (int)v ? 1.0 : 0.0) - p->share[k]);
    ewma(&p->check_ms[v], &p->seen[v], ms);
    if (p->checks < INT_MAX)
        p->checks++;
}

void reset_policy_note_create(reset_policy_t *p, double ms)
{
    ewma(&p->create_ms, &p->creates, ms);
}

void reset_policy_note_drop(reset_policy_t *p, double ms)
{
    ewma(&p->drop_ms, &p->drops, ms);
}

reset_action_t reset_action_for(reset_verdict_t v, bool can_reload)
{
    switch (v) {
    case VERDICT_CLEAN:
        return RESET_REUSE;
    case VERDICT_ROWS:
        return can_reload ? RESET_RELOAD : RESET_RECLONE;
    default:
        return RESET_RECLONE;
    }
}
