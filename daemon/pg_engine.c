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
                /* pg_hba admits these groups over TCP; what they may open is
                 * decided by CONNECT grants (template owners migrating,
                 * schema-isolated leases). */
                "CREATE ROLE dbl_migrators NOLOGIN",
                "CREATE ROLE dbl_schema_users NOLOGIN",
            };
            if (pgc_exec(c, sql, 4, on_bootstrapped, i) < 0)
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

pgc_t *pg_pick_admin(inst_t *i)
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

int pg_admin_exec(inst_t *i, const char *const *sql, int n, pgc_done_cb cb, void *ud)
{
    pgc_t *c = pg_pick_admin(i);
    return c ? pgc_exec(c, sql, n, cb, ud) : -ENOTCONN;
}

pgc_t *pg_connect_db(inst_t *i, const char *dbname, pgc_status_cb cb, void *ud)
{
    if (i->state != INST_RUNNING)
        return NULL;
    char ci[CFG_PATH + 256];
    const char *e;
    snprintf(ci, sizeof ci,
             "host=%s port=%d user=dblease dbname=%s application_name=dbleased connect_timeout=5",
             i->sockdir, i->port, dbname);
    return pgc_connect(i->d->loop, ci, cb, ud, &e);
}
