/* Health of a running PostgreSQL server: tell sick from busy.
 *
 * The probe runs `SELECT 1` on a connection of its own, so it never waits
 * behind our DDL on the admin connections (a DROP DATABASE can wait a long
 * time on a stranger's half-finished login). A probe that fails or passes
 * its deadline is not yet a verdict: a fresh connection is asked too, and
 * only a server that neither answers on the probe connection nor lets a new
 * one in and answers is reported hung (inst_hung), with the evidence. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "fsm.h"
#include "inst.h"
#include "log.h"
#include "pg_engine.h"
#include "util.h"

typedef enum {
    PGH_IDLE,       /* between probes; the probe connection may be open */
    PGH_PROBING,    /* SELECT 1 (or the connect before it) in flight */
    PGH_CONFIRMING, /* the probe failed: a fresh connection is asked */
    PGH__COUNT
} pgh_state_t;

static const char *const state_names[PGH__COUNT] = {
    [PGH_IDLE] = "idle", [PGH_PROBING] = "probing", [PGH_CONFIRMING] = "confirming"};
static const unsigned allowed[PGH__COUNT] = {
    [PGH_IDLE] = FSM_TO(PGH_PROBING),
    [PGH_PROBING] = FSM_TO(PGH_IDLE) | FSM_TO(PGH_CONFIRMING),
    [PGH_CONFIRMING] = FSM_TO(PGH_IDLE),
};
static const fsm_def_t pgh_fsm = {"health probe", PGH__COUNT, state_names, allowed};

struct pg_health {
    inst_t *i;
    pgc_t *conn;
    pgh_state_t state;
    uint64_t sent_ms;
    char first[320]; /* how the probe connection failed, for the verdict */
};

static void set_state(pg_health_t *h, pgh_state_t to)
{
    h->state = (pgh_state_t)fsm_step(&pgh_fsm, (int)h->state, (int)to, h->i->name);
}

static void on_status(pgc_t *c, int err, const char *msg, void *ud);

static int open_conn(pg_health_t *h)
{
    char ci[CFG_PATH + 128];
    const char *e = NULL;
    pg_admin_conninfo(h->i, ci, sizeof ci);
    int ms = h->i->d->cfg.health_timeout_ms;
    pgc_opts_t o = {.conninfo = ci, .application_name = "dbleased-health",
                    .connect_timeout_ms = ms, .statement_timeout_ms = ms};
    h->conn = pgc_open(h->i->d->loop, &o, on_status, h, &e);
    return h->conn ? 0 : -ENOTCONN;
}

/* The admin connections' queues: what our own work was waiting on. */
static void describe_admin(const inst_t *i, char *out, size_t len)
{
    size_t n = 0;
    out[0] = '\0';
    for (int k = 0; k < ADMIN_CONNS && n < len; k++) {
        char one[160];
        pgc_describe(i->admin[k], one, sizeof one);
        n += (size_t)snprintf(out + n, len - n, "%s[%d] %s", k ? "; " : "", k, one);
    }
}

static void verdict_hung(pg_health_t *h, const char *msg)
{
    inst_t *i = h->i;
    uint64_t waited = util_now_ms() - h->sent_ms;
    char admin[700], evidence[1400];
    describe_admin(i, admin, sizeof admin);
    log_error("engine",
              "%s: hung: %s; then a fresh connection: %s after %llu ms; admin connections: %s",
              i->name, h->first, msg, (unsigned long long)waited, admin);
    snprintf(evidence, sizeof evidence,
             "postgres did not answer a health probe within %d ms, nor on a fresh connection (%s)",
             i->d->cfg.health_timeout_ms, msg);
    set_state(h, PGH_IDLE);
    inst_hung(i, evidence); /* may close the engine, us included: last */
}

static void failed(pg_health_t *h, const char *msg)
{
    pgc_t *c = h->conn;
    h->conn = NULL;
    pgc_close(c);
    if (h->state == PGH_CONFIRMING) {
        verdict_hung(h, msg);
        return;
    }
    snprintf(h->first, sizeof h->first, "the probe connection: %s after %llu ms", msg,
             (unsigned long long)(util_now_ms() - h->sent_ms));
    log_warn("engine", "%s: health probe failed (%s); asking on a fresh connection",
             h->i->name, h->first);
    set_state(h, PGH_CONFIRMING);
    h->sent_ms = util_now_ms();
    if (open_conn(h) < 0)
        verdict_hung(h, "libpq could not start a connection");
}

static void on_answer(void *ud, int err, const char *msg, const PGresult *res)
{
    pg_health_t *h = ud;
    (void)res;
    if (err == -ECANCELED)
        return; /* closed by us */
    if (err) {
        failed(h, msg);
        return;
    }
    if (h->state == PGH_CONFIRMING)
        log_warn("engine",
                 "%s: busy, not hung: %s, yet a fresh connection answered in %llu ms; keeping it",
                 h->i->name, h->first, (unsigned long long)(util_now_ms() - h->sent_ms));
    set_state(h, PGH_IDLE);
}

static int ask(pg_health_t *h)
{
    static const char *const sql[] = {"SELECT 1"};
    return pgc_exec(h->conn, sql, 1, on_answer, h);
}

static void on_status(pgc_t *c, int err, const char *msg, void *ud)
{
    pg_health_t *h = ud;
    if (c != h->conn)
        return;
    if (err == 0 && ask(h) == 0)
        return;
    if (err == 0 || h->state != PGH_IDLE) {
        failed(h, err ? msg : "cannot send the probe");
        return;
    }
    /* Broke while idle: reopen at the next tick. */
    h->conn = NULL;
    pgc_close(c);
}

void pg_health_tick(inst_t *i)
{
    if (!i->health_probe && !(i->health_probe = calloc(1, sizeof *i->health_probe)))
        return;
    pg_health_t *h = i->health_probe;
    h->i = i;
    if (h->state != PGH_IDLE)
        return; /* the connection's own deadlines end a probe */
    set_state(h, PGH_PROBING);
    h->sent_ms = util_now_ms();
    int rc = h->conn ? ask(h) : open_conn(h);
    if (rc < 0)
        failed(h, "cannot start the probe");
}

void pg_health_close(inst_t *i)
{
    pg_health_t *h = i->health_probe;
    if (!h)
        return;
    i->health_probe = NULL;
    pgc_close(h->conn);
    free(h);
}
