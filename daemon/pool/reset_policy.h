/* What to do with a returned PostgreSQL database, decided from the
 * detector's verdict, and when to skip the detector altogether.
 *
 * The detector (engine/pg_reset.c) says clean (nothing changed), rows (only
 * user-table rows and template sequences changed) or dirty (anything
 * else). Checking costs a connection and two queries; on a template whose
 * tests all run DDL it never pays, so after `dirty_limit` dirty verdicts in
 * a row the pool clones without checking, and checks again every
 * `probe_every`th release to notice when the suite changes. Pure logic. */
#ifndef DBL_RESET_POLICY_H
#define DBL_RESET_POLICY_H

#include <stdbool.h>

typedef enum reset_mode {
    RESET_AUTO,   /* detect, and stop detecting while releases keep coming back dirty */
    RESET_DETECT, /* detect on every release */
    RESET_CLONE,  /* never detect: drop + clone every release (the old behaviour) */
} reset_mode_t;

typedef enum reset_verdict { VERDICT_CLEAN, VERDICT_ROWS, VERDICT_DIRTY } reset_verdict_t;

typedef enum reset_action {
    RESET_REUSE,   /* hand it out again with new credentials */
    RESET_RELOAD,  /* delete the changed tables' rows, reload the seed, setval */
    RESET_RECLONE, /* drop it and clone a new one */
    RESET_FLUSH,   /* redis: wiped in place (FLUSHALL, SCRIPT/FUNCTION FLUSH) */
    RESET__COUNT
} reset_action_t;

typedef struct reset_policy {
    int dirty_run; /* dirty verdicts in a row */
    int skipped;   /* releases recloned unchecked since the last check */
    int dirty_limit;
    int probe_every;
} reset_policy_t;

#define RESET_DIRTY_LIMIT 3
#define RESET_PROBE_EVERY 8

void reset_policy_init(reset_policy_t *p);
/* "auto" | "detect" | "clone" -> mode. 0, or -1 for anything else. */
int reset_mode_parse(const char *s, reset_mode_t *out);
const char *reset_action_name(reset_action_t a);

/* Should this release run the detector? A clean hint from the client is
 * worth a check even while the policy skips them (it is usually right).
 * Counts the release when it is skipped. */
bool reset_policy_should_check(reset_policy_t *p, reset_mode_t mode, bool clean_hint);
/* Record a verdict the detector gave. */
void reset_policy_record(reset_policy_t *p, reset_verdict_t v);
/* The cheapest correct action for a verdict. can_reload: the template's
 * seed rows are known and it has no ENABLE ALWAYS/REPLICA triggers. */
reset_action_t reset_action_for(reset_verdict_t v, bool can_reload);

#endif
