/* An instance: one running database server, started and watched through a
 * runtime (rt_process.c), reached and managed through an engine
 * (pg_engine.c). This file holds its state machine and lifecycle. */
#ifndef DBL_INST_H
#define DBL_INST_H

#include <json-c/json.h>
#include <stdbool.h>
#include <uv.h>

#include "dbld.h"
#include "pg_conn.h"

typedef enum inst_state {
    INST_STARTING, /* preparing the data dir, spawning, waiting to accept */
    INST_RUNNING,  /* accepting; its pools can work */
    INST_STOPPING, /* asked to stop, waiting for the process to exit */
    INST_STOPPED,  /* gone on purpose */
    INST_FAILED,   /* gone by accident; restarted after a back-off */
    INST_CLOSED,   /* inst_free called: handles closing, then freed */
    INST__COUNT
} inst_state_t;

/* What the runtime has running or in flight for it: an instance settles
 * (stops, or plans its restart) only once this is back to idle. */
typedef enum inst_rt {
    RT_IDLE,      /* nothing of ours runs; no work in flight */
    RT_PREPARING, /* dirs being made (off the loop), containers swept and created */
    RT_INITDB,    /* initdb builds the cached data dir */
    RT_COPYING,   /* the cache is copied into the instance's dir */
    RT_SERVING,   /* the server process or container runs */
    RT_CLEANING,  /* it exited: what it left is killed and removed, off the loop */
    RT__COUNT
} inst_rt_t;

/* How an instance tells its owner (the daemon, wired in main.c) that it
 * came up, went down (pools must stop using it) or stopped on purpose. */
typedef struct inst_events {
    void (*running)(void *ud, inst_t *i);
    void (*down)(void *ud, inst_t *i);
    void (*stopped)(void *ud, inst_t *i);
    void *ud;
} inst_events_t;

typedef struct pg_health pg_health_t;

/* Recycling runs on these in parallel (more is not faster on small machines). */
#define ADMIN_CONNS 4

struct inst {
    dbld_t *d;
    int id;
    char name[32];
    const char *kind;
    const char *runtime;
    bool external; /* runtime = external: not ours to start, stop or kill */
    bool docker;   /* runtime = docker: a container we create and remove */
    char url[CFG_PATH]; /* admin connection when not over our private socket */
    char container_id[80];
    struct dkc *container;
    inst_state_t state;
    char last_error[800];
    char evidence[384];  /* what the dead server last said (rt_logs.h) */
    char kept_log[128];  /* the name its log is kept under in <state>/logs */

    /* where it listens */
    char host[64];
    int port;

    /* process runtime */
    char bindir[CFG_PATH];
    int major;
    char dir[CFG_PATH];
    char datadir[CFG_PATH];
    char sockdir[CFG_PATH];
    inst_rt_t rt;
    uv_process_t *proc;  /* own allocation: a handle is reusable only after its close cb */
    uv_process_t *helper; /* initdb or cp */
    int pid;

    /* engine */
    uv_timer_t timer; /* start probe retry, stop deadline, restart back-off */
    uv_timer_t health; /* while running: the engine's probe (pg_health.c) */
    pg_health_t *health_probe;
    pgc_t *admin[ADMIN_CONNS];
    uint64_t deadline_ms;
    int restarts;
    int open_handles;
    inst_events_t ev;
};

inst_t *inst_new(dbld_t *d, const char *bindir, int major, const inst_events_t *ev);
void inst_start(inst_t *i);
/* Stop on purpose; the owner is told through ev.stopped. */
void inst_stop(inst_t *i);
/* Close handles and free; only once STOPPED or FAILED with no process. */
void inst_free(inst_t *i);
const char *inst_state_name(inst_state_t s);
void inst_set_state(inst_t *i, inst_state_t to);
/* The runtime's own progress (rt_*.c). */
void inst_rt_set(inst_t *i, inst_rt_t to);
json_object *inst_status_json(const inst_t *i);

/* Reports into the state machine, from the runtime and the engine. */
void inst_spawned(inst_t *i);
void inst_exited(inst_t *i, int64_t status, int signal);
void inst_start_failed(inst_t *i, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void inst_ready(inst_t *i);
/* An external server stopped answering: down, then reconnect after a
 * back-off (a process server's exit says this by itself). */
void inst_lost(inst_t *i, const char *msg);
/* The engine's health probe found the server hung (msg: the evidence):
 * ours is killed (its exit restarts it), an external one is lost. */
void inst_hung(inst_t *i, const char *msg);
/* The runtime went idle: finish a stop or plan a restart. */
void inst_settle(inst_t *i);

#endif
