/* One container's life through the Docker Engine API: create, start,
 * watch (/wait), remove; and removing what carries a daemon's label. */
#ifndef DBL_DK_CONTAINER_H
#define DBL_DK_CONTAINER_H

#include <json-c/json.h>
#include <stdint.h>

#include "dk_client.h"

typedef struct dkc dkc_t;

typedef struct dkc_cbs {
    /* Started (err 0), or could not be created/started (err < 0, msg). */
    void (*started)(void *ud, int err, const char *msg);
    /* Exited or removed, whichever way; the dkc_t is freed after this.
     * Called once, after started (also after a failed start). */
    void (*gone)(void *ud, int64_t exit_code);
} dkc_cbs_t;

/* Create (body: the create request, not stolen) under name, then start. */
dkc_t *dkc_run(dk_t *dk, json_object *body, const char *name, const dkc_cbs_t *cbs, void *ud);
/* Remove by force (kills it); gone() follows. */
void dkc_remove(dkc_t *c);
/* Forget the owner: no more callbacks; remove the container if any. */
void dkc_abandon(dkc_t *c);
const char *dkc_id(const dkc_t *c);

/* Remove every container labelled dblease.daemon=daemon_id and
 * dblease.kind=kind (what this run left behind, e.g. a container whose
 * removal failed); then done(ud, err, msg). Dead daemons' containers are
 * dk_reaper.h's. */
void dkc_sweep(dk_t *dk, const char *daemon_id, const char *kind,
               void (*done)(void *ud, int err, const char *msg), void *ud);

/* The labels every container of ours carries: its owner (dk_owner.h), kind. */
json_object *dkc_labels(const dk_t *dk, const char *kind);

#endif
