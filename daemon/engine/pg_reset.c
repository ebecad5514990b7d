#include "pg_reset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm.h"
#include "inst.h"
#include "log.h"
#include "pg_detect.h"
#include "pg_engine.h"
#include "pg_scram.h"
#include "tpl.h"
#include "util.h"

/* How long ended sessions may take to leave pg_stat_activity before the
 * release gives up (and the pool drops the database). */
#define END_TIMEOUT_MS 5000
/* How often a release looks again for its holder's sessions while they
 * close (within the grace) or end (after pg_terminate_backend). */
#define POLL_MS 2

/* A release of a database from a migrated template runs on a superuser
 * session in the lease database: the one kept there since the last release
 * (or opened after the clone), else a new one. Opening one costs as much as
 * a clone of a small template on a loaded server (BENCHMARKS.md, section 7),
 * so it is kept between leases (not opened before the first release:
 * preparing a database opens no session in it), up to a budget of the server's connections
 * (KEPT_SHARE of max_connections, all pools together): past it, releases
 * open their own and close it after. It is a session of the daemon's
 * superuser, which the release never counts or ends as the holder's; a drop
 * closes it first (and DROP … WITH (FORCE) would end it anyway).
 *
 * A database of the built-in template has no tables or sequences: anything
 * a lease does there moves the database's tuple counters, which the admin
 * connection reads from outside (pg_stat_database), so its release runs
 * wholly on an admin connection, with no session in the database. */
#define KEPT_SHARE 4

typedef enum rj_state {
    RJ_STARTING,  /* policy, session */
    RJ_LOOKING,   /* logins blocked; the check (without detection: a count of sessions) */
    RJ_WAITING,   /* the holder's sessions are open: release_grace_ms to close them */
    RJ_ENDING,    /* past the grace: ended, polled until none is left */
    RJ_CHECKING,  /* sessions gone: the check again */
    RJ_DECIDING,  /* the verdict */
    RJ_CLEARING,  /* rows reset: DELETE + VACUUM the changed tables */
    RJ_LOADING,   /* rows reset: seed rows, setval, new baseline */
    RJ_REOPENING, /* new password, login allowed again */
    RJ_RECLONING, /* unusable: the pool drops it */
    RJ_ENDED,     /* pg_end_sessions: none left, the caller drops it */
    RJ__COUNT
} rj_state_t;

static const char *const rj_names[RJ__COUNT] = {
    [RJ_STARTING] = "starting",   [RJ_LOOKING] = "looking",     [RJ_WAITING] = "waiting",
    [RJ_ENDING] = "ending",       [RJ_CHECKING] = "checking",   [RJ_DECIDING] = "deciding",
    [RJ_CLEARING] = "clearing",   [RJ_LOADING] = "loading",     [RJ_REOPENING] = "reopening",
    [RJ_RECLONING] = "recloning", [RJ_ENDED] = "ended",
};

static const unsigned rj_allowed[RJ__COUNT] = {
    [RJ_STARTING] = FSM_TO(RJ_LOOKING) | FSM_TO(RJ_RECLONING),
    [RJ_LOOKING] = FSM_TO(RJ_DECIDING) | FSM_TO(RJ_WAITING) | FSM_TO(RJ_REOPENING) |
                   FSM_TO(RJ_RECLONING) | FSM_TO(RJ_ENDED),
    [RJ_WAITING] = FSM_TO(RJ_ENDING) | FSM_TO(RJ_CHECKING) | FSM_TO(RJ_REOPENING) |
                   FSM_TO(RJ_RECLONING) | FSM_TO(RJ_ENDED),
    [RJ_ENDING] = FSM_TO(RJ_CHECKING) | FSM_TO(RJ_REOPENING) | FSM_TO(RJ_RECLONING) |
                  FSM_TO(RJ_ENDED),
    [RJ_CHECKING] = FSM_TO(RJ_DECIDING) | FSM_TO(RJ_RECLONING),
    [RJ_DECIDING] = FSM_TO(RJ_REOPENING) | FSM_TO(RJ_CLEARING) | FSM_TO(RJ_LOADING) |
                    FSM_TO(RJ_RECLONING),
    [RJ_CLEARING] = FSM_TO(RJ_LOADING) | FSM_TO(RJ_RECLONING),
    [RJ_LOADING] = FSM_TO(RJ_REOPENING) | FSM_TO(RJ_RECLONING),
    [RJ_REOPENING] = 0,
    [RJ_RECLONING] = 0,
    [RJ_ENDED] = 0,
};

static const fsm_def_t rj_fsm = {"release", RJ__COUNT, rj_names, rj_allowed};

typedef struct rjob {
    slot_t *s;
    tpl_t *t;
    pgc_t *conn; /* into the lease database (NULL: on an admin connection) */
    bool prepare; /* conn is new: the check is not prepared there yet */
    rj_state_t state;
    uv_timer_t poll; /* the next look at the holder's sessions; closed by finish */
    bool detect; /* database isolation: run the detector */
    uint64_t t0, t_check; /* release, check started */
    reset_action_t action;
    reset_verdict_t verdict; /* VERDICT__COUNT until the check answered */
    pgd_state_t now;
    unsigned *changed; /* tables to reload */
    int nchanged;
    char password[33];
    pg_ended_cb ended; /* pg_end_sessions: called instead of the pool */
    void *ended_ud;
} rjob_t;

/* Sessions of ours in lease databases, kept or in use (one server). */
static int open_conns;

static void set_state(rjob_t *j, rj_state_t to)
{
    j->state = (rj_state_t)fsm_step(&rj_fsm, (int)j->state, (int)to, j->s->dbname);
}

static const kind_cfg_t *kind_cfg(const tpl_t *t)
{
    const config_t *cfg = &t->d->cfg;
    for (int i = 0; t->source != TPL_BUILTIN && i < cfg->n_templates; i++)
        if (strcmp(cfg->templates[i].name, t->name) == 0)
            return &cfg->templates[i].k;
    return &cfg->postgres;
}

static bool builtin(const tpl_t *t)
{
    return t->source == TPL_BUILTIN;
}

/* The template version's cache; made by the entry points (release,
 * baseline), which fail with -ENOMEM when they cannot, so every step after
 * them finds it. */
static pgd_seed_t *seed_of(pool_t *p)
{
    if (!p->engine_data) {
        p->engine_data = calloc(1, sizeof(pgd_seed_t));
        p->engine_data_free = pgd_seed_free;
    }
    return p->engine_data;
}

/* ---- sessions of ours in lease databases ------------------------------ */

static void conn_close(pgc_t *c)
{
    if (!c)
        return;
    open_conns--;
    pgc_close(c);
}

static pgc_t *conn_open(tpl_t *t, const char *dbname, pgc_status_cb cb, void *ud)
{
    pgc_t *c = pg_connect_db(t->d->pg, dbname, cb, ud);
    if (c)
        open_conns++;
    return c;
}

/* A kept session broke (server restart, a crash-restart): forget it; the
 * next release opens a new one. */
static void on_kept_status(pgc_t *c, int err, const char *msg, void *ud)
{
    (void)msg;
    slot_t *s = ud;
    pgd_base_t *base = s->engine;
    if (err == 0 || !base || base->kept != c)
        return;
    base->kept = NULL;
    conn_close(c);
}

/* While a release uses it, its steps' callbacks report breakage. */
static void on_job_conn(pgc_t *c, int err, const char *msg, void *ud)
{
    (void)c, (void)err, (void)msg, (void)ud;
}

static int budget(const tpl_t *t)
{
    return t->d->cfg.postgres.server_max_connections / KEPT_SHARE;
}

/* After a release that reused or reloaded the database: keep its session
 * for the next one, within the budget (c is counted already). */
static void keep(slot_t *s, tpl_t *t, pgc_t *c)
{
    pgd_base_t *base = s->engine;
    if (!base || base->kept || !pgc_is_up(c) || open_conns > budget(t)) {
        conn_close(c);
        return;
    }
    base->kept = c;
    pgc_set_status_cb(c, on_kept_status, s);
}

/* ---- the end of a release ------------------------------------------------ */

static void on_job_closed(uv_handle_t *h)
{
    free(h->data);
}

/* The job's memory goes once its timer has closed (after this callback). */
static void job_discard(rjob_t *j)
{
    uv_close((uv_handle_t *)&j->poll, on_job_closed);
}

static reset_verdict_t verdict_of(reset_action_t a)
{
    return a == RESET_REUSE ? VERDICT_CLEAN : a == RESET_RELOAD ? VERDICT_ROWS : VERDICT_DIRTY;
}

static void finish(rjob_t *j, int err, const char *msg)
{
    slot_t *s = j->s;
    uint64_t now = util_now_ms();
    char why[256]; /* msg may live in j */
    snprintf(why, sizeof why, "%s", msg ? msg : "");
    if (j->ended) { /* only the sessions: the caller's drop goes on */
        pg_ended_cb cb = j->ended;
        void *ud = j->ended_ud;
        conn_close(j->conn);
        job_discard(j);
        cb(ud, err == POOL_ERR_RECLONE ? -EIO : err, err ? why : NULL);
        return;
    }
    if (j->detect && (err == 0 || err == POOL_ERR_RECLONE)) {
        pool_note_reset(s->pool, j->action, now - j->t0);
        if (j->verdict != VERDICT__COUNT)
            reset_policy_record(&s->pool->reset_policy, verdict_of(j->action),
                                (double)(now - j->t_check));
    }
    if (err == 0)
        memcpy(s->password, j->password, sizeof s->password);
    if (j->conn && err == 0)
        keep(s, j->t, j->conn);
    else
        conn_close(j->conn);
    pgd_state_free(&j->now);
    free(j->changed);
    job_discard(j);
    pool_slot_done(s, err, why, now);
}

static int admin(rjob_t *j, const char *const *sql, int n, pgc_done_cb cb)
{
    return pg_admin_exec(j->t->d->pg, sql, n, cb, j);
}

/* On the release's session in the database, else on an admin connection. */
static int run(rjob_t *j, const char *const *sql, int n, pgc_done_cb cb)
{
    return j->conn ? pgc_exec(j->conn, sql, n, cb, j) : admin(j, sql, n, cb);
}

/* Not reusable: hand it to the pool to drop and clone anew (the drop undoes
 * IS_TEMPLATE first, which a lease may have set). */
static void reclone(rjob_t *j, int err, const char *why)
{
    log_debug("engine", "%s: reclone: %s", j->s->dbname, why ? why : "");
    set_state(j, RJ_RECLONING);
    j->action = RESET_RECLONE;
    finish(j, err ? err : POOL_ERR_RECLONE, why);
}

static void on_reopened(void *ud, int err, const char *msg, const PGresult *res)
{
    (void)res;
    rjob_t *j = ud;
    finish(j, err, msg);
}

/* The end of a release: a new password while logins are still blocked,
 * then logins of the role still under way are ended, then login is
 * allowed again. A login reads the role's verifier once, when its SCRAM
 * exchange starts, and PostgreSQL checks nothing of the password after the
 * proof: the old holder could start one before its release and send the
 * proof once the database is handed out again. Logins that start after the
 * new password read it; those already under way are server children not
 * yet in pg_stat_activity whose process title starts with the role
 * ("postgres: ROLE DB HOST authentication"): the second statement ends
 * them (test_release.sh, a stalled login). It reads /proc through the
 * server, so it runs where we run the server (process and docker runtimes:
 * titles on, no cluster_name before the role); an external server is its
 * owner's, and README says what that leaves open. The password is set
 * last, not with NOLOGIN: a holder's session may set one of its own until
 * its end. */
static void reopen(rjob_t *j)
{
    set_state(j, RJ_REOPENING);
    char password[320], stale[1024], login[160];
    pg_cred_t cred;
    if (pg_cred_take(j->t->d->loop, &cred) < 0) {
        finish(j, -EIO, "cannot make a password");
        return;
    }
    memcpy(j->password, cred.password, sizeof j->password);
    const char *n = j->s->dbname;
    snprintf(password, sizeof password, "ALTER ROLE \"%s\" PASSWORD '%s'", n, cred.verifier);
    /* Only children not in pg_stat_activity are read: a server with many
     * sessions has many children, and a title costs a file read. */
    snprintf(stale, sizeof stale,
             "SELECT count(pg_terminate_backend(k.pid))::text FROM "
             "(SELECT split_part(pg_read_file('/proc/self/stat'), ' ', 4) AS pm) p, "
             "LATERAL regexp_split_to_table(btrim(pg_read_file('/proc/' || p.pm || '/task/' || "
             "p.pm || '/children')), ' ') c, LATERAL (SELECT c::int AS pid) k "
             "WHERE c <> '' AND k.pid NOT IN (SELECT a.pid FROM pg_stat_get_activity(NULL) a "
             "WHERE a.pid IS NOT NULL) AND starts_with(encode(pg_read_binary_file('/proc/' || "
             "k.pid || '/cmdline', 0, 256, true), 'escape'), 'postgres: %s ')",
             n);
    snprintf(login, sizeof login, "ALTER ROLE \"%s\" LOGIN", n);
    const char *with_stale[] = {password, stale, login}, *without[] = {password, login};
    bool external = j->t->d->pg->external;
    if (run(j, external ? without : with_stale, external ? 2 : 3, on_reopened) < 0)
        finish(j, -ENOTCONN, "lost the connection to the server");
}

/* ---- rows reset --------------------------------------------------------- */

static void on_loaded(void *ud, int err, const char *msg, const PGresult *res)
{
    rjob_t *j = ud;
    pgd_base_t *base = j->s->engine;
    if (err) {
        reclone(j, 0, msg);
        return;
    }
    pgd_state_t fresh = {0};
    if (pgd_parse(res, NULL, &fresh) < 0) {
        pgd_state_free(&fresh);
        reclone(j, 0, "could not read the new baseline");
        return;
    }
    pgd_state_free(&base->indb);
    base->indb = fresh;
    reopen(j);
}

/* The seed rows of the changed tables as INSERT statements, one after the
 * other (written once into one growing buffer: the seed rows can be
 * megabytes); NULL when memory runs out. */
static char *seed_inserts(rjob_t *j)
{
    const pgd_seed_t *seed = seed_of(j->s->pool);
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    bool ok = f != NULL;
    for (int i = 0; ok && i < j->nchanged; i++) {
        const pgd_table_t *t = pgd_seed_find(seed, j->changed[i]);
        if (!t->rows)
            continue;
        char *lit = PQescapeLiteral(pgc_raw(j->conn), t->rows, strlen(t->rows));
        ok = lit && fprintf(f,
                            "INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM (SELECT "
                            "r::%s AS x FROM unnest(%s::text[]) r OFFSET 0) s;\n",
                            t->name, t->cols, t->fields, t->name, lit) >= 0;
        PQfreemem(lit);
    }
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok) {
        free(body);
        return NULL;
    }
    return body;
}

/* Putting the rows back runs the template's own code: CHECK constraints,
 * domain checks, generated columns, index expressions. Its author may be
 * any local user, so it runs as the template's owner, never as our
 * superuser: the INSERTs are the body of a SECURITY DEFINER function that
 * role owns, inside which PostgreSQL refuses SET ROLE and SET SESSION
 * AUTHORIZATION (the way back to the session's superuser). The dollar
 * quote is random, and a body that contains it (seed rows are the
 * author's data) is not run. Our session's search_path is pg_catalog's
 * alone; the function's is the one the template's migrations ran with
 * ("$user", public: $user is the owner here), as its code expects: what it
 * finds there runs as the owner. Three statements into *sql, or -1. */
static int as_owner_sql(rjob_t *j, const char *body, char **sql)
{
    char tag[17] = "";
    if (!j->t->owner[0] || util_random_password(tag, 16) < 0 || strstr(body, tag))
        return -1;
    if (asprintf(&sql[0],
                 "CREATE FUNCTION pg_temp.dbl_reload() RETURNS void LANGUAGE plpgsql "
                 "SECURITY DEFINER SET search_path = \"$user\", public "
                 "AS $dbl%s$BEGIN\n%s\nEND$dbl%s$",
                 tag, body, tag) < 0)
        return -1;
    if (asprintf(&sql[1], "ALTER FUNCTION pg_temp.dbl_reload() OWNER TO \"%s\"", j->t->owner) < 0) {
        free(sql[0]);
        return -1;
    }
    if (asprintf(&sql[2], "SELECT pg_temp.dbl_reload(); DROP FUNCTION pg_temp.dbl_reload()") < 0) {
        free(sql[0]), free(sql[1]);
        return -1;
    }
    return 0;
}

/* Seed rows of the changed tables, the template's sequence values back,
 * and the new baseline read in this same session after a forced flush
 * (by the check, prepared here: its in-database rows). */
static void load(rjob_t *j)
{
    set_state(j, RJ_LOADING);
    const pgd_base_t *base = j->s->engine;
    int max = base->indb.nseqs + 9, n = 0;
    char **sql = calloc((size_t)max, sizeof *sql);
    char *body = seed_inserts(j);
    /* Any statement missing would hand out a table without its rows: every
     * allocation is checked, and a miss reclones instead. session_
     * replication_role (superuser-only to set) stays in force in the
     * owner's function: no foreign-key or ordinary trigger fires. */
    bool ok = sql && body && (sql[n++] = strdup("BEGIN")) &&
              (sql[n++] = strdup("SET LOCAL session_replication_role = replica"));
    if (ok && body[0]) {
        ok = as_owner_sql(j, body, sql + n) == 0;
        n += ok ? 3 : 0;
    }
    for (int i = 0; ok && i < base->indb.nseqs; i++) {
        const pgd_seq_t *q = &base->indb.seqs[i];
        char value[48], *called = value;
        snprintf(value, sizeof value, "%s", q->value);
        strsep(&called, ":");
        ok = (sql[n] = malloc(128)) != NULL;
        if (ok)
            snprintf(sql[n++], 128, "SELECT setval(%u, %s, %s)", q->oid, value,
                     called && *called ? called : "false");
    }
    ok = ok && (sql[n++] = strdup("COMMIT")) &&
         (sql[n++] = strdup("SELECT pg_stat_force_next_flush()")) &&
         (sql[n++] = strdup("EXECUTE dbl_check"));
    if (!ok || pgc_exec(j->conn, (const char *const *)sql, n, on_loaded, j) < 0)
        reclone(j, 0, "could not queue the reload");
    for (int i = 0; sql && i < n; i++)
        free(sql[i]);
    free(sql);
    free(body);
}

static void on_cleared(void *ud, int err, const char *msg, const PGresult *res)
{
    rjob_t *j = ud;
    if (err) {
        reclone(j, 0, msg);
        return;
    }
    /* VACUUM could not truncate (a lock in the way): the reloaded rows would
     * not land where a fresh clone has them. */
    if (!res || PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "0") != 0) {
        reclone(j, POOL_ERR_RECLONE, "a reset table kept its pages");
        return;
    }
    load(j);
}

typedef enum { AS_DELETE, AS_NAME, AS_OID } join_t;

/* The changed tables as "DELETE FROM ONLY t1; …", "t1, t2" or oids. */
static char *join_names(rjob_t *j, join_t how)
{
    const pgd_seed_t *seed = seed_of(j->s->pool);
    size_t len = 1;
    for (int i = 0; i < j->nchanged; i++)
        len += strlen(pgd_seed_find(seed, j->changed[i])->name) + 32;
    char *out = malloc(len);
    size_t off = 0;
    for (int i = 0; out && i < j->nchanged; i++) {
        const char *name = pgd_seed_find(seed, j->changed[i])->name;
        if (how == AS_DELETE)
            off += (size_t)snprintf(out + off, len - off, "DELETE FROM ONLY %s; ", name);
        else if (how == AS_NAME)
            off += (size_t)snprintf(out + off, len - off, "%s%s", i ? ", " : "", name);
        else
            off += (size_t)snprintf(out + off, len - off, "%s%u", i ? ", " : "", j->changed[i]);
    }
    return out;
}

static void clear(rjob_t *j)
{
    set_state(j, RJ_CLEARING);
    char *dels = join_names(j, AS_DELETE);
    char *names = join_names(j, AS_NAME);
    char *oids = join_names(j, AS_OID);
    char *del = NULL, *vac = NULL, *check = NULL;
    if (dels && names && oids && asprintf(&vac, "VACUUM %s", names) > 0 &&
        asprintf(&check,
                 "SELECT count(*)::text FROM pg_class WHERE oid IN (%s) AND pg_relation_size(oid) > 0",
                 oids) > 0 &&
        asprintf(&del,
                 "DO $$BEGIN SET LOCAL session_replication_role = replica; %s END$$", dels) > 0) {
        const char *sql[] = {del, vac, check};
        if (pgc_exec(j->conn, sql, 3, on_cleared, j) < 0)
            reclone(j, 0, "lost the connection to the database");
    } else {
        reclone(j, -ENOMEM, "out of memory");
    }
    free(dels), free(names), free(oids), free(del), free(vac), free(check);
}

/* ---- detection ---------------------------------------------------------- */

/* The in-database verdict (migrated templates): clean, rows or dirty. */
static void decide_in_database(rjob_t *j, const PGresult *res)
{
    pgd_base_t *base = j->s->engine;
    pool_t *p = j->s->pool;
    bool seqs = false;
    reset_verdict_t v = pgd_parse(res, NULL, &j->now) < 0
                            ? VERDICT_DIRTY
                            : pgd_compare(&base->indb, &j->now, &j->changed, &j->nchanged, &seqs);
    pgd_seed_t *seed = seed_of(p);
    if (v == VERDICT_ROWS && seed->state == SEED_UNKNOWN)
        seed->state = SEED_WANTED; /* the next clone takes it */
    for (int i = 0; v == VERDICT_ROWS && i < j->nchanged; i++)
        if (seed->state != SEED_READY || !pgd_seed_find(seed, j->changed[i]))
            v = VERDICT_DIRTY;
    j->action = reset_action_for(v, seed->state == SEED_READY && seed->reloadable);
    log_debug("engine", "%s released: %s (%d tables, sequences %s)", j->s->dbname,
              reset_action_name(j->action), j->nchanged, seqs ? "moved" : "unchanged");
    if (j->action == RESET_REUSE)
        reopen(j);
    else if (j->action == RESET_RECLONE)
        reclone(j, POOL_ERR_RECLONE, "changed beyond rows");
    else if (j->nchanged > 0)
        clear(j);
    else
        load(j);
}

static void wait_for_sessions(rjob_t *j);
static void on_poll_due(uv_timer_t *h);

static void on_checked(void *ud, int err, const char *msg, const PGresult *res)
{
    rjob_t *j = ud;
    pgd_base_t *base = j->s->engine;
    pgd_shared_t now = {0};
    j->verdict = VERDICT_DIRTY; /* until shown otherwise */
    if (err) { /* a template sequence dropped */
        set_state(j, RJ_DECIDING);
        reclone(j, err == -ECONNRESET || err == -ETIMEDOUT ? err : POOL_ERR_RECLONE, msg);
        return;
    }
    bool parsed = pgd_parse(res, &now, NULL) == 0;
    /* The holder's sessions are still open (closing, or not): what the
     * check read may not hold their last counters yet. It is read again
     * once they are gone (and the sessions count came first in it: no
     * counter read after a zero count can be missing a session's). */
    if (parsed && now.sessions > 0 && j->state == RJ_LOOKING) {
        wait_for_sessions(j);
        return;
    }
    set_state(j, RJ_DECIDING);
    bool db_counters = builtin(j->t);
    if (!parsed || !pgd_shared_equal(&base->shared, &now, db_counters)) {
        reclone(j, POOL_ERR_RECLONE, "shared catalogs, sessions or stats changed");
        return;
    }
    if (db_counters) { /* the built-in template: nothing in it to look at */
        j->action = RESET_REUSE;
        reopen(j);
        return;
    }
    decide_in_database(j, res);
}

/* A release's first statement: the lease role's logins blocked. Before a
 * drop the role may be missing (a create that failed half-way). */
static const char *block_sql(const rjob_t *j, char *buf, size_t len)
{
    if (j->ended)
        snprintf(buf, len,
                 "DO $$BEGIN IF EXISTS (SELECT FROM pg_roles WHERE rolname = '%s') THEN "
                 "ALTER ROLE \"%s\" NOLOGIN; END IF; END$$",
                 j->s->dbname, j->s->dbname);
    else
        snprintf(buf, len, "ALTER ROLE \"%s\" NOLOGIN", j->s->dbname);
    return buf;
}

/* The check: one statement, the shared row (epoch, sessions, shared
 * catalogs, the database's counters) first and then, from inside the
 * database, its relations' counters and sequences. In a lease database it
 * is prepared once per session (planning it cost more than running it).
 * With block, logins are blocked first, in the same round trip. */
static int check(rjob_t *j, bool block)
{
    char shared[4096], blk[320], *prep = NULL, *indb = NULL;
    const char *stmts[3];
    int n = 0, rc;
    if (block)
        stmts[n++] = block_sql(j, blk, sizeof blk);
    /* The shared query's text only where it is sent: a kept session has it
     * prepared already. */
    if (builtin(j->t) || j->prepare)
        pgd_shared_sql(shared, sizeof shared, j->s->dbname, j->t->owner);
    if (builtin(j->t)) {
        stmts[n++] = shared;
    } else {
        if (j->prepare) {
            const pgd_base_t *base = j->s->engine;
            if (!(indb = pgd_indb_sql(&base->indb)) ||
                asprintf(&prep, "PREPARE dbl_check AS %s UNION ALL %s", shared, indb) < 0) {
                free(indb);
                return -ENOMEM;
            }
            stmts[n++] = prep;
            j->prepare = false;
        }
        stmts[n++] = "EXECUTE dbl_check";
    }
    j->t_check = util_now_ms();
    rc = run(j, stmts, n, on_checked);
    free(prep);
    free(indb);
    return rc;
}

/* The holder's sessions are gone: check (again), or without detection
 * give the database its new password (or, ending them for a drop, hand
 * it back). */
static void sessions_gone(rjob_t *j)
{
    int rc;
    if (j->ended) {
        set_state(j, RJ_ENDED);
        finish(j, 0, NULL);
        return;
    }
    if (!j->detect) {
        reopen(j);
        return;
    }
    set_state(j, RJ_CHECKING);
    if ((rc = check(j, false)) < 0)
        reclone(j, rc, "lost the connection to the server");
}

/* A count of the holder's sessions said none. */
static bool none_left(const PGresult *res)
{
    return res && PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") == 0;
}

static void on_polled(void *ud, int err, const char *msg, const PGresult *res)
{
    rjob_t *j = ud;
    if (err) {
        reclone(j, err, msg);
        return;
    }
    if (none_left(res))
        sessions_gone(j);
    else
        uv_timer_start(&j->poll, on_poll_due, POLL_MS, 0);
}

/* Within the grace, count the holder's sessions; past it, end them
 * (pg_terminate_backend without a timeout, which would poll in 100 ms
 * steps) and count what was still listed: the release goes on only once
 * pg_stat_activity lists none, so a signal that went nowhere (a false
 * return) is noticed by the next look. */
static void on_poll_due(uv_timer_t *h)
{
    rjob_t *j = h->data;
    uint64_t now = util_now_ms();
    int grace = kind_cfg(j->t)->release_grace_ms;
    if (j->state == RJ_WAITING && now >= j->t0 + (uint64_t)grace)
        set_state(j, RJ_ENDING);
    if (j->state == RJ_ENDING && now >= j->t0 + (uint64_t)grace + END_TIMEOUT_MS) {
        char why[320];
        snprintf(why, sizeof why, "sessions of %s still open %d ms after they were ended",
                 j->s->dbname, END_TIMEOUT_MS);
        reclone(j, -ETIMEDOUT, why);
        return;
    }
    char sql[512];
    pgd_sessions_sql(sql, sizeof sql, j->s->dbname, j->detect,
                     j->state == RJ_ENDING ? "count(pg_terminate_backend(a.pid))::text"
                                           : "count(*)::text");
    const char *stmts[] = {sql};
    if (run(j, stmts, 1, on_polled) < 0)
        reclone(j, -ENOTCONN, "lost the connection to the server");
}

/* Sessions of the holder are still listed (closing as the release came,
 * or left open): look again every POLL_MS, from the loop, with no
 * connection held in between. */
static void wait_for_sessions(rjob_t *j)
{
    set_state(j, RJ_WAITING);
    uv_timer_start(&j->poll, on_poll_due, POLL_MS, 0);
}

static void on_counted(void *ud, int err, const char *msg, const PGresult *res)
{
    rjob_t *j = ud;
    if (err)
        reclone(j, err, msg);
    else if (none_left(res))
        sessions_gone(j);
    else
        wait_for_sessions(j);
}

/* Block logins and look: with detection the check itself (it counts the
 * sessions too: none left, and its verdict stands), else a count. */
static int look(rjob_t *j)
{
    set_state(j, RJ_LOOKING);
    if (j->detect)
        return check(j, true);
    char block[320], count[512];
    pgd_sessions_sql(count, sizeof count, j->s->dbname, false, "count(*)::text");
    const char *sql[] = {block_sql(j, block, sizeof block), count};
    return run(j, sql, 2, on_counted);
}

static rjob_t *job_new(slot_t *s, tpl_t *t, bool detect)
{
    rjob_t *j = calloc(1, sizeof *j);
    if (j) {
        j->s = s;
        j->t = t;
        j->detect = detect;
        j->t0 = util_now_ms();
        j->state = RJ_STARTING;
        j->verdict = VERDICT__COUNT;
        uv_timer_init(t->d->loop, &j->poll);
        j->poll.data = j;
    }
    return j;
}

static int release(slot_t *s, tpl_t *t, bool detect, bool clean_hint)
{
    if (detect && !seed_of(s->pool))
        return -ENOMEM;
    rjob_t *j = job_new(s, t, detect);
    if (!j)
        return -ENOMEM;
    if (!detect) {
        int rc = look(j);
        if (rc < 0)
            job_discard(j);
        return rc;
    }
    reset_mode_t mode = RESET_AUTO;
    reset_mode_parse(kind_cfg(t)->reset, &mode);
    pgd_base_t *base = s->engine;
    if (!base || !reset_policy_should_check(&s->pool->reset_policy, mode, clean_hint)) {
        s->pool->counters.unchecked++;
        reclone(j, POOL_ERR_RECLONE, base ? "policy: clone" : "no baseline");
        return 0;
    }
    /* The kept session (up, or still connecting: statements queue), else a
     * new one; the built-in template needs none. */
    if (!builtin(t)) {
        if (base->kept && !pgc_is_up(base->kept)) /* broken, not reported yet */
            pg_reset_close_session(s);
        j->prepare = !base->kept;
        j->conn = base->kept ? base->kept : conn_open(t, s->dbname, on_job_conn, j);
        base->kept = NULL;
        if (!j->conn) {
            reclone(j, -ENOTCONN, "cannot connect to the database");
            return 0;
        }
        pgc_set_status_cb(j->conn, on_job_conn, j);
    }
    int rc = look(j);
    if (rc < 0)
        reclone(j, rc, "lost the connection to the server");
    return 0;
}

int pg_release_db(slot_t *s, tpl_t *t, bool clean_hint)
{
    return release(s, t, true, clean_hint);
}

int pg_release_schema(slot_t *s, tpl_t *t)
{
    return release(s, t, false, true);
}

int pg_end_sessions(slot_t *s, tpl_t *t, pg_ended_cb cb, void *ud)
{
    rjob_t *j = job_new(s, t, false);
    if (!j)
        return -ENOMEM;
    j->ended = cb;
    j->ended_ud = ud;
    int rc = look(j);
    if (rc < 0)
        job_discard(j);
    return rc;
}

void pg_reset_forget(slot_t *s, void *ud)
{
    (void)ud;
    pgd_base_t *base = s->engine;
    if (!base)
        return;
    conn_close(base->kept);
    pgd_state_free(&base->indb);
    free(base);
    s->engine = NULL;
}

void pg_reset_close_session(slot_t *s)
{
    pgd_base_t *base = s->engine;
    if (base && base->kept) {
        conn_close(base->kept);
        base->kept = NULL;
    }
}

/* ---- the baseline of a fresh clone ------------------------------------ */

typedef struct bjob {
    slot_t *s;
    tpl_t *t;
    pgc_t *conn; /* the session that finished the clone, or our own */
    bool own;    /* conn is ours: close it when done */
    pgd_base_t *base;
    pg_baseline_cb cb;
    void *ud;
} bjob_t;

static void base_done(bjob_t *b, int err, const char *msg)
{
    if (err == 0) {
        pg_reset_forget(b->s, NULL);
        b->s->engine = b->base;
    } else if (b->base) {
        pgd_state_free(&b->base->indb);
        free(b->base);
    }
    if (b->own && b->conn)
        pgc_close(b->conn);
    pg_baseline_cb cb = b->cb;
    void *ud = b->ud;
    free(b);
    cb(ud, err, msg);
}

static void seed_failed(bjob_t *b, const char *msg)
{
    pgd_seed_clear(seed_of(b->s->pool));
    log_warn("engine", "%s: cannot save the template's seed rows (%s): releases that wrote "
                       "rows are recloned until a later clone manages",
             b->s->dbname, msg ? msg : "unexpected result");
    base_done(b, 0, NULL);
}

static void on_seed_rows(void *ud, int err, const char *msg, const PGresult *res)
{
    bjob_t *b = ud;
    pgd_seed_t *seed = seed_of(b->s->pool);
    if (err || pgd_seed_rows(seed, res) < 0) {
        seed_failed(b, msg);
        return;
    }
    seed->state = SEED_READY;
    base_done(b, 0, NULL);
}

static void on_seed_tables(void *ud, int err, const char *msg, const PGresult *res)
{
    bjob_t *b = ud;
    pgd_seed_t *seed = seed_of(b->s->pool);
    if (err || pgd_seed_tables(seed, res) < 0) {
        seed_failed(b, msg);
        return;
    }
    seed->state = SEED_FETCHING;
    char *sql = pgd_seed_rows_sql(seed);
    if (!sql) { /* no tables: nothing to reload */
        seed->state = SEED_READY;
        base_done(b, 0, NULL);
        return;
    }
    const char *stmts[] = {sql};
    if (pgc_exec(b->conn, stmts, 1, on_seed_rows, b) < 0)
        seed_failed(b, "lost the connection");
    free(sql);
}

/* Seed rows are taken from a pristine clone (the template database
 * itself refuses connections), once per template version, and only after a
 * release found rows to reload. */
static void fetch_seed_or_finish(bjob_t *b)
{
    pgd_seed_t *seed = seed_of(b->s->pool);
    if (b->conn && seed->state == SEED_WANTED) {
        seed->state = SEED_FETCHING;
        const char *stmts[] = {PGD_TABLES_SQL};
        if (pgc_exec(b->conn, stmts, 1, on_seed_tables, b) == 0)
            return;
        pgd_seed_clear(seed);
    }
    base_done(b, 0, NULL);
}

static void on_pristine(void *ud, int err, const char *msg, const PGresult *res)
{
    bjob_t *b = ud;
    pgd_seed_t *cache = seed_of(b->s->pool);
    if (err || pgd_parse(res, NULL, &b->base->indb) < 0) {
        base_done(b, err ? err : -EIO, err ? msg : "unexpected baseline result");
        return;
    }
    if (!cache->pristine_known && pgd_state_copy(&cache->pristine, &b->base->indb) == 0)
        cache->pristine_known = true;
    fetch_seed_or_finish(b);
}

static void on_own_conn(pgc_t *c, int err, const char *msg, void *ud)
{
    bjob_t *b = ud;
    if (b->conn) /* broken later: the running query reports it */
        return;
    if (err) {
        pgc_close(c);
        base_done(b, err, msg);
        return;
    }
    b->conn = c;
    const char *sql[] = {PGD_INDB_SQL};
    if (pgc_exec(c, sql, 1, on_pristine, b) < 0)
        base_done(b, -ENOTCONN, "lost the connection to the new database");
}

static void on_base_read(void *ud, int err, const char *msg, const PGresult *res)
{
    bjob_t *b = ud;
    if (err) {
        base_done(b, err, msg);
        return;
    }
    if (pgd_parse(res, &b->base->shared, b->conn ? &b->base->indb : NULL) < 0) {
        base_done(b, -EIO, "unexpected baseline result");
        return;
    }
    if (b->conn) {
        fetch_seed_or_finish(b);
        return;
    }
    /* No session ran in the clone: its counters are all zero and its
     * sequences the template's, the same for every clone of the version. */
    pgd_seed_t *cache = seed_of(b->s->pool);
    if (b->t->source == TPL_BUILTIN) { /* template0: no tables, no sequences */
        snprintf(b->base->indb.catalogs, sizeof b->base->indb.catalogs, "%s",
                 "d41d8cd98f00b204e9800998ecf8427e");
        cache->state = SEED_READY;
        base_done(b, 0, NULL);
        return;
    }
    if (cache->pristine_known && cache->state != SEED_WANTED) {
        if (pgd_state_copy(&b->base->indb, &cache->pristine) < 0)
            base_done(b, -ENOMEM, "out of memory");
        else
            base_done(b, 0, NULL);
        return;
    }
    b->own = true;
    if (!pg_connect_db(b->t->d->pg, b->s->dbname, on_own_conn, b))
        base_done(b, -ENOTCONN, "cannot connect to the new database");
}

int pg_take_baseline(slot_t *s, tpl_t *t, pgc_t *conn, pg_baseline_cb cb, void *ud)
{
    if (!seed_of(s->pool))
        return -ENOMEM;
    bjob_t *b = calloc(1, sizeof *b);
    if (b)
        b->base = calloc(1, sizeof *b->base);
    if (!b || !b->base) {
        if (b)
            free(b->base);
        free(b);
        return -ENOMEM;
    }
    pgd_base_t *base = b->base;
    *b = (bjob_t){.s = s, .t = t, .conn = conn, .base = base, .cb = cb, .ud = ud};
    char shared[4096], *both = NULL;
    pgd_shared_sql(shared, sizeof shared, s->dbname, t->owner);
    int rc;
    if (conn) {
        if (asprintf(&both, "%s UNION ALL %s", shared, PGD_INDB_SQL) < 0)
            both = NULL;
        const char *sql[] = {"SELECT pg_stat_force_next_flush()", both};
        rc = both ? pgc_exec(conn, sql, 2, on_base_read, b) : -ENOMEM;
    } else {
        const char *sql[] = {shared};
        rc = pg_admin_exec(t->d->pg, sql, 1, on_base_read, b);
    }
    free(both);
    if (rc < 0) {
        free(b->base);
        free(b);
    }
    return rc;
}
