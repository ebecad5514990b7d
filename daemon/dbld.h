/* The daemon's one top-level object and forward types, so modules include
 * this instead of each other. */
#ifndef DBL_DBLD_H
#define DBL_DBLD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "config.h"
#include "list.h"
#include "lat_hist.h"
#include "pool.h"

typedef struct sess sess_t;
typedef struct lease lease_t;
typedef struct inst inst_t;

typedef struct dbld_counters {
    uint64_t leases_granted, leases_released, leases_expired, leases_disconnected;
    uint64_t connections;
    uint64_t instance_restarts; /* servers that died or hung */
} dbld_counters_t;

/* The daemon's own life. RUNNING serves; DRAINING (SIGTERM, `drain`)
 * refuses new leases while attached ones finish; STOPPING ends everything
 * and stops the servers; FINISHED: handles are closing, the loop ends. */
typedef enum dbld_state {
    DBLD_RUNNING,
    DBLD_DRAINING,
    DBLD_STOPPING,
    DBLD_FINISHED,
    DBLD__STATES
} dbld_state_t;

typedef struct dbld {
    uv_loop_t *loop;
    config_t cfg;
    char config_path[CFG_PATH];
    char self_exe[CFG_PATH];    /* re-exec'd to tie servers to our life */
    char server_root[CFG_PATH]; /* instances/ live here: the state dir if run_as reaches it */
    uid_t uid;          /* the daemon's own */
    uid_t run_uid;      /* servers run as this user */
    gid_t run_gid;
    char run_user[64];
    int64_t started_at; /* Unix seconds */

    uv_pipe_t listener;
    bool listening;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t janitor;
    int lock_fd;

    pool_limits_t limits;
    inst_t *pg;      /* the PostgreSQL instance */
    list_t templates; /* tpl_t versions, oldest first; each has its pool */
    uv_fs_event_t sql_watch[CFG_MAX_TEMPLATES]; /* config templates' sql_dir */
    int n_watch;
    uv_timer_t rescan; /* debounces bursts of file events */

    list_t sessions;    /* every connection until its handles have closed */
    list_t leases;      /* ACTIVE leases */
    list_t dead_leases; /* ENDED, freed by the reaper after the callback */
    uv_check_t reaper;  /* runs after each loop iteration's callbacks */
    dbld_counters_t counters;
    dbld_state_t state;
    int exit_code;
    uint64_t drain_deadline_ms;
    bool activated;         /* the listening socket came from systemd */
    bool notified_ready;
    char last_status[256];
    char arg_socket[108], arg_state_dir[CFG_PATH]; /* command line, kept for reload */
    uv_tcp_t metrics;
    bool metrics_on;
    char metrics_addr[80]; /* where it really listens (port 0: the one we got) */
    int scrapers;
    lat_hist_t lat_pg, lat_redis;
    char redis_bin[CFG_PATH]; /* "" when redis-server is not installed */
    char redis_error[CFG_PATH + 512]; /* why redis_bin is "": status and leases say it */
    struct dk *dk;            /* container engine client (runtime = docker) */
    char docker_host[512];
} dbld_t;

/* STOPPING or FINISHED: the daemon is ending everything. */
static inline bool dbld_stopping(const dbld_t *d)
{
    return d->state >= DBLD_STOPPING;
}
/* DRAINING or later: no new leases or templates. */
static inline bool dbld_refusing(const dbld_t *d)
{
    return d->state != DBLD_RUNNING;
}

/* Start the reaper that frees what callbacks ended (leases) once they
 * have returned; stopped when the daemon finishes. */
void dbld_reaper_start(dbld_t *d);

/* Begin an orderly stop: refuse new work, end leases, stop servers; the
 * loop ends when the last handle closes. */
void dbld_shutdown(dbld_t *d, const char *why);
/* SIGTERM: refuse new leases, let attached ones finish (drain_timeout_s),
 * then shut down; asked again, shut down at once. */
void dbld_drain(dbld_t *d, const char *why);
void dbld_drain_progress(dbld_t *d);
/* Shutdown makes progress (janitor tick, instance stopped). */
void dbld_shutdown_progress(dbld_t *d);
/* An engine lost a pool's server (every database) or one leased slot's:
 * end the leases concerned, telling their holders (instance_down). */
void dbld_pool_lost(dbld_t *d, pool_t *p);
void dbld_slot_lost(dbld_t *d, slot_t *s);
/* Set up the Redis engine of the redis template (if redis-server is
 * there), wired to dbld_slot_lost/dbld_pool_lost. 0 or -ENOMEM. */
int dbld_redis_setup(dbld_t *d);
/* The PostgreSQL instance came up, went down, stopped (its inst_events_t,
 * wired in main.c). */
void dbld_inst_running(dbld_t *d, inst_t *i);
void dbld_inst_down(dbld_t *d, inst_t *i);
void dbld_inst_stopped(dbld_t *d, inst_t *i);
/* Is this peer allowed admin operations? (our uid, or root) */
bool dbld_is_admin(const dbld_t *d, uid_t peer);

#endif
