/* One explicit state machine per object, one helper for all of them.
 *
 * Each object keeps an enum state and a table of the changes it allows;
 * its own set_state() function calls fsm_step() and does whatever else the
 * change means (moving a slot between lists, waking waiters). fsm_step()
 * logs every change at debug level and refuses an impossible one: that is
 * a bug in the daemon, never a consequence of input, so it aborts loudly
 * rather than carry on with an object in a state nobody planned for. */
#ifndef DBL_FSM_H
#define DBL_FSM_H

#include <stdbool.h>

typedef struct fsm_def {
    const char *what;           /* "slot", "instance", … for the log */
    int count;                  /* states: 0 .. count-1 */
    const char *const *names;   /* names[state] */
    const unsigned *allowed;    /* allowed[from] has bit (1u << to) set */
} fsm_def_t;

/* A bit for the allowed table: FSM_TO(A) | FSM_TO(B). */
#define FSM_TO(s) (1u << (s))

const char *fsm_name(const fsm_def_t *def, int state);
bool fsm_allowed(const fsm_def_t *def, int from, int to);
/* Check the change from -> to and log it ("<who>: from -> to"); returns
 * `to` for the caller to store. Aborts on a change the table does not
 * allow. */
int fsm_step(const fsm_def_t *def, int from, int to, const char *who);

#endif
