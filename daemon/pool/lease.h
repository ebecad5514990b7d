/* Leases: one prepared database handed to one client, until release,
 * disconnect (unless detached) or TTL. Whatever ends a lease gives its slot
 * back to the pool, which resets it before anyone sees it again. */
#ifndef DBL_LEASE_H
#define DBL_LEASE_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dbld.h"

typedef enum lease_end_reason {
    LEASE_RELEASED,
    LEASE_DISCONNECTED,
    LEASE_EXPIRED,
    LEASE_INSTANCE_DOWN,
    LEASE_SHUTDOWN,
} lease_end_reason_t;

struct lease {
    list_node_t node;      /* in d->leases */
    list_node_t sess_node; /* in sess->leases while its session lives */
    char id[19];           /* "L-" + 16 hex */
    dbld_t *d;
    slot_t *slot;
    sess_t *sess; /* NULL once a detached lease's session has gone */
    uid_t uid;
    pid_t pid;
    char client[64];
    char command[32];
    char host[64];
    int port;
    uint64_t created_ms;
    int64_t expires_at;
    bool detached;
};

lease_t *lease_new(dbld_t *d, slot_t *slot, sess_t *sess, bool detached, int ttl_s);
lease_t *lease_find(dbld_t *d, const char *id);
/* End it, tell its session if the daemon ended it, give the slot back. */
void lease_end(lease_t *l, lease_end_reason_t why, bool clean);
/* End every lease whose TTL has passed. */
void lease_reap_expired(dbld_t *d, int64_t now);
/* The object a lease request returns (with credentials). */
json_object *lease_to_json(const lease_t *l);
/* The status entry (never credentials). */
json_object *lease_status_json(const lease_t *l, uint64_t now_ms);

#endif
