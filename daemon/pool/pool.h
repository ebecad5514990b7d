/* Pools of prepared databases ("slots") for one (kind, template) pair.
 *
 * A slot's state is the list it sits on; slot_set_state() is the only place
 * that moves it. The pool decides what to prepare and who gets what; the
 * SQL (or Redis commands) behind create/drop/rotate lives in an engine that
 * reports back through pool_slot_done(). Pure logic: no loop, no clock
 * (callers pass the time in), so unit tests drive it directly. */
#ifndef DBL_POOL_H
#define DBL_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"
#include "reset_policy.h"

typedef struct pool pool_t;
typedef struct slot slot_t;
typedef struct pool_waiter pool_waiter_t;

typedef enum slot_state {
    SLOT_CREATING, /* engine is cloning it */
    SLOT_READY,    /* can be handed out */
    SLOT_LEASED,
    SLOT_ROTATING, /* clean release: new password, sessions ended */
    SLOT_DROPPING, /* being destroyed; freed when the engine is done */
    SLOT_FAILED,   /* creation failed; cleaned up after a back-off */
    SLOT__COUNT
} slot_state_t;

struct slot {
    list_node_t node;
    pool_t *pool;
    slot_state_t state;
    uint64_t seq;
    char dbname[64]; /* also the role name: pg_hba "sameuser" pins one to the other */
    char password[33];
    int port;        /* where the engine serves it (redis: per slot) */
    char host[64];   /* redis: the server's host ("" : 127.0.0.1) */
    int db;          /* redis database number */
    void *lease;     /* owner while LEASED */
    void *engine;    /* engine's per-slot data, if any */
    char lost_why[512]; /* why its server went away, in the server's words if it said any
                         * (the holder's instance_down message); "" if unknown */
};

/* Engine hooks. Each starts async work and returns 0, later calling
 * pool_slot_done() exactly once; or returns < 0 and never calls it.
 * rotate readies a cleanly returned slot for reuse; reset (optional) does
 * the same for any returned slot where the engine can wipe it in place
 * (Redis: FLUSHALL) instead of dropping and re-creating it. */
typedef struct slot_ops {
    int (*create)(slot_t *s, void *ud);
    int (*drop)(slot_t *s, void *ud);
    int (*rotate)(slot_t *s, void *ud);
    int (*reset)(slot_t *s, void *ud);
    /* optional: free s->engine when the slot is freed */
    void (*forget)(slot_t *s, void *ud);
} slot_ops_t;

/* A release the engine could not reuse (it changed too much): drop it and
 * clone anew. Not a failure, so not logged as one. */
#define POOL_ERR_RECLONE (-10001)

/* Shared by every pool: the global database cap ([daemon] max_databases). */
typedef struct pool_limits {
    int total; /* slots in any state, all pools */
    int max;
    /* Creates in flight across the pools of one kind (they share a server);
     * each pool may still have one of its own. Default: cores + 1. */
    int max_creating;
    list_t pools;
} pool_limits_t;

/* s is LEASED for the waiter, or NULL when the pool gave up on its waiters
 * (pool_fail_waiters: its template failed or is gone). */
typedef void (*pool_wait_cb)(pool_waiter_t *w, slot_t *s);

struct pool_waiter {
    list_node_t node;
    pool_t *pool;
    pool_wait_cb cb;
    void *ud;
};

typedef struct pool_counters {
    uint64_t created, create_failures, dropped, rotated, drop_failures;
    /* release outcomes (reset_action_t) and the milliseconds they took,
     * from the release to the database being ready again (reclone: to the
     * decision; the clone itself counts as a create) */
    uint64_t resets[RESET__COUNT], reset_ms[RESET__COUNT];
    uint64_t unchecked; /* recloned without the check (the adaptive policy) */
} pool_counters_t;

struct pool {
    list_node_t node; /* in limits->pools */
    char kind[16];
    char template_name[64];
    char prefix[32]; /* database names: <prefix><seq> */
    int min_ready;
    int max_total;
    int max_parallel; /* creates in flight at once */
    bool up;          /* its server can take work */
    bool retiring;    /* superseded: returned slots are dropped, never reused */
    bool cold;        /* evicted for lack of room: keeps nothing ready until used again */
    list_t slots[SLOT__COUNT];
    list_t waiters; /* first come, first served */
    pool_limits_t *limits;
    const slot_ops_t *ops;
    void *ops_ud;
    uint64_t next_seq;
    uint64_t retry_at_ms; /* back-off after a failed create */
    uint64_t backoff_ms;
    uint64_t backoff_seq; /* creates from this seq on are a new attempt */
    char last_error[256];
    pool_counters_t counters;
    reset_policy_t reset_policy;
    /* engine data for the whole pool (a template version's seed rows), freed
     * with it */
    void *engine_data;
    void (*engine_data_free)(void *data);
};

void pool_limits_init(pool_limits_t *l, int max);
pool_t *pool_new(pool_limits_t *limits, const char *kind, const char *template_name,
                 const char *prefix, int min_ready, int max_total, const slot_ops_t *ops,
                 void *ops_ud);
/* Free a pool whose slots have all been dropped (pool_total() == 0). */
void pool_free(pool_t *p);

const char *slot_state_name(slot_state_t s);
void slot_set_state(slot_t *s, slot_state_t to);
size_t pool_count(const pool_t *p, slot_state_t s);
int pool_total(const pool_t *p);

/* Start creates (and clean up failed slots) as needed. now_ms: monotonic. */
void pool_refill(pool_t *p, uint64_t now_ms);
/* Mark the server usable or not. Going down fails nothing by itself. */
void pool_set_up(pool_t *p, bool up, uint64_t now_ms);

/* The oldest ready slot, now LEASED, or NULL. */
slot_t *pool_take(pool_t *p);
/* Queue for the next slot that becomes ready; cb runs with it LEASED. */
void pool_wait(pool_t *p, pool_waiter_t *w, pool_wait_cb cb, void *ud);
void pool_cancel_wait(pool_waiter_t *w);
/* Hand every waiter NULL (each is dequeued before its callback runs). */
void pool_fail_waiters(pool_t *p);

/* A lease ended: clean → ROTATING, else DROPPING. */
void pool_give_back(slot_t *s, bool clean, uint64_t now_ms);
/* Drop every READY and FAILED slot (shutdown, template eviction). */
void pool_drain(pool_t *p, uint64_t now_ms);

/* The engine lost a READY or FAILED slot (its server died): forget it. */
void pool_slot_lost(slot_t *s, uint64_t now_ms);

/* The engine tells how a release ended (before its pool_slot_done). */
void pool_note_reset(pool_t *p, reset_action_t a, uint64_t ms);

/* Engine report for the op in flight on s. err 0 or < 0 with msg. */
void pool_slot_done(slot_t *s, int err, const char *msg, uint64_t now_ms);

#endif
