/* The release path of PostgreSQL leases (study: reset-study.md, section 5).
 *
 * 1. Logins of the lease role are blocked (NOLOGIN) and, in the same round
 *    trip, the check runs (it counts the holder's sessions first). With a
 *    session still listed its reading is thrown away: the sessions get
 *    release_grace_ms to close by themselves, then are ended with
 *    pg_terminate_backend(pid), looked at every few ms from a loop timer
 *    (no connection held while waiting) until pg_stat_activity has none,
 *    and the check runs again.
 * 2. Database isolation: the detector (pg_detect.h) compares with the
 *    baseline taken when the database was last pristine; clean -> reuse,
 *    rows -> delete the changed tables, vacuum, reload their seed rows and
 *    setval the sequences, dirty -> drop + clone (reported to the pool as
 *    POOL_ERR_RECLONE). The pool's adaptive policy may skip the check.
 * 3. Only then a new password is set, logins of the role still under way
 *    (started with the old password) are ended, and login is re-enabled,
 *    so nothing the old holder did or started before its sessions ended
 *    outlives them.
 * Migrated templates: all of it on a superuser session kept in the
 * database between leases; the built-in one: on an admin connection, the
 * database's counters read from outside (pg_reset.c says why). */
#ifndef DBL_PG_RESET_H
#define DBL_PG_RESET_H

#include <stdbool.h>

#include "pg_conn.h"
#include "pool.h"

struct tpl;

/* Release a slot (slot_ops rotate/reset). 0, or < 0 (nothing started). */
int pg_release_db(slot_t *s, struct tpl *t, bool clean_hint);
int pg_release_schema(slot_t *s, struct tpl *t);

/* Before a schema lease's drop: block the role's logins and end its
 * sessions the way a release does (release_grace_ms to close, then
 * pg_terminate_backend, polled from a loop timer until none is listed; no
 * connection held while waiting). cb runs once: err 0 when none is left,
 * < 0 when they could not be ended (the drop would wait on their locks).
 * Returns 0, or < 0 (cb not called). */
typedef void (*pg_ended_cb)(void *ud, int err, const char *msg);
int pg_end_sessions(slot_t *s, struct tpl *t, pg_ended_cb cb, void *ud);

/* The last step of a clone: take its baseline. conn: the superuser session
 * in the new database that finished it (NULL when none was needed: the
 * built-in template, whose fresh clones have no counters at all). cb runs
 * once, with err 0 or < 0. Returns 0, or < 0 (cb not called). */
typedef void (*pg_baseline_cb)(void *ud, int err, const char *msg);
int pg_take_baseline(slot_t *s, struct tpl *t, pgc_t *conn, pg_baseline_cb cb, void *ud);

/* slot_ops forget: free the slot's baseline (and close its session). */
void pg_reset_forget(slot_t *s, void *ud);
/* Before a drop: close the session kept in the database between leases. */
void pg_reset_close_session(slot_t *s);

#endif
