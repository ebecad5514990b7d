#include "reset_policy.h"

#include <string.h>

void reset_policy_init(reset_policy_t *p)
{
    memset(p, 0, sizeof *p);
    p->dirty_limit = RESET_DIRTY_LIMIT;
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

bool reset_policy_should_check(reset_policy_t *p, reset_mode_t mode, bool clean_hint)
{
    if (mode == RESET_CLONE)
        return false;
    if (mode == RESET_DETECT || clean_hint || p->dirty_run < p->dirty_limit)
        return true;
    if (++p->skipped >= p->probe_every) {
        p->skipped = 0;
        return true;
    }
    return false;
}

void reset_policy_record(reset_policy_t *p, reset_verdict_t v)
{
    if (v == VERDICT_DIRTY) {
        p->dirty_run++;
    } else {
        p->dirty_run = 0;
        p->skipped = 0;
    }
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
