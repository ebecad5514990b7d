/* Templates: named, versioned starting states for pools. The built-in
 * "default" is an empty database (template0); config templates are built by
 * the daemon from the *.sql files of their sql_dir; client templates are
 * migrated by a client holding a claim (template.ensure/finalize).
 * A template's identity is name + content hash + server major version; a
 * changed hash is a new version, and the old one retires: no new leases,
 * dropped when its last database is gone. */
#ifndef DBL_TPL_H
#define DBL_TPL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>

#include "dbld.h"
#include "pg_conn.h"

typedef struct tpl tpl_t;
typedef struct tpl_waiter tpl_waiter_t;

typedef enum tpl_state {
    TPL_SCANNING, /* its sql_dir is being read and hashed, off the loop thread */
    TPL_PENDING,  /* waiting for its server to run */
    TPL_BUILDING, /* its template database is being created and migrated */
    TPL_READY,
    TPL_FAILED,   /* error says why: its files, a migration, the server */
    TPL_RETIRING, /* superseded or abandoned: dropped once its databases are gone */
    TPL__COUNT
} tpl_state_t;

typedef enum tpl_source { TPL_BUILTIN, TPL_CONFIG, TPL_CLIENT } tpl_source_t;

/* Someone waiting for a template to settle (ready, failed, retiring or
 * gone, or its claim free again). The callback runs once per wait, on every
 * path: it is how this layer answers the one above it. */
typedef void (*tpl_wait_cb)(tpl_waiter_t *w, tpl_t *t);
struct tpl_waiter {
    list_node_t node;
    tpl_t *t;
    tpl_wait_cb cb;
    void *ud;
};

struct tpl {
    list_node_t node; /* in d->templates, oldest first */
    dbld_t *d;
    int id;
    char kind[16]; /* postgres | redis */
    char name[64];
    char hash[65];
    tpl_source_t source;
    tpl_state_t state;
    char error[768];
    char dbname[64];    /* the template database ("template0" for the built-in) */
    char owner[64];     /* role owning its objects ("" for the built-in) */
    char shared_db[64]; /* schema isolation: the database the leases share */
    bool schema;        /* isolation = schema */
    char sql_dir[CFG_PATH];
    pool_t *pool;
    uint64_t last_used_ms;

    /* building (tpl_build.c) */
    struct tpl_build *build; /* the build or claim in progress, if any */
    pgc_t *shared;           /* schema isolation: to the shared database, for slots */
    struct tpl_scan *scan;   /* the read of sql_dir in flight (SCANNING) */
    char **files;            /* *.sql of sql_dir, in name order */
    char **texts;            /* their contents, as hashed */
    int nfiles;

    struct rd_engine *rd; /* redis: the engine's side (rd_slots.c) */

    /* client templates: who holds the claim (a session, opaque here), and
     * the uid that owns the name (its first creator; new versions inherit
     * it): only it, root and the daemon's user may migrate or retire it */
    const void *claimer;
    uid_t claimer_uid;
    pid_t claimer_pid;
    uid_t owner_uid;
    int dbs_held; /* its own databases that exist, counted in max_databases */
    char owner_password[33];
    list_t waiters;
};

const char *tpl_state_name(tpl_state_t s);
void tpl_set_state(tpl_t *t, tpl_state_t to);

/* The built-in and every config template (hashed now, built once the
 * server runs). 0, or -1 with a message. */
int tpl_setup(dbld_t *d, char *err, size_t errlen);
/* The version new leases of this kind and name come from, or NULL. For a
 * client template that is its newest ready version while a newer one is
 * still being migrated (or was abandoned). */
tpl_t *tpl_current(dbld_t *d, const char *kind, const char *name);
/* The newest live (not retiring) version of a name, ready or not. */
tpl_t *tpl_newest(dbld_t *d, const char *kind, const char *name);
/* A client template version, or NULL. */
tpl_t *tpl_client_find(dbld_t *d, const char *name, const char *hash);
/* A client template version; created (PENDING) when absent, owned by the
 * name's owner, or by uid when the name is new. */
tpl_t *tpl_client(dbld_t *d, const char *name, const char *hash, uid_t uid);
/* The [template.NAME] section sizing a client template, or NULL. */
const tpl_cfg_t *tpl_client_cfg(const config_t *cfg, const char *name);
/* Does the configuration build this name itself (built-in or sql_dir)? */
bool tpl_config_owns(const config_t *cfg, const char *name);
/* Apply the configuration's pool sizes to every live client template. */
void tpl_client_resize(dbld_t *d);
/* Why a lease waiting on t's pool is still waiting, when the template is
 * the reason (being migrated or built, its server not up): true with the
 * reason in buf. */
bool tpl_wait_reason(const tpl_t *t, char *buf, size_t n);
/* Reserve room under max_databases for client template t's database
 * (about to be claimed): true when there is room. If not, the reservation
 * stays counted (pools do not grow into the room) while ready databases of
 * the least recently used idle pool are dropped; ask again (the janitor
 * offers the claim again). It is let go when nobody waits to claim. */
bool tpl_reserve_db(tpl_t *t);

/* The server came up / went away. */
void tpl_instance_up(dbld_t *d);
void tpl_instance_down(dbld_t *d);
/* The server was stopped (shutdown): the template databases are gone. */
void tpl_instance_stopped(dbld_t *d);
/* Re-hash config templates (SIGHUP, or their sql_dir changed). */
void tpl_rescan(dbld_t *d);
/* Periodic: drop retired versions whose last database is gone; evict idle
 * ready databases of the least recently used pools when the global cap
 * keeps another pool from serving its waiters. */
void tpl_janitor(dbld_t *d);
/* Stop: close build connections, free everything (pools must be empty). */
void tpl_free_all(dbld_t *d);

void tpl_wait(tpl_t *t, tpl_waiter_t *w, tpl_wait_cb cb, void *ud);
void tpl_cancel_wait(tpl_waiter_t *w);
/* A client template's claim is free (or its server is back): offer it to
 * the waiters, first come first served. If none takes it, leases waiting
 * for the template fail (nobody is migrating it). */
void tpl_offer_claim(tpl_t *t);
/* Supersede: no new leases; dropped when empty. Older versions of the
 * same name still live (the one serving while t's files are read) too. */
void tpl_retire(tpl_t *t);

/* Largest *.sql file read from a sql_dir. */
#define TPL_MAX_FILE (64u << 20)

/* SHA-256 (hex) over the names and contents of dir's *.sql files and the
 * server major. Gives the names (in order) and contents. 0 or -1. Reads
 * regular files only (util_read_regular); blocks on slow disks, so the
 * daemon calls it off the loop thread. */
int tpl_hash_dir(const char *dir, int major, char hex[65], char ***names, char ***texts, int *n,
                 char *err, size_t errlen);

/* Free n strings and the array holding them (tpl_hash_dir's lists). */
void tpl_free_strv(char **v, int n);

/* --check-config: every config template's sql_dir reads as start-up would
 * read it. 0, or -1 with what to fix in err. */
int tpl_check_sql_dirs(const config_t *cfg, char *err, size_t errlen);

json_object *tpl_status_json(const tpl_t *t);
/* "database" | "schema" | "instance" | "db" */
const char *tpl_isolation(const tpl_t *t);
/* From tpl_build.c: the template's own databases and role are dropped. */
void tpl_dropped(tpl_t *t);

#endif
