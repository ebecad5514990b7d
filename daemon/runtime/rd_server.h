/* One redis-server, run by the process runtime: its own dir, a loopback
 * port and a Unix socket only the daemon reaches, no persistence. ACL
 * users from a 0600 config file (never the command line, which anyone can
 * read in /proc): "default" is what leases get (everything but @admin and
 * a few commands that reach beyond the server or outlive a reset: see
 * rd_server.c), "dbladmin" is the daemon's own. */
#ifndef DBL_RD_SERVER_H
#define DBL_RD_SERVER_H

#include <json-c/json.h>
#include <stdbool.h>
#include <uv.h>

#include "dbld.h"
#include "rd_conn.h"

typedef struct rsrv rsrv_t;

typedef enum rsrv_event {
    RSRV_UP,   /* accepting; the admin connection is authenticated */
    RSRV_GONE, /* exited when asked to; the object is freed after this */
    RSRV_DIED, /* exited unasked, or killed as hung or unreachable; freed after this */
} rsrv_event_t;

typedef void (*rsrv_cb)(rsrv_t *r, rsrv_event_t ev, const char *msg, void *ud);

/* Where a server is in its life (rd_server.c has the allowed changes). */
typedef enum rsrv_state {
    RSRV_STARTING, /* spawned; connecting the admin connection */
    RSRV_RUNNING,  /* admin connection up: commands go through */
    RSRV_KILLING,  /* hung, or its admin connection lost: SIGKILLed, not asked to stop */
    RSRV_STOPPING, /* asked to stop: SIGTERM, SIGKILL after a deadline */
    RSRV_EXITED,   /* gone; freed once its handles close */
    RSRV__COUNT
} rsrv_state_t;

struct rsrv {
    dbld_t *d;
    int id;
    char name[32];
    char dir[CFG_PATH];
    char sock[CFG_PATH];
    char host[64]; /* where it listens for us and for leases: 127.0.0.1, or a
                    * published port's host (runtime = docker, remote engine) */
    int port;           /* 0 until a published port is read back from the engine */
    int pid;
    rsrv_state_t state;
    char admin_password[33];
    uv_process_t *proc;
    struct dkc *container; /* [redis] runtime = docker */
    rdc_t *admin;
    uv_timer_t timer; /* connect retry; health probes while up; stop deadline */
    int pings;            /* health PINGs in flight (each has the command deadline) */
    uint64_t deadline_ms; /* to be up by */
    uint64_t retry_ms;    /* until the next connect attempt */
    rsrv_cb cb;
    void *ud;
    int handles; /* open: the timer, the process */
    /* The owner's note: rdb_changes_since_last_save when the server was
     * last left empty (rd_slots.c compares it at the next release). */
    long long changes_mark;
    char kept_log[128]; /* died: its log's name in <state>/logs ("" if not kept) */
};

/* How to start one. */
typedef struct rsrv_conf {
    int databases;
    const char *password; /* of the "default" user, what leases get */
    long long maxmemory;  /* bytes; 0: no limit. Writes past it fail with OOM */
    bool shared;          /* leases share it (db isolation): deny what they would share */
} rsrv_conf_t;

/* Find redis-server: [redis] bin_dir, else PATH. 0 or -1 with message. */
int rsrv_find_binary(const char *bin_dir, char *out, size_t len, char *err, size_t errlen);
/* Start one. NULL on failure (the callback is then never called). */
rsrv_t *rsrv_start(dbld_t *d, const char *binary, const rsrv_conf_t *conf, rsrv_cb cb, void *ud);
/* SIGTERM (nothing to save), SIGKILL after a few seconds; RSRV_GONE (or
 * RSRV_DIED, if it was dying already) follows. */
void rsrv_stop(rsrv_t *r);
/* The same, and no more news: the owner is going away. */
void rsrv_abandon(rsrv_t *r);
/* A command on the admin connection. 0 or -ENOTCONN (cb not called). */
int rsrv_command(rsrv_t *r, int argc, const char **argv, rdc_reply_cb cb, void *ud);
json_object *rsrv_status_json(const rsrv_t *r);

#endif
