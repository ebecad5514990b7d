/* What to do with a returned PostgreSQL database, decided from the
 * detector's verdict, and when to skip the detector altogether.
 *
 * The detector (engine/pg_reset.c) says clean (nothing changed), rows (only
 * user-table rows and template sequences changed) or dirty (anything
 * else). A check costs time; a clone (drop + create) costs time too, and
 * which is cheaper depends on the template, the machine and what the suite
 * does. So the policy measures both, per pool: the milliseconds of each
 * create and drop, and of each check by the verdict it ended in (clean: the
 * check and the reuse; rows: the check and the reload; dirty: the check
 * wasted before the clone), with the share of each verdict, all as moving
 * averages. It checks while the expected cost of a check (plus the clone a
 * dirty verdict still needs) is below the cost of a clone, and otherwise
 * clones without checking, probing every `probe_every`th release so that it
 * notices when the suite changes. Pure logic: costs come in as numbers. */
#ifndef DBL_RESET_POLICY_H
#define DBL_RESET_POLICY_H

#include <stdbool.h>

typedef enum reset_mode {
    RESET_AUTO,   /* detect where it pays (measured), probe elsewhere */
    RESET_DETECT, /* detect on every release */
    RESET_CLONE,  /* never detect: drop + clone every release (the old behaviour) */
} reset_mode_t;

typedef enum reset_verdict { VERDICT_CLEAN, VERDICT_ROWS, VERDICT_DIRTY, VERDICT__COUNT } reset_verdict_t;

typedef enum reset_action {
    RESET_REUSE,   /* hand it out again with new credentials */
    RESET_RELOAD,  /* delete the changed tables' rows, reload the seed, setval */
    RESET_RECLONE, /* drop it and clone a new one */
    RESET_FLUSH,   /* redis: wiped in place (FLUSHALL, SCRIPT/FUNCTION FLUSH) */
    RESET__COUNT
} reset_action_t;

typedef struct reset_policy {
    int skipped; /* releases recloned unchecked since the last check */
    int probe_every;
    int checks;                       /* verdicts recorded */
    int seen[VERDICT__COUNT];         /* of each verdict */
    double share[VERDICT__COUNT];     /* moving share of each verdict */
    double check_ms[VERDICT__COUNT];  /* moving cost of a check ending in each */
    int creates, drops;
    double create_ms, drop_ms;        /* moving cost of one create, one drop */
} reset_policy_t;

#define RESET_PROBE_EVERY 8
/* Checks before the costs are trusted: until then, always check. */
#define RESET_LEARN_CHECKS 3
/* Weight of the newest sample in the moving averages. */
#define RESET_EWMA_WEIGHT 0.25

void reset_policy_init(reset_policy_t *p);
/* "auto" | "detect" | "clone" -> mode. 0, or -1 for anything else. */
int reset_mode_parse(const char *s, reset_mode_t *out);
const char *reset_action_name(reset_action_t a);

/* Should this release run the detector? A clean hint from the client
 * counts as a likely clean verdict: checked unless even a clean check costs
 * more than a clone. Counts the release when it is skipped. */
bool reset_policy_should_check(reset_policy_t *p, reset_mode_t mode, bool clean_hint);
/* Record a verdict the detector gave and what the check cost: from the
 * release to the database being ready again (clean, rows) or to the
 * verdict (dirty: the clone that follows is counted as a create). */
void reset_policy_record(reset_policy_t *p, reset_verdict_t v, double ms);
/* A create (clone) or a drop of this pool took ms. */
void reset_policy_note_create(reset_policy_t *p, double ms);
void reset_policy_note_drop(reset_policy_t *p, double ms);
/* Expected ms of checking a release, and of cloning instead; < 0 while
 * unknown. */
double reset_policy_check_cost(const reset_policy_t *p, bool clean_hint);
double reset_policy_clone_cost(const reset_policy_t *p);
/* The cheapest correct action for a verdict. can_reload: the template's
 * seed rows are known and it has no ENABLE ALWAYS/REPLICA triggers. */
reset_action_t reset_action_for(reset_verdict_t v, bool can_reload);

#endif
