#include "fsm.h"

#include <stdlib.h>

#include "log.h"

const char *fsm_name(const fsm_def_t *def, int state)
{
    return state >= 0 && state < def->count && def->names[state] ? def->names[state] : "?";
}

bool fsm_allowed(const fsm_def_t *def, int from, int to)
{
    if (from < 0 || from >= def->count || to < 0 || to >= def->count)
        return false;
    return (def->allowed[from] & FSM_TO(to)) != 0;
}

int fsm_step(const fsm_def_t *def, int from, int to, const char *who)
{
    if (!fsm_allowed(def, from, to)) {
        log_error(def->what, "impossible transition %s -> %s for %s", fsm_name(def, from),
                  fsm_name(def, to), who);
        abort();
    }
    log_debug(def->what, "%s: %s -> %s", who, fsm_name(def, from), fsm_name(def, to));
    return to;
}
