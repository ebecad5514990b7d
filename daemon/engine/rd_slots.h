/* Turning pool slots into Redis leases: a redis-server of its own per
 * slot (isolation = instance), or a database number on a server the
 * template's leases share (isolation = db: dense, and not enforced, since
 * any client may SELECT another). */
#ifndef DBL_RD_SLOTS_H
#define DBL_RD_SLOTS_H

#include <json-c/json.h>

#include "pool.h"
#include "tpl.h"

extern const slot_ops_t rd_instance_slot_ops;
extern const slot_ops_t rd_db_slot_ops;

/* Make a Redis template ready: remove containers a crashed run left
 * (runtime = docker), then start the shared server (db isolation) or just
 * serve (instance isolation). */
void rd_setup(tpl_t *t);
/* db isolation: start the shared server; the template is READY once it is
 * up, and it is restarted if it dies. */
int rd_shared_start(tpl_t *t);
void rd_shared_stop(tpl_t *t);
/* Add the template's servers to a status "instances" array. */
void rd_status_instances(const tpl_t *t, json_object *arr);

#endif
