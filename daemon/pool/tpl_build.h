/* Building templates in PostgreSQL: the template database and its owner
 * role, migrations from sql_dir (each file one transaction, run as the
 * owner so every object becomes the lease's own in its clone), the claim a
 * client migrates under, and dropping a retired version. */
#ifndef DBL_TPL_BUILD_H
#define DBL_TPL_BUILD_H

#include "tpl.h"

/* Config (and schema-isolated built-in) templates: PENDING -> BUILDING ->
 * READY or FAILED. */
void tpl_build_start(tpl_t *t);

/* Client templates: create the template database and a login for its owner
 * role. cb runs exactly once: when it can be migrated (err 0), could not be
 * made (-EIO), or was forgotten first (-ECANCELED: superseded, dropped, the
 * server lost), each with why. Not at all when this returns an error. */
typedef void (*tpl_claim_cb)(tpl_t *t, int err, const char *msg, void *ud);
int tpl_claim_start(tpl_t *t, const void *claimer, tpl_claim_cb cb, void *ud);
/* Freeze the migrated template (ok) or drop it and free the claim; cb as
 * for tpl_claim_start. Freezing a claim still being set up is -EAGAIN;
 * abandoning one answers its caller -ECANCELED. */
int tpl_claim_finish(tpl_t *t, bool ok, tpl_claim_cb cb, void *ud);

/* Forget a build or claim in flight (server gone, claimer gone, retired);
 * a caller waiting on it hears why (-ECANCELED). */
void tpl_build_abort(tpl_t *t, const char *why);
/* Close the shared-database connection (schema isolation). A retiring
 * template keeps it until its last lease schema is dropped. */
void tpl_shared_close(tpl_t *t);
/* Status callback of a template's shared-database connection. */
void tpl_shared_broken(pgc_t *c, int err, const char *msg, void *ud);
/* Drop the template's own databases and role; then tpl_dropped(). */
int tpl_build_drop(tpl_t *t);

#endif
