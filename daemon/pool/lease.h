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

/* A lease is ACTIVE from grant to its end; ENDED, it is on no list anyone
 * walks and waits in d->dead_leases to be freed by lease_reap_dead() once
 * the callback that ended it has returned (its ender may still hold it). */
typedef enum lease_state {
    LEASE_ACTIVE,
    LEASE_ENDED,
    LEASE__STATES
} lease_state_t;

/* Who holds an attached lease (a session), told when the lease ends. The
 * lease is already off every list when on_end runs, so whatever on_end does
 * (send an event, close its connection) cannot end it twice. */
typedef struct lease_holder {
    void (*on_end)(lease_t *l, lease_end_reason_t why, void *ud);
    void *ud;
} lease_holder_t;

/* The peer a lease is granted to, copied into it for status. */
typedef struct lease_owner {
    uid_t uid;
    pid_t pid;
    const char *client;
    const char *command;
} lease_owner_t;

struct lease {
    list_node_t node;        /* in d->leases while ACTIVE, then d->dead_leases */
    list_node_t holder_node; /* in the holder's own list (the holder links it) */
    char id[19];             /* "L-" + 16 hex */
    lease_state_t state;
    dbld_t *d;
    slot_t *slot; /* NULL once ENDED: the pool has it back */
    lease_holder_t holder; /* on_end NULL once a detached lease's holder has gone */
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

lease_t *lease_new(dbld_t *d, slot_t *slot, const lease_owner_t *owner, bool detached, int ttl_s);
/* An ACTIVE lease by id, or NULL. */
lease_t *lease_find(dbld_t *d, const char *id);
/* The holder (a session) takes the lease, or lets it go (NULL: detached
 * leases outlive their connection). */
void lease_set_holder(lease_t *l, const lease_holder_t *h);
bool lease_held_by(const lease_t *l, const void *ud);
/* End it: unlink it, tell its holder, give the slot back. Ending a lease
 * that already ended does nothing, so a nested call cannot end it twice. */
void lease_end(lease_t *l, lease_end_reason_t why, bool clean);
/* End every ACTIVE lease match() picks. Safe however much each end
 * re-enters: the walk restarts after every end. */
void lease_end_matching(dbld_t *d, bool (*match)(const lease_t *l, const void *arg),
                        const void *arg, lease_end_reason_t why);
/* End every lease whose TTL has passed. */
void lease_reap_expired(dbld_t *d, int64_t now);
/* Free the leases that ended; called when no callback can hold one. */
void lease_reap_dead(dbld_t *d);
/* The object a lease request returns (with credentials). */
json_object *lease_to_json(const lease_t *l);
/* The status entry (never credentials). */
json_object *lease_status_json(const lease_t *l, uint64_t now_ms);

#endif
