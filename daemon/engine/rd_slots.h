/* Turning pool slots into Redis leases: a redis-server of its own per
 * slot (isolation = instance), or a database number on a server the
 * template's leases share (isolation = db: dense, and not enforced, since
 * any client may SELECT another). */
#ifndef DBL_RD_SLOTS_H
#define DBL_RD_SLOTS_H

#include <json-c/json.h>

#include "pool.h"
#include "tpl.h"

/* What the engine reports upward. Handed over by whoever sets it up, so the
 * engine never calls into leases or sessions itself. */
typedef struct rd_events {
    /* A leased slot's server died: end its lease, telling the holder. */
    void (*slot_lost)(void *ud, slot_t *s);
    /* The shared server (db isolation) died: every lease of the pool is gone. */
    void (*pool_lost)(void *ud, pool_t *p);
    /* A server died unasked, or was killed as hung: for the counters. */
    void (*server_died)(void *ud);
    void *ud;
} rd_events_t;

extern const slot_ops_t rd_instance_slot_ops;
extern const slot_ops_t rd_db_slot_ops;

/* Make a Redis template ready: remove containers a crashed run left
 * (runtime = docker), then start the shared server (db isolation; restarted
 * if it dies) or just serve (instance isolation). The engine keeps a copy
 * of ev. 0 or -ENOMEM. */
int rd_setup(tpl_t *t, const rd_events_t *ev);
/* Stop the shared server for good (shutdown); slots still in the pool
 * finish with errors. Safe to call more than once. */
void rd_shared_stop(tpl_t *t);
/* The template is going and its pool is empty: stop, then free. */
void rd_free(tpl_t *t);
/* Add the template's servers to a status "instances" array. */
void rd_status_instances(const tpl_t *t, json_object *arr);

#endif
