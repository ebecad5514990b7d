#include "tpl_build.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm.h"
#include "inst.h"
#include "log.h"
#include "pg_engine.h"
#include "util.h"

/* One build or claim in flight. Its callbacks may outlive the template
 * (abort detaches it), so they hold this, not the template. At most one
 * thing of ours is pending at a time: an admin statement, a connection
 * being made, or a statement on that connection; the state says which. */
typedef enum build_state {
    B_IDLE,       /* between steps: nothing pending */
    B_ADMIN,      /* a statement on the server's admin connection */
    B_CONNECTING, /* our own connection to the template (or shared) database */
    B_QUERY,      /* a statement on that connection */
    B_DETACHED,   /* forgotten while something was pending: its callback frees it */
    B__COUNT
} build_state_t;

static const char *const build_state_names[B__COUNT] = {
    [B_IDLE] = "idle",   [B_ADMIN] = "admin",       [B_CONNECTING] = "connecting",
    [B_QUERY] = "query", [B_DETACHED] = "detached",
};

static const unsigned build_allowed[B__COUNT] = {
    [B_IDLE] = FSM_TO(B_ADMIN) | FSM_TO(B_CONNECTING) | FSM_TO(B_QUERY),
    [B_ADMIN] = FSM_TO(B_IDLE) | FSM_TO(B_DETACHED),
    [B_CONNECTING] = FSM_TO(B_IDLE) | FSM_TO(B_DETACHED),
    [B_QUERY] = FSM_TO(B_IDLE) | FSM_TO(B_DETACHED),
    [B_DETACHED] = 0,
};

static const fsm_def_t build_fsm = {"tpl_build", B__COUNT, build_state_names, build_allowed};

typedef struct tpl_build {
    tpl_t *t; /* NULL once detached */
    build_state_t state;
    pgc_t *conn;
    int next_file;
    enum { B_BUILD, B_CLAIM, B_FINISH, B_ABANDON, B_DROP } what;
    char who[96]; /* for the log: the template, which outlives us or not */
    /* A claim's or finalize's caller: answered exactly once, on success,
     * failure or abort (take_cb() hands it out once). */
    tpl_claim_cb cb;
    void *ud;
} tpl_build_t;

static void set_state(tpl_build_t *b, build_state_t to)
{
    b->state = (build_state_t)fsm_step(&build_fsm, (int)b->state, (int)to, b->who);
}

static tpl_build_t *build_new(tpl_t *t, int what)
{
    tpl_build_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->t = t;
    b->what = what;
    b->state = B_IDLE;
    snprintf(b->who, sizeof b->who, "template %s (%.12s)", t->name, t->hash);
    t->build = b;
    return b;
}

/* The caller's callback, once: later calls get NULL. */
static tpl_claim_cb take_cb(tpl_build_t *b, void **ud)
{
    tpl_claim_cb cb = b->cb;
    *ud = b->ud;
    b->cb = NULL;
    b->ud = NULL;
    return cb;
}

/* Done with b: detach it from its template. Something still pending frees
 * it when its callback comes (closing our connection runs a pending
 * statement's callback, now or later); otherwise it goes now. b must not
 * be touched after this. */
static void finish(tpl_build_t *b)
{
    if (b->t)
        b->t->build = NULL;
    b->t = NULL;
    pgc_t *c = b->conn;
    b->conn = NULL;
    build_state_t was = b->state;
    if (was == B_ADMIN || was == B_QUERY)
        set_state(b, B_DETACHED);
    else
        free(b); /* idle, or connecting: closing never calls the status back */
    if (c)
        pgc_close(c);
}

/* The head of every callback: the pending thing is done. False when the
 * build was detached meanwhile (then it is freed here). */
static bool detached(tpl_build_t *b)
{
    if (b->state == B_DETACHED) {
        free(b);
        return true;
    }
    set_state(b, B_IDLE);
    return false;
}

static void fail(tpl_build_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(tpl_build_t *b, const char *fmt, ...)
{
    tpl_t *t = b->t;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->error, sizeof t->error, fmt, ap);
    va_end(ap);
    log_error("tpl", "template %s (%.12s): %s", t->name, t->hash, t->error);
    void *ud;
    tpl_claim_cb cb = take_cb(b, &ud);
    if (b->what == B_CLAIM || b->what == B_FINISH)
        t->claimer = NULL;
    finish(b);
    if (t->state == TPL_BUILDING)
        tpl_set_state(t, TPL_FAILED);
    if (cb)
        cb(t, -EIO, t->error, ud);
}

static int admin(tpl_build_t *b, const char *const *sql, int n, pgc_done_cb cb)
{
    set_state(b, B_ADMIN);
    int rc = pg_admin_exec(b->t->d->pg, sql, n, cb, b);
    if (rc < 0)
        set_state(b, B_IDLE);
    return rc;
}

/* A statement on our own connection; on failure the build failed. */
static void query(tpl_build_t *b, const char *const *sql, int n, pgc_done_cb cb, const char *lost)
{
    set_state(b, B_QUERY);
    if (pgc_exec(b->conn, sql, n, cb, b) == 0)
        return;
    set_state(b, B_IDLE);
    fail(b, "%s", lost);
}

static bool job_ok(tpl_build_t *b, int err, const char *what, const char *msg)
{
    if (detached(b))
        return false;
    if (err) {
        fail(b, "%s: %s", what, msg);
        return false;
    }
    return true;
}

/* The same for a connection's status callback: on failure it is closed. */
static bool conn_ok(tpl_build_t *b, pgc_t *c, int err, const char *what, const char *msg)
{
    /* Once connected, a break reaches the statement's callback first, and
     * that closes the connection: a status call past connecting is not ours. */
    if (b->state != B_CONNECTING)
        return false;
    if (detached(b))
        return false;
    if (err) {
        b->conn = NULL;
        pgc_close(c);
        fail(b, "%s: %s", what, msg);
        return false;
    }
    return true;
}

/* ---- the SQL ---------------------------------------------------------- */

static const char *strategy(const tpl_t *t)
{
    if (t->d->pg->major < 15)
        return "";
    return strcmp(t->d->cfg.postgres.clone_strategy, "wal_log") == 0 ? " STRATEGY WAL_LOG"
                                                                      : " STRATEGY FILE_COPY";
}

/* Statements that (re)create the template database and owner role; a
 * previous attempt's leftovers go first. Migrations, the daemon's from
 * sql_dir as a client's, log in as the owner with its own password: no
 * migration runs in a superuser's session. */
static int create_sql(const tpl_t *t, const char *password, char out[][512])
{
    int n = 0;
    bool own_db = t->source != TPL_BUILTIN;
    if (own_db) {
        snprintf(out[n++], 512, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", t->dbname);
        snprintf(out[n++], 512, "DROP ROLE IF EXISTS \"%s\"", t->owner);
        snprintf(out[n++], 512,
                 "CREATE ROLE \"%s\" LOGIN PASSWORD '%s' IN ROLE \"%smigrators\" "
                 "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
                 t->owner, password, t->d->cfg.postgres.name_prefix);
        snprintf(out[n++], 512, "CREATE DATABASE \"%s\" TEMPLATE template0%s", t->dbname,
                 strategy(t));
        snprintf(out[n++], 512, "REVOKE CONNECT, TEMPORARY ON DATABASE \"%s\" FROM PUBLIC",
                 t->dbname);
        snprintf(out[n++], 512, "GRANT CONNECT, TEMPORARY, CREATE ON DATABASE \"%s\" TO \"%s\"",
                 t->dbname, t->owner);
    }
    if (t->schema) {
        snprintf(out[n++], 512, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", t->shared_db);
        /* A group role named like the database: its leases are members,
         * and pg_hba's "samerole" admits them to this database only. */
        snprintf(out[n++], 512, "DROP ROLE IF EXISTS \"%s\"", t->shared_db);
        snprintf(out[n++], 512, "CREATE ROLE \"%s\" NOLOGIN", t->shared_db);
        snprintf(out[n++], 512, "CREATE DATABASE \"%s\" TEMPLATE template0%s", t->shared_db,
                 strategy(t));
        snprintf(out[n++], 512, "REVOKE CONNECT, TEMPORARY ON DATABASE \"%s\" FROM PUBLIC",
                 t->shared_db);
    }
    return n;
}

/* Freeze a migrated template: the migrator's login goes, its sessions
 * end, and no one connects again (clones need a template nobody is in). */
static int freeze_sql(const tpl_t *t, char s[][512])
{
    int n = 0;
    snprintf(s[n++], 512, "ALTER ROLE \"%s\" NOLOGIN PASSWORD NULL", t->owner);
    snprintf(s[n++], 512, "REVOKE CONNECT, TEMPORARY ON DATABASE \"%s\" FROM \"%s\"", t->dbname,
             t->owner);
    /* Lease roles are granted the owner (pg_slots.c): through it they
     * must not be migrators. */
    snprintf(s[n++], 512, "REVOKE \"%smigrators\" FROM \"%s\"", t->d->cfg.postgres.name_prefix,
             t->owner);
    snprintf(s[n++], 512,
             "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
             "WHERE datname = '%s' AND pid <> pg_backend_pid()",
             t->dbname);
    snprintf(s[n++], 512, "ALTER DATABASE \"%s\" WITH ALLOW_CONNECTIONS false", t->dbname);
    return n;
}

/* ---- config templates: build --------------------------------------- */

static void built(tpl_build_t *b);
static void connect_to(tpl_build_t *b, const char *dbname, pgc_status_cb cb);

/* Line of a 1-based character position in text (positions count
 * characters, not bytes). */
static int line_of(const char *text, long pos)
{
    int line = 1;
    for (long chars = 1; *text && chars < pos; text++) {
        if ((*text & 0xC0) != 0x80)
            chars++;
        if (*text == '\n')
            line++;
    }
    return line;
}

static void run_next_file(tpl_build_t *b);

static void on_file_done(void *ud, int err, const char *msg, const PGresult *res)
{
    tpl_build_t *b = ud;
    if (detached(b))
        return;
    tpl_t *t = b->t;
    if (err) {
        const char *name = t->files[b->next_file - 1];
        const char *pos = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
        const char *hint = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_HINT) : NULL;
        const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        if (primary) /* one line: the server's own text has a multi-line excerpt */
            msg = primary;
        int line = pos ? line_of(t->texts[b->next_file - 1], atol(pos)) : 0;
        char where[96] = "";
        if (line)
            snprintf(where, sizeof where, ", line %d", line);
        fail(b, "migration %s%s: %s%s%s%s; fix it and the template rebuilds", name, where, msg,
             hint ? " (hint: " : "", hint ? hint : "", hint ? ")" : "");
        return;
    }
    run_next_file(b);
}

static void run_next_file(tpl_build_t *b)
{
    tpl_t *t = b->t;
    if (b->next_file == t->nfiles) {
        pgc_t *c = b->conn;
        b->conn = NULL;
        pgc_close(c);
        built(b);
        return;
    }
    /* One string: the server runs it as one implicit transaction. */
    const char *sql[] = {t->texts[b->next_file++]};
    query(b, sql, 1, on_file_done, "lost the connection to the template database");
}

static void on_owner_conn(pgc_t *c, int err, const char *msg, void *ud)
{
    tpl_build_t *b = ud;
    if (conn_ok(b, c, err, "cannot log in to the template database as its owner", msg))
        run_next_file(b);
}

static void claim_ready(tpl_build_t *b);

/* public is the owner's to create in; then a client migrates (a claim),
 * or we do, logged in as the owner: what the files create is the owner's,
 * and lease roles are granted the owner (pg_slots.c). */
static void on_public_granted(void *ud, int err, const char *msg, const PGresult *res)
{
    tpl_build_t *b = ud;
    if (!job_ok(b, err, "preparing the template database failed", msg))
        return;
    if (b->what == B_CLAIM) {
        claim_ready(b);
        return;
    }
    pgc_t *c = b->conn;
    b->conn = NULL;
    pgc_close(c);
    tpl_t *t = b->t;
    set_state(b, B_CONNECTING);
    b->conn = pg_connect_as(t->d->pg, t->dbname, t->owner, t->owner_password, on_owner_conn, b);
    if (!b->conn) {
        set_state(b, B_IDLE);
        fail(b, "cannot connect to database %s as %s", t->dbname, t->owner);
    }
}

static void on_tpl_db_conn(pgc_t *c, int err, const char *msg, void *ud)
{
    tpl_build_t *b = ud;
    if (!conn_ok(b, c, err, "cannot connect to the template database", msg))
        return;
    char grant[256];
    snprintf(grant, sizeof grant, "GRANT ALL ON SCHEMA public TO \"%s\"", b->t->owner);
    const char *sql[] = {grant};
    query(b, sql, 1, on_public_granted, "lost the connection to the template database");
}

static void connect_to(tpl_build_t *b, const char *dbname, pgc_status_cb cb)
{
    set_state(b, B_CONNECTING);
    b->conn = pg_connect_db(b->t->d->pg, dbname, cb, b);
    if (!b->conn) {
        set_state(b, B_IDLE);
        fail(b, "cannot connect to database %s", dbname);
    }
}

static void on_shared_conn(pgc_t *c, int err, const char *msg, void *ud);

/* Frozen (and its shared database ready): the template serves. */
static void frozen(tpl_build_t *b)
{
    tpl_t *t = b->t;
    if (t->schema && !t->shared) {
        connect_to(b, t->shared_db, on_shared_conn);
        return;
    }
    void *ud;
    tpl_claim_cb cb = take_cb(b, &ud);
    finish(b);
    t->claimer = NULL;
    t->error[0] = '\0';
    tpl_set_state(t, TPL_READY);
    if (cb)
        cb(t, 0, NULL, ud);
}

static void on_frozen(void *ud, int err, const char *msg, const PGresult *res)
{
    tpl_build_t *b = ud;
    if (job_ok(b, err, "finishing the template failed", msg))
        frozen(b);
}

void tpl_shared_broken(pgc_t *c, int err, const char *msg, void *ud)
{
    tpl_t *t = ud;
    log_warn("tpl", "template %s: connection to shared database lost: %s", t->name, msg);
    if (t->shared == c)
        t->shared = NULL;
    pgc_close(c);
}

static void on_shared_ready(void *ud, int err, const char *msg, const PGresult *res)
{
    tpl_build_t *b = ud;
    if (!job_ok(b, err, "preparing the shared database failed", msg))
        return;
    /* The connection stays, for creating and dropping lease schemas. */
    b->t->shared = b->conn;
    b->conn = NULL;
    pgc_set_status_cb(b->t->shared, tpl_shared_broken, b->t);
    frozen(b);
}

/* What the catalogs of a shared database tell every session about the
 * others, closed where PostgreSQL lets a grant close it: statistics (row
 * counts, scans, sizes), locks, sessions, prepared transactions, function
 * source. Names and definitions in pg_class, pg_attribute, pg_get_*def
 * stay: drivers and psql read them (what remains: README "Isolation"). */
#define SHARED_CATALOGS                                                                          \
    "DO $$DECLARE r record; cols text; BEGIN "                                                   \
    "FOR r IN SELECT c.oid::regclass AS o FROM pg_class c WHERE c.relnamespace = "               \
    "'pg_catalog'::regnamespace AND c.relkind = 'v' AND (c.relname LIKE 'pg\\_stat\\_%' OR "     \
    "c.relname LIKE 'pg\\_statio\\_%' OR c.relname IN ('pg_locks', 'pg_prepared_xacts')) LOOP "   \
    "EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', r.o); END LOOP; "                           \
    "FOR r IN SELECT p.oid::regprocedure AS o FROM pg_proc p WHERE p.pronamespace = "            \
    "'pg_catalog'::regnamespace AND (p.proname LIKE 'pg\\_stat\\_get\\_%' OR p.proname IN "       \
    "('pg_lock_status', 'pg_blocking_pids', 'pg_safe_snapshot_blocking_pids', "                  \
    "'pg_prepared_xact', 'pg_get_functiondef', 'pg_get_function_sqlbody', 'pg_relation_size', "  \
    "'pg_table_size', 'pg_indexes_size', 'pg_total_relation_size', 'pg_database_size')) LOOP "   \
    "EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', r.o); END LOOP; "                   \
    "SELECT string_agg(quote_ident(attname), ', ') INTO cols FROM pg_attribute WHERE attrelid = " \
    "'pg_catalog.pg_proc'::regclass AND attnum > 0 AND NOT attisdropped AND attname NOT IN "     \
    "('prosrc', 'probin', 'prosqlbody'); "                                                       \
    "REVOKE SELECT ON pg_catalog.pg_proc FROM PUBLIC; "                                          \
    "EXECUTE format('GRANT SELECT (%s) ON pg_catalog.pg_proc TO PUBLIC', cols); END$$"

static void on_shared_conn(pgc_t *c, int err, const char *msg, void *ud)
{
    tpl_build_t *b = ud;
    if (!conn_ok(b, c, err, "cannot connect to the shared database", msg))
        return;
    /* Each lease gets a schema of its own; nobody gets public, nor reads
     * what the catalogs tell of the others (README "Isolation"). */
    static const char *const sql[] = {"REVOKE ALL ON SCHEMA public FROM PUBLIC", SHARED_CATALOGS};
    query(b, sql, 2, on_shared_ready, "lost the connection to the shared database");
}

/* Migrations done (or none): forbid connections, so clones can start. */
static void built(tpl_build_t *b)
{
    tpl_t *t = b->t;
    if (t->source == TPL_BUILTIN) {
        frozen(b);
        return;
    }
    char s[5][512];
    int n = freeze_sql(t, s);
    const char *sql[] = {s[0], s[1], s[2], s[3], s[4]};
    if (admin(b, sql, n, on_frozen) < 0)
        fail(b, "lost the admin connection");
}

static void on_created(void *ud, int err, const char *msg, const PGresult *res)
{
    tpl_build_t *b = ud;
    if (!job_ok(b, err, "creating the template database failed", msg))
        return;
    if (b->t->source == TPL_BUILTIN)
        built(b);
    else
        connect_to(b, b->t->dbname, on_tpl_db_conn);
}

void tpl_build_start(tpl_t *t)
{
    if (t->build)
        return;
    tpl_build_t *b = build_new(t, B_BUILD);
    if (!b)
        return;
    tpl_set_state(t, TPL_BUILDING);
    log_info("tpl", "building template %s (%.12s, %d files)", t->name, t->hash, t->nfiles);
    if (util_random_password(t->owner_password, 32) < 0) {
        fail(b, "no randomness for the owner's password");
        return;
    }
    char stmts[12][512];
    int n = create_sql(t, t->owner_password, stmts);
    const char *sql[12];
    for (int i = 0; i < n; i++)
        sql[i] = stmts[i];
    if (admin(b, sql, n, on_created) < 0)
        fail(b, "the server is not reachable");
}

/* ---- client templates: the claim ------------------------------------ */

/* A caller's callback still owed when its build is forgotten. */
typedef struct owed {
    tpl_claim_cb cb;
    void *ud;
} owed_t;

/* Forget t's build, if any; what it owes its caller is returned, to pay
 * once the caller's own state is settled (the callback may re-enter). */
static owed_t forget(tpl_t *t)
{
    owed_t o = {NULL, NULL};
    if (t->build) {
        o.cb = take_cb(t->build, &o.ud);
        finish(t->build);
    }
    return o;
}

static void pay(owed_t o, tpl_t *t, const char *why)
{
    if (o.cb)
        o.cb(t, -ECANCELED, why, o.ud);
}

static void claim_ready(tpl_build_t *b)
{
    tpl_t *t = b->t;
    void *ud;
    tpl_claim_cb cb = take_cb(b, &ud);
    finish(b);
    if (cb)
        cb(t, 0, NULL, ud);
}

static void on_claim_created(void *ud, int err, const char *msg, const PGresult *res)
{
    tpl_build_t *b = ud;
    if (job_ok(b, err, "creating the template database failed", msg))
        connect_to(b, b->t->dbname, on_tpl_db_conn);
}

int tpl_claim_start(tpl_t *t, const void *claimer, tpl_claim_cb cb, void *ud)
{
    if (t->build || t->claimer || t->state != TPL_PENDING)
        return -EBUSY;
    if (util_random_password(t->owner_password, 32) < 0)
        return -EIO;
    tpl_build_t *b = build_new(t, B_CLAIM);
    if (!b)
        return -ENOMEM;
    b->cb = cb;
    b->ud = ud;
    t->claimer = claimer;
    tpl_set_state(t, TPL_BUILDING);
    log_info("tpl", "template %s (%.12s): claimed for migration by a client", t->name, t->hash);
    char stmts[12][512];
    int n = create_sql(t, t->owner_password, stmts);
    const char *sql[12];
    for (int i = 0; i < n; i++)
        sql[i] = stmts[i];
    if (admin(b, sql, n, on_claim_created) < 0) {
        t->claimer = NULL;
        b->cb = NULL; /* the caller hears it from the return value */
        finish(b);
        tpl_set_state(t, TPL_PENDING);
        return -ENOTCONN;
    }
    return 0;
}

static void on_abandoned(void *ud, int err, const char *msg, const PGresult *res)
{
    tpl_build_t *b = ud;
    if (detached(b))
        return;
    tpl_t *t = b->t;
    void *ud2;
    tpl_claim_cb cb = take_cb(b, &ud2);
    finish(b);
    if (err)
        log_warn("tpl", "dropping abandoned template %s: %s", t->name, msg);
    if (t->state == TPL_BUILDING)
        tpl_set_state(t, TPL_PENDING);
    if (cb)
        cb(t, 0, NULL, ud2);
    tpl_offer_claim(t);
}

int tpl_claim_finish(tpl_t *t, bool ok, tpl_claim_cb cb, void *ud)
{
    /* Nothing to freeze yet: the claim's own reply is still to come. */
    if (ok && t->build && t->build->what == B_CLAIM)
        return -EAGAIN;
    /* A claim still being set up (abandoned), or an earlier finalize:
     * replaced, and their callers told. */
    owed_t owed = forget(t);
    tpl_build_t *b = build_new(t, ok ? B_FINISH : B_ABANDON);
    if (!b) {
        pay(owed, t, "out of memory; retry");
        return -ENOMEM;
    }
    b->cb = cb;
    b->ud = ud;
    char s[5][512];
    int n = 0;
    if (ok) {
        n = freeze_sql(t, s);
    } else {
        t->claimer = NULL;
        snprintf(s[n++], 512, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", t->dbname);
        snprintf(s[n++], 512, "DROP ROLE IF EXISTS \"%s\"", t->owner);
    }
    const char *sql[] = {s[0], s[1], s[2], s[3], s[4]};
    int rc = 0;
    if (admin(b, sql, n, ok ? on_frozen : on_abandoned) < 0) {
        b->cb = NULL; /* the caller hears it from the return value */
        finish(b);
        rc = -ENOTCONN;
    }
    pay(owed, t,
        ok ? "template.finalize was sent again; the last one answers"
           : "the claim was abandoned before it was ready");
    return rc;
}

/* ---- forgetting and dropping ---------------------------------------- */

void tpl_build_abort(tpl_t *t, const char *why)
{
    t->claimer = NULL;
    pay(forget(t), t, why);
}

void tpl_shared_close(tpl_t *t)
{
    if (t->shared) {
        pgc_t *c = t->shared;
        t->shared = NULL;
        pgc_close(c);
    }
}

static void on_dropped(void *ud, int err, const char *msg, const PGresult *res)
{
    tpl_build_t *b = ud;
    if (detached(b))
        return;
    tpl_t *t = b->t;
    finish(b);
    if (err && err != -ECANCELED)
        log_warn("tpl", "dropping template %s (%.12s): %s", t->name, t->hash, msg);
    tpl_dropped(t);
}

int tpl_build_drop(tpl_t *t)
{
    char s[4][512];
    int n = 0;
    if (t->source != TPL_BUILTIN) /* never template0 */
        snprintf(s[n++], 512, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", t->dbname);
    if (t->schema) {
        snprintf(s[n++], 512, "DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", t->shared_db);
        snprintf(s[n++], 512, "DROP ROLE IF EXISTS \"%s\"", t->shared_db);
    }
    if (t->owner[0])
        snprintf(s[n++], 512, "DROP ROLE IF EXISTS \"%s\"", t->owner);
    if (n == 0)
        return -1;
    tpl_build_abort(t, "the template was dropped; call template.ensure again");
    tpl_shared_close(t);
    tpl_build_t *b = build_new(t, B_DROP);
    if (!b)
        return -1;
    const char *sql[] = {s[0], s[1], s[2], s[3]};
    if (admin(b, sql, n, on_dropped) < 0) {
        finish(b);
        return -1;
    }
    return 0;
}
