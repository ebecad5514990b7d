#include "pg_engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define PROBE_INTERVAL_MS 25

static void admin_conninfo(const inst_t *i, char *out, size_t len)
{
    snprintf(out, len,
             "host=%s port=%d user=dblease dbname=postgres application_name=dbleased "
             "connect_timeout=5",
             i->sockdir, i->port);
}

static void probe_again(uv_timer_t *t);
static void connect_admin(inst_t *i, int k);

static int admin_index(const inst_t *i, const pgc_t *c)
{
    for (int k = 0; k < ADMIN_CONNS; k++)
        if (i->admin[k] == c)
            return k;
    return -1;
}

static void on_bootstrapped(void *ud, int err, const char *msg, const PGresult *res)
{
    inst_t *i = ud;
    if (err == -ECANCELED)
        return;
    if (err) {
        inst_start_failed(i, "setting up the server failed: %s", msg);
        return;
    }
    inst_ready(i);
}

/* Connection status for the admin connections, probe included. */
static void on_admin_status(pgc_t *c, int err, const char *msg, void *ud)
{
    inst_t *i = ud;
    int k = admin_index(i, c);
    if (k < 0)
        return;
    if (err == 0) {
        if (k == 0 && i->state == INST_STARTING) {
            /* Leases reach only their own database: no role but ours may
             * connect to the maintenance databases. */
            static const char *const sql[] = {
                "REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC",
                "REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC",
            };
            if (pgc_exec(c, sql, 2, on_bootstrapped, i) < 0)
                inst_start_failed(i, "lost the admin connection while setting up");
        }
        return;
    }
    i->admin[k] = NULL;
    pgc_close(c);
    if (i->state == INST_STARTING && k == 0) {
        if (util_now_ms() >= i->deadline_ms)
            inst_start_failed(i, "server did not accept connections within %d s: %s",
                              i->d->cfg.postgres.start_timeout_s, msg);
        else
            uv_timer_start(&i->timer, probe_again, PROBE_INTERVAL_MS, 0);
        return;
    }
    /* The process watcher decides whether the server is gone; if it is
     * not, pick_admin() reconnects when there is work. */
    if (i->state == INST_RUNNING)
        log_warn("engine", "%s: admin connection lost: %s", i->name, msg);
}

static void connect_admin(inst_t *i, int k)
{
    char ci[CFG_PATH + 128];
    const char *e = NULL;
    admin_conninfo(i, ci, sizeof ci);
    i->admin[k] = pgc_connect(i->d->loop, ci, on_admin_status, i, &e);
    if (i->admin[k] || k != 0 || i->state != INST_STARTING)
        return;
    /* Before the server creates its socket, libpq fails at once: retry. */
    if (util_now_ms() >= i->deadline_ms)
        inst_start_failed(i, "server did not accept connections within %d s: %s",
                          i->d->cfg.postgres.start_timeout_s, e);
    else
        uv_timer_start(&i->timer, probe_again, PROBE_INTERVAL_MS, 0);
}

static void probe_again(uv_timer_t *t)
{
    inst_t *i = t->data;
    if (i->state == INST_STARTING)
        connect_admin(i, 0);
}

void pg_engine_probe(inst_t *i)
{
    connect_admin(i, 0);
    for (int k = 1; k < ADMIN_CONNS; k++)
        i->admin[k] = NULL;
}

void pg_engine_close(inst_t *i)
{
    for (int k = 0; k < ADMIN_CONNS; k++) {
        pgc_t *c = i->admin[k];
        i->admin[k] = NULL;
        pgc_close(c);
    }
}

/* ---- slot operations ------------------------------------------------- */

static pgc_t *pick_admin(inst_t *i)
{
    if (i->state != INST_RUNNING)
        return NULL;
    /* (Re)open connections lazily, once there is work for them. */
    for (int k = 0; k < ADMIN_CONNS; k++)
        if (!i->admin[k])
            connect_admin(i, k);
    pgc_t *best = NULL;
    for (int k = 0; k < ADMIN_CONNS; k++) {
        pgc_t *c = i->admin[k];
        if (pgc_is_up(c) && (!best || pgc_queue_len(c) < pgc_queue_len(best)))
            best = c;
    }
    return best;
}

typedef struct slot_job {
    slot_t *slot;
    char password[33]; /* the new one, for rotate */
} slot_job_t;

static void on_slot_done(void *ud, int err, const char *msg, const PGresult *res)
{
    slot_job_t *j = ud;
    slot_t *s = j->slot;
    if (err == 0 && s->state == SLOT_ROTATING)
        memcpy(s->password, j->password, sizeof s->password);
    free(j);
    pool_slot_done(s, err, msg, util_now_ms());
}

static int run(inst_t *i, slot_t *s, const char *const *sql, int n, slot_job_t *j)
{
    pgc_t *c = pick_admin(i);
    if (!c) {
        free(j);
        return -ENOTCONN;
    }
    int rc = pgc_exec(c, sql, n, on_slot_done, j);
    if (rc < 0)
        free(j);
    return rc;
}

static int pg_create(slot_t *s, void *ud)
{
    inst_t *i = ud;
    slot_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    j->slot = s;
    if (util_random_password(s->password, 32) < 0) {
        free(j);
        return -EIO;
    }
    /* The server hashes the password (SCRAM, 4096 rounds): that CPU is spent
     * in postgres, not on our loop. It never logs the statement: the server
     * runs with log_min_error_statement=panic. */
    char role[512], db[256], revoke[256];
    snprintf(role, sizeof role,
             "CREATE ROLE \"%s\" LOGIN PASSWORD '%s' NOSUPERUSER NOCREATEDB NOCREATEROLE "
             "NOREPLICATION NOBYPASSRLS",
             s->dbname, s->password);
    /* FILE_COPY by default: for a small template on tmpfs one file copy
     * beats WAL-logging every block (numbers in the README). */
    const char *strategy = "";
    if (i->major >= 15)
        strategy = strcmp(i->d->cfg.postgres.clone_strategy, "wal_log") == 0
                       ? " STRATEGY WAL_LOG"
                       : " STRATEGY FILE_COPY";
    snprintf(db, sizeof db, "CREATE DATABASE \"%s\" OWNER \"%s\" TEMPLATE template0%s", s->dbname,
             s->dbname, strategy);
    snprintf(revoke, sizeof revoke, "REVOKE CONNECT, TEMPORARY ON DATABASE \"%s\" FROM PUBLIC",
             s->dbname);
    const char *sql[] = {role, db, revoke};
    return run(i, s, sql, 3, j);
}

static int pg_drop(slot_t *s, void *ud)
{
    inst_t *i = ud;
    slot_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    j->slot = s;
    char db[256], role[256];
    /* FORCE ends the lease's sessions first; a dropped role takes its
     * password with it, so the old URL can never open the next database. */
    snprintf(db, sizeof db, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", s->dbname);
    snprintf(role, sizeof role, "DROP ROLE IF EXISTS \"%s\"", s->dbname);
    const char *sql[] = {db, role};
    return run(i, s, sql, 2, j);
}

static int pg_rotate(slot_t *s, void *ud)
{
    inst_t *i = ud;
    slot_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return -ENOMEM;
    j->slot = s;
    if (util_random_password(j->password, 32) < 0) {
        free(j);
        return -EIO;
    }
    char alter[512], term[512];
    snprintf(alter, sizeof alter, "ALTER ROLE \"%s\" PASSWORD '%s'", s->dbname, j->password);
    /* Wait (up to 5 s) for the old holder's sessions to be gone, so the next
     * holder never shares the database with them. */
    snprintf(term, sizeof term,
             "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
             "WHERE datname = '%s' AND pid <> pg_backend_pid()",
             s->dbname);
    const char *sql[] = {alter, term};
    return run(i, s, sql, 2, j);
}

const slot_ops_t pg_slot_ops = {
    .create = pg_create,
    .drop = pg_drop,
    .rotate = pg_rotate,
};
