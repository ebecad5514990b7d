/* Turning pool slots into PostgreSQL databases or schemas: create (clone
 * from the template), drop, and rotate credentials for a clean return.
 * Each slot has its own role, named like the slot, with a random password
 * sent as a SCRAM verifier (pg_scram.c); statements are never logged. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inst.h"
#include "log.h"
#include "pg_engine.h"
#include "pg_reset.h"
#include "pg_scram.h"
#include "tpl.h"
#include "util.h"
#include "rt_disk.h"

typedef struct slot_job {
    slot_t *slot;
    tpl_t *t;
    char password[33];
    pgc_t *conn; /* schema isolation: the lease's own session, migrating */
    int step;
    uint64_t t_start; /* uv_hrtime: a create's time is logged at debug level */
} slot_job_t;

static slot_job_t *job_new(slot_t *s, void *ud)
{
    slot_job_t *j = calloc(1, sizeof *j);
    if (j) {
        j->slot = s;
        j->t = ud;
        j->t_start = uv_hrtime();
    }
    return j;
}

/* The slot's new password (its verifier goes into CREATE ROLE). */
static int take_cred(slot_job_t *j, pg_cred_t *cred)
{
    if (pg_cred_take(j->t->d->loop, cred) < 0)
        return -1;
    memcpy(j->slot->password, cred->password, sizeof j->slot->password);
    return 0;
}

static void done(slot_job_t *j, int err, const char *msg)
{
    slot_t *s = j->slot;
    if (err == 0 && s->state == SLOT_ROTATING)
        memcpy(s->password, j->password, sizeof s->password);
    free(j);
    pool_slot_done(s, err, msg, util_now_ms());
}

static int admin(slot_job_t *j, const char *const *sql, int n, pgc_done_cb cb)
{
    return pg_admin_exec(j->t->d->pg, sql, n, cb, j);
}

/* Start a job's first step; on failure the job is gone and so is the slot's
 * callback (the pool frees the slot). */
static int start(slot_job_t *j, const char *const *sql, int n, pgc_done_cb cb)
{
    int rc = admin(j, sql, n, cb);
    if (rc < 0)
        free(j);
    return rc;
}

static void on_simple(void *ud, int err, const char *msg, const PGresult *res)
{
    done(ud, err, msg);
}

static const char *strategy(const tpl_t *t)
{
    if (t->d->pg->major < 15)
        return "";
    /* FILE_COPY by default: for a small template one file copy beats
     * WAL-logging every block (numbers in the README). */
    return strcmp(t->d->cfg.postgres.clone_strategy, "wal_log") == 0 ? " STRATEGY WAL_LOG"
                                                                      : " STRATEGY FILE_COPY";
}

/* Connections the lease roles leave to the daemon's own logins that are
 * not superusers (template owners migrating; an external server's admin),
 * besides the server's superuser_reserved_connections, which the daemon's
 * superuser connections (admin, health, release checks) fall back on. */
#define DAEMON_CONN_RESERVE 8

static int conn_limit_cfg(const tpl_t *t)
{
    const config_t *cfg = &t->d->cfg;
    for (int i = 0; t->source != TPL_BUILTIN && i < cfg->n_templates; i++)
        if (strcmp(cfg->templates[i].name, t->name) == 0)
            return cfg->templates[i].k.lease_connection_limit;
    return cfg->postgres.lease_connection_limit;
}

/* The statement that caps a new lease role's sessions, to run in the
 * transaction that creates it ("" for lease_connection_limit = -1), so no
 * lease can take the slots every other lease and the daemon need. The
 * role has no CREATEROLE, so it cannot lift its own limit. 0 (the default)
 * is a fair share, computed by the server from its own settings: what
 * max_connections leaves after the reserved slots and DAEMON_CONN_RESERVE,
 * split among as many leases as the pool may hand out at once. */
static void conn_limit_sql(char *out, size_t len, const slot_t *s, const tpl_t *t)
{
    int limit = conn_limit_cfg(t);
    int share = s->pool->max_total < t->d->cfg.max_databases ? s->pool->max_total
                                                             : t->d->cfg.max_databases;
    if (limit < 0)
        out[0] = '\0';
    else if (limit > 0)
        snprintf(out, len, "; ALTER ROLE \"%s\" CONNECTION LIMIT %d", s->dbname, limit);
    else
        snprintf(out, len,
                 "; DO $$BEGIN EXECUTE format('ALTER ROLE %%I CONNECTION LIMIT %%s', '%s', "
                 "greatest(1, (current_setting('max_connections')::int - "
                 "current_setting('superuser_reserved_connections')::int - "
                 "coalesce(current_setting('reserved_connections', true), '0')::int - %d) / %d)); "
                 "END$$",
                 s->dbname, DAEMON_CONN_RESERVE, share > 0 ? share : 1);
}

/* ---- a database per lease --------------------------------------------- */

static double ms_since(const slot_job_t *j)
{
    return (double)(uv_hrtime() - j->t_start) / 1e6;
}

/* The adaptive release policy weighs a check against a clone's cost. */
static void on_baseline(void *ud, int err, const char *msg)
{
    slot_job_t *j = ud;
    if (err == 0)
        reset_policy_note_create(&j->slot->pool->reset_policy, ms_since(j));
    done(j, err, msg);
}

static void on_db_dropped(void *ud, int err, const char *msg, const PGresult *res)
{
    (void)res;
    slot_job_t *j = ud;
    if (err == 0)
        reset_policy_note_drop(&j->slot->pool->reset_policy, ms_since(j));
    done(j, err, msg);
}

/* The clone is ready: read its baseline for the release path's detector
 * (pg_reset.h). No session ran in it, so the baseline needs no session
 * of ours in it either. */
static void on_db_created(void *ud, int err, const char *msg, const PGresult *res)
{
    slot_job_t *j = ud;
    if (err) {
        done(j, err, msg);
        return;
    }
    log_debug("engine", "prepared %s in %.1f ms", j->slot->dbname, ms_since(j));
    if (pg_take_baseline(j->slot, j->t, NULL, on_baseline, j) < 0)
        done(j, -ENOTCONN, "cannot read the new database's baseline");
}

/* Three round trips on an admin connection, none into the clone: the
 * template's objects stay owned by its owner role, and the lease role is
 * granted that role, so it may alter, truncate and drop them in its own
 * database (the only one it can connect to) without REASSIGN OWNED, which
 * cost as much as the clone itself. From PostgreSQL 16 the grant carries
 * no SET: the lease has the owner's rights but cannot become it (and so
 * cannot change the owner role's own settings; before 16 the drop undoes
 * them). The database starts closed to connections and opens in the
 * transaction that revokes PUBLIC's CONNECT, so nobody gets in before. */
static int db_create(slot_t *s, void *ud)
{
    slot_job_t *j = job_new(s, ud);
    if (!j)
        return -ENOMEM;
    char full[512]; /* below the disk reserve: no clone (leases hear disk_full) */
    if (rt_disk_check(j->t->d, full, sizeof full) < 0) {
        free(j);
        return -ENOSPC;
    }
    char role[1536], grant[192] = "", db[320], grants[384], limit[640];
    pg_cred_t cred;
    if (take_cred(j, &cred) < 0) {
        free(j);
        return -EIO;
    }
    if (j->t->owner[0])
        snprintf(grant, sizeof grant, "; GRANT \"%s\" TO \"%s\"%s", j->t->owner, s->dbname,
                 j->t->d->pg->major >= 16 ? " WITH INHERIT TRUE, SET FALSE" : "");
    conn_limit_sql(limit, sizeof limit, s, j->t);
    /* Role, grant and limit in one transaction (one string): all or none. */
    snprintf(role, sizeof role,
             "CREATE ROLE \"%s\" LOGIN PASSWORD '%s' NOSUPERUSER NOCREATEDB NOCREATEROLE "
             "NOREPLICATION NOBYPASSRLS%s%s",
             s->dbname, cred.verifier, grant, limit);
    snprintf(db, sizeof db,
             "CREATE DATABASE \"%s\" OWNER \"%s\" TEMPLATE \"%s\"%s ALLOW_CONNECTIONS false",
             s->dbname, s->dbname, j->t->dbname, strategy(j->t));
    snprintf(grants, sizeof grants,
             "REVOKE CONNECT, TEMPORARY ON DATABASE \"%s\" FROM PUBLIC; "
             "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS true",
             s->dbname, s->dbname);
    const char *sql[] = {role, db, grants};
    return start(j, sql, 3, on_db_created);
}

static int db_drop(slot_t *s, void *ud)
{
    slot_job_t *j = job_new(s, ud);
    if (!j)
        return -ENOMEM;
    pg_reset_close_session(s);
    char untemplate[384], db[256], role[768];
    /* The lease owned its database and may have made it a template, which
     * DROP DATABASE refuses: undo that first (IF EXISTS, as the drop). */
    snprintf(untemplate, sizeof untemplate,
             "DO $$BEGIN IF EXISTS (SELECT FROM pg_database WHERE datname = '%s' AND "
             "datistemplate) THEN ALTER DATABASE \"%s\" IS_TEMPLATE false; END IF; END$$",
             s->dbname, s->dbname);
    /* FORCE ends the lease's sessions first; a dropped role takes its
     * password with it, so the old URL can never open the next database. */
    snprintf(db, sizeof db, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", s->dbname);
    /* Before 16 a lease may SET ROLE to the template's owner and give it
     * settings: no session uses them (nobody logs in as the owner), but the
     * next leases would see them in pg_roles. Undone only when there, in
     * the transaction that drops the lease role. (A password it may set too
     * is neither visible to leases nor usable: the owner cannot log in.)
     * pg_roles, not pg_authid: an external server's admin may not be a
     * superuser. */
    char owner[512] = "";
    const char *o = j->t->owner;
    if (o[0] && j->t->d->pg->major < 16)
        snprintf(owner, sizeof owner,
                 "; DO $$BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '%s' AND "
                 "rolconfig IS NOT NULL) THEN ALTER ROLE \"%s\" RESET ALL; END IF; END$$",
                 o, o);
    snprintf(role, sizeof role, "DROP ROLE IF EXISTS \"%s\"%s", s->dbname, owner);
    const char *sql[] = {untemplate, db, role};
    return start(j, sql, 3, on_db_dropped);
}

/* Every release goes through the detector; clean is a hint (pg_reset.h). */
static int db_rotate(slot_t *s, void *ud)
{
    return pg_release_db(s, ud, true);
}

static int db_reset(slot_t *s, void *ud)
{
    return pg_release_db(s, ud, false);
}

const slot_ops_t pg_slot_ops = {.create = db_create,
                                .drop = db_drop,
                                .rotate = db_rotate,
                                .reset = db_reset,
                                .forget = pg_reset_forget};

/* ---- a schema per lease, in the template's shared database ------------ */

/* Every job on the shared connection starts from a clean session: a
 * failed migration may have left a role, a search_path or a transaction. */
#define SHARED_RESET "ROLLBACK", "RESET ROLE", "RESET search_path"

static void on_schema_migrated(void *ud, int err, const char *msg, const PGresult *res)
{
    slot_job_t *j = ud;
    pgc_t *c = j->conn;
    j->conn = NULL;
    pgc_close(c);
    done(j, err, msg);
}

/* Connected, or not, as the lease's role: the template's SQL, in its schema. */
static void on_schema_login(pgc_t *c, int err, const char *msg, void *ud)
{
    slot_job_t *j = ud;
    tpl_t *t = j->t;
    if (err) {
        j->conn = NULL;
        pgc_close(c);
        done(j, err, msg);
        return;
    }
    char path[128];
    snprintf(path, sizeof path, "SET search_path = \"%s\"", j->slot->dbname);
    const char **sql = calloc((size_t)t->nfiles + 1, sizeof *sql);
    int n = 0;
    if (sql) {
        sql[n++] = path;
        for (int f = 0; f < t->nfiles; f++)
            sql[n++] = t->texts[f];
    }
    if (!sql || pgc_exec(c, sql, n, on_schema_migrated, j) < 0)
        on_schema_migrated(j, -ENOTCONN, "lost the lease's connection to the shared database",
                           NULL);
    free(sql);
}

/* The schema is there: the template's migrations run in it, in a session
 * the lease's role logged in to with its own password (not ours with SET
 * ROLE: a file could RESET it). */
static void on_schema_made(void *ud, int err, const char *msg, const PGresult *res)
{
    slot_job_t *j = ud;
    tpl_t *t = j->t;
    if (err || t->nfiles == 0) {
        done(j, err, msg);
        return;
    }
    j->conn = pg_connect_as(t->d->pg, t->shared_db, j->slot->dbname, j->slot->password,
                            on_schema_login, j);
    if (!j->conn)
        done(j, -ENOTCONN, "cannot connect to the shared database as the lease");
}

static void on_schema_role(void *ud, int err, const char *msg, const PGresult *res)
{
    slot_job_t *j = ud;
    tpl_t *t = j->t;
    if (err) {
        done(j, err, msg);
        return;
    }
    if (!t->shared) {
        done(j, -ENOTCONN, "no connection to the shared database");
        return;
    }
    const char *name = j->slot->dbname;
    char create[256];
    snprintf(create, sizeof create, "CREATE SCHEMA \"%s\" AUTHORIZATION \"%s\"", name, name);
    const char *sql[] = {SHARED_RESET, create};
    if (pgc_exec(t->shared, sql, 4, on_schema_made, j) < 0)
        done(j, -ENOTCONN, "lost the connection to the shared database");
}

static int schema_create(slot_t *s, void *ud)
{
    slot_job_t *j = job_new(s, ud);
    if (!j)
        return -ENOMEM;
    char role[1280], grant[256], limit[640];
    pg_cred_t cred;
    if (take_cred(j, &cred) < 0) {
        free(j);
        return -EIO;
    }
    conn_limit_sql(limit, sizeof limit, s, j->t);
    snprintf(role, sizeof role,
             "CREATE ROLE \"%s\" LOGIN PASSWORD '%s' IN ROLE \"%sschema_users\", \"%s\" "
             "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS%s",
             s->dbname, cred.verifier, j->t->d->cfg.postgres.name_prefix, j->t->shared_db, limit);
    snprintf(grant, sizeof grant, "GRANT CONNECT, TEMPORARY ON DATABASE \"%s\" TO \"%s\"",
             j->t->shared_db, s->dbname);
    const char *sql[] = {role, grant};
    return start(j, sql, 2, on_schema_role);
}

static void on_schema_dropped(void *ud, int err, const char *msg, const PGresult *res)
{
    slot_job_t *j = ud;
    char role[256];
    snprintf(role, sizeof role, "DROP ROLE IF EXISTS \"%s\"", j->slot->dbname);
    const char *sql[] = {role};
    if (err && err != -ECANCELED)
        log_warn("engine", "dropping schema %s: %s", j->slot->dbname, msg);
    if (admin(j, sql, 1, on_simple) < 0)
        done(j, -ENOTCONN, "lost the admin connection");
}

/* The role's sessions are gone (pg_end_sessions): drop its schema, what
 * it owns, and the role. */
static void on_schema_sessions_ended(void *ud, int err, const char *msg)
{
    slot_job_t *j = ud;
    tpl_t *t = j->t;
    if (err) {
        done(j, err, msg);
        return;
    }
    if (!t->shared) { /* the role's grant on it goes with the database */
        on_schema_dropped(j, 0, NULL, NULL);
        return;
    }
    const char *name = j->slot->dbname;
    char drop_schema[256], drop_owned[512];
    snprintf(drop_schema, sizeof drop_schema, "DROP SCHEMA IF EXISTS \"%s\" CASCADE", name);
    /* Also revokes its CONNECT grant, so the role can be dropped. */
    snprintf(drop_owned, sizeof drop_owned,
             "DO $$BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
             "EXECUTE 'DROP OWNED BY \"%s\"'; END IF; END$$",
             name, name);
    const char *sql[] = {SHARED_RESET, drop_schema, drop_owned};
    if (pgc_exec(t->shared, sql, 5, on_schema_dropped, j) < 0)
        on_schema_dropped(j, 0, NULL, NULL);
}

/* A release without --clean drops the schema: its holder's sessions get
 * the grace a release gives (a pool closing its sockets just after the
 * release is not killed), and waiting for them holds no connection. */
static int schema_drop(slot_t *s, void *ud)
{
    slot_job_t *j = job_new(s, ud);
    if (!j)
        return -ENOMEM;
    int rc = pg_end_sessions(s, j->t, on_schema_sessions_ended, j);
    if (rc < 0)
        free(j);
    return rc;
}

static int schema_rotate(slot_t *s, void *ud)
{
    return pg_release_schema(s, ud);
}

const slot_ops_t pg_schema_slot_ops = {
    .create = schema_create, .drop = schema_drop, .rotate = schema_rotate};
