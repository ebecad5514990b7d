#include "pg_engine.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

#define PROBE_INTERVAL_MS 25

void pg_admin_conninfo(const inst_t *i, char *out, size_t len)
{
    if (i->external || i->docker) {
        snprintf(out, len, "%s", i->url);
        return;
    }
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

static void on_cleaned(inst_t *i, int err, const char *msg);

static void on_bootstrapped(void *ud, int err, const char *msg, const PGresult *res)
{
    inst_t *i = ud;
    if (err == -ECANCELED)
        return;
    if (err) {
        inst_start_failed(i, "setting up the server failed: %s", msg);
        return;
    }
    if (i->external) /* a crashed predecessor's databases may still be there */
        pg_drop_prefixed(i, on_cleaned);
    else
        inst_ready(i);
}

static void on_cleaned(inst_t *i, int err, const char *msg)
{
    if (err)
        inst_start_failed(i, "removing what a previous dbleased left failed: %s", msg);
    else
        inst_ready(i);
}

/* Group roles the leases' pg_hba lines name (process runtime) and CONNECT
 * grants decide for: template owners migrating, schema-isolated leases.
 * Created only if absent: an external server keeps them across runs. */
static int bootstrap(inst_t *i, pgc_t *c)
{
    const char *p = i->d->cfg.postgres.name_prefix;
    char mig[512], sch[512];
    snprintf(mig, sizeof mig,
             "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%smigrators') "
             "THEN CREATE ROLE \"%smigrators\" NOLOGIN; END IF; END$$",
             p, p);
    snprintf(sch, sizeof sch,
             "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%sschema_users') "
             "THEN CREATE ROLE \"%sschema_users\" NOLOGIN; END IF; END$$",
             p, p);
    if (i->external) { /* not our server: its global grants are not ours to change */
        const char *sql[] = {mig, sch};
        return pgc_exec(c, sql, 2, on_bootstrapped, i);
    }
    /* Leases reach only their own database: no role but ours may connect
     * to the maintenance databases. */
    const char *sql[] = {"REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC",
                         "REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC", mig, sch};
    return pgc_exec(c, sql, 4, on_bootstrapped, i);
}

/* Connection status for the admin connections (the first one is also the
 * start-up probe: the server is ready once it gets in). */
static void on_admin_status(pgc_t *c, int err, const char *msg, void *ud)
{
    inst_t *i = ud;
    int k = admin_index(i, c);
    if (k < 0)
        return;
    if (err == 0) {
        if (k == 0 && i->state == INST_STARTING) {
            i->major = PQserverVersion(pgc_raw(c)) / 10000;
            if (bootstrap(i, c) < 0)
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
     * not, pick_admin() reconnects when there is work. An external server
     * has no process to watch: losing it is losing the server. */
    if (i->state == INST_RUNNING) {
        log_warn("engine", "%s: admin connection lost: %s", i->name, msg);
        if (i->external)
            inst_lost(i, msg);
    }
}

static void connect_admin(inst_t *i, int k)
{
    char ci[CFG_PATH + 128];
    const char *e = NULL;
    pg_admin_conninfo(i, ci, sizeof ci);
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
    pg_health_close(i);
    for (int k = 0; k < ADMIN_CONNS; k++) {
        pgc_t *c = i->admin[k];
        i->admin[k] = NULL;
        pgc_close(c);
    }
}

/* ---- slot operations ------------------------------------------------- */

pgc_t *pg_pick_admin(inst_t *i)
{
    /* Setting up (bootstrap, clean-up): the first admin connection only. */
    if (i->state == INST_STARTING)
        return pgc_is_up(i->admin[0]) ? i->admin[0] : NULL;
    /* An external server stays up while we stop: our databases go first. */
    if (i->state != INST_RUNNING && !(i->external && i->state == INST_STOPPING))
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
    pg_admin_conninfo(i, ci, sizeof ci);
    /* A database tenants write in: only pg_catalog on the search path, so
     * no function or operator a lease created (an overload that matches a
     * call better than pg_catalog's) runs as the superuser. */
    pgc_opts_t o = {.conninfo = ci,
                    .dbname = dbname,
                    .options = "-c search_path=pg_catalog,pg_temp"};
    return pgc_open(i->d->loop, &o, cb, ud, &e);
}

pgc_t *pg_connect_as(inst_t *i, const char *dbname, const char *user, const char *password,
                     pgc_status_cb cb, void *ud)
{
    if (i->state != INST_RUNNING)
        return NULL;
    char ci[512];
    const char *e;
    snprintf(ci, sizeof ci,
             "host=%s port=%d user='%s' password='%s' dbname='%s' "
             "application_name=dbleased-migrate connect_timeout=5",
             i->host, i->port, user, password, dbname);
    return pgc_connect(i->d->loop, ci, cb, ud, &e);
}

/* ---- what carries our prefix: the external runtime's clean-up ---------- */

typedef struct sweep {
    inst_t *i;
    void (*cb)(inst_t *i, int err, const char *msg);
    enum { LIST_DBS, DROP_DBS, LIST_ROLES, DROP_ROLES, DONE } next;
} sweep_t;

static void sweep_step(void *ud, int err, const char *msg, const PGresult *res);

static void sweep_end(sweep_t *w, int err, const char *msg)
{
    void (*cb)(inst_t *, int, const char *) = w->cb;
    inst_t *i = w->i;
    free(w);
    cb(i, err, msg);
}

/* Queue a DROP for every name in column 0: 0 queued, 1 nothing to drop. */
static int drop_listed(sweep_t *w, const PGresult *res, bool databases)
{
    int n = res ? PQntuples(res) : 0;
    if (n == 0)
        return 1;
    char **stmts = calloc((size_t)n, sizeof *stmts);
    int rc = stmts ? 0 : -ENOMEM;
    for (int r = 0; r < n && rc == 0; r++) {
        const char *name = PQgetvalue(res, r, 0);
        size_t len = strlen(name) + 64;
        if (!(stmts[r] = malloc(len)))
            rc = -ENOMEM;
        else
            snprintf(stmts[r], len,
                     databases ? "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)"
                               : "DROP ROLE IF EXISTS \"%s\"",
                     name);
    }
    if (rc == 0)
        rc = pg_admin_exec(w->i, (const char *const *)stmts, n, sweep_step, w);
    for (int r = 0; stmts && r < n; r++)
        free(stmts[r]);
    free(stmts);
    return rc;
}

static void sweep_step(void *ud, int err, const char *msg, const PGresult *res)
{
    sweep_t *w = ud;
    if (err) {
        sweep_end(w, err, msg);
        return;
    }
    const char *p = w->i->d->cfg.postgres.name_prefix;
    size_t plen = strlen(p);
    char q[512];
    int rc;
    switch (w->next) {
    case LIST_DBS:
        snprintf(q, sizeof q, "SELECT datname FROM pg_database WHERE left(datname, %zu) = '%s'",
                 plen, p);
        w->next = DROP_DBS;
        break;
    case DROP_DBS:
        w->next = LIST_ROLES;
        if ((rc = drop_listed(w, res, true)) <= 0) {
            if (rc < 0)
                sweep_end(w, rc, "cannot queue the drops");
            return;
        }
        /* nothing to drop */
        /* fall through */
    case LIST_ROLES:
        snprintf(q, sizeof q,
                 "SELECT rolname FROM pg_roles WHERE left(rolname, %zu) = '%s' AND rolname NOT IN "
                 "('%smigrators', '%sschema_users')",
                 plen, p, p, p);
        w->next = DROP_ROLES;
        break;
    case DROP_ROLES:
        w->next = DONE;
        if ((rc = drop_listed(w, res, false)) <= 0) {
            if (rc < 0)
                sweep_end(w, rc, "cannot queue the drops");
            return;
        }
        /* fall through */
    default:
        sweep_end(w, 0, NULL);
        return;
    }
    const char *sql[] = {q};
    if (pg_admin_exec(w->i, sql, 1, sweep_step, w) < 0)
        sweep_end(w, -ENOTCONN, "lost the admin connection");
}

void pg_drop_prefixed(inst_t *i, void (*cb)(inst_t *i, int err, const char *msg))
{
    sweep_t *w = calloc(1, sizeof *w);
    if (!w) {
        cb(i, -ENOMEM, "out of memory");
        return;
    }
    w->i = i;
    w->cb = cb;
    w->next = LIST_DBS;
    log_info("engine", "%s: dropping databases and roles named %s* (external server)", i->name,
             i->d->cfg.postgres.name_prefix);
    sweep_step(w, 0, NULL, NULL);
}
