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
    INST__COUNT
} inst_state_t;

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
    char last_error[256];

    /* where it listens */
    char host[64];
    int port;

    /* process runtime */
    char bindir[CFG_PATH];
    int major;
    char dir[CFG_PATH];
    char datadir[CFG_PATH];
    char sockdir[CFG_PATH];
    uv_process_t *proc;  /* own allocation: a handle is reusable only after its close cb */
    bool proc_running;
    uv_process_t *helper; /* initdb or cp */
    bool helper_running;
    bool helper_initdb; /* else it is the copy */
    int pid;

    /* engine */
    uv_timer_t timer; /* start probe retry, stop deadline, restart back-off */
    uv_timer_t health; /* while running: SELECT 1, or the server is killed */
    uint64_t probe_sent_ms; /* 0: no probe in flight */
    pgc_t *admin[ADMIN_CONNS];
    uint64_t deadline_ms;
    int restarts;
    bool closing; /* inst_free called: close handles, then free */
    int open_handles;
};

inst_t *inst_new(dbld_t *d, const char *bindir, int major);
void inst_start(inst_t *i);
/* Stop on purpose; dbld is told through dbld_inst_stopped(). */
void inst_stop(inst_t *i);
/* Close handles and free; only once STOPPED or FAILED with no process. */
void inst_free(inst_t *i);
const char *inst_state_name(inst_state_t s);
void inst_set_state(inst_t *i, inst_state_t to);
json_object *inst_status_json(const inst_t *i);

/* Reports into the state machine, from the runtime and the engine. */
void inst_spawned(inst_t *i);
void inst_exited(inst_t *i, int64_t status, int signal);
void inst_start_failed(inst_t *i, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void inst_ready(inst_t *i);
/* An external server stopped answering: down, then reconnect after a
 * back-off (a process server's exit says this by itself). */
void inst_lost(inst_t *i, const char *msg);
/* A helper or server process exited: finish a stop or plan a restart. */
void inst_settle(inst_t *i);

/* Hooks the daemon implements (main.c). */
void dbld_inst_running(dbld_t *d, inst_t *i);
void dbld_inst_down(dbld_t *d, inst_t *i);
void dbld_inst_stopped(dbld_t *d, inst_t *i);

#endif
