/* The status op's result: pools counted from their lists, instances,
 * leases (never credentials) and counters. */
#ifndef DBL_STATUS_H
#define DBL_STATUS_H

#include <json-c/json.h>

#include "dbld.h"

/* Add daemon, pools, instances, leases and counters keys to obj. */
void status_fill(dbld_t *d, json_object *obj);

#endif
