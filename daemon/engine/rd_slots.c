#include "rd_slots.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dk_container.h"
#include "fsm.h"
#include "log.h"
#include "rd_info.h"
#include "rd_server.h"
#include "util.h"

#define SHARED_RESTART_MS 1000

/* The engine's side of one Redis template (t->rd), for both isolations.
 * It lives until the template is freed, which is after the pool's last
 * slot: every job (it holds a slot) and every server callback finds it. */
typedef enum rd_state {
    RD_STARTING,   /* sweeping leftover containers, or the shared server is starting */
    RD_READY,      /* serving */
    RD_RESTARTING, /* db isolation: the shared server died; a new one soon */
    RD_STOPPED,    /* shut down: nothing more starts */
    RD__COUNT
} rd_state_t;

static const char *const rd_state_names[] = {"starting", "ready", "restarting", "stopped"};
static const unsigned rd_allowed[RD__COUNT] = {
    [RD_STARTING] = FSM_TO(RD_READY) | FSM_TO(RD_RESTARTING) | FSM_TO(RD_STOPPED),
    [RD_READY] = FSM_TO(RD_RESTARTING) | FSM_TO(RD_STOPPED),
    [RD_RESTARTING] = FSM_TO(RD_STARTING) | FSM_TO(RD_STOPPED),
};
static const fsm_def_t rd_fsm = {"redis", RD__COUNT, rd_state_names, rd_allowed};

typedef struct rd_engine {
    tpl_t *t;
    rd_state_t state;
    rd_events_t ev;
    /* db isolation */
    rsrv_t *srv; /* the shared server, while it runs */
    char password[33];
    unsigned char *used; /* database numbers in use */
    int databases;
    uv_timer_t restart;
} rd_engine_t;

static void set_state(rd_engine_t *e, rd_state_t to)
{
    e->state = fsm_step(&rd_fsm, (int)e->state, (int)to, "redis engine");
}

static rd_engine_t *engine_of(const slot_t *s)
{
    return ((tpl_t *)s->pool->ops_ud)->rd;
}

/* A multi-command job: the slot is done when the last reply arrives. While
 * commands are being queued the job holds one count of its own, so a reply
 * can never finish it half-sent. */
typedef struct rd_job {
    slot_t *slot;
    int left; /* replies to come, plus the hold */
    int err;
    char msg[256];
    char password[33];
    reset_action_t action; /* a release's outcome, once known; RESET__COUNT: none */
    uint64_t t0;           /* when the release began */
} rd_job_t;

static rd_job_t *job_new(slot_t *s)
{
    rd_job_t *j = calloc(1, sizeof *j);
    if (j) {
        j->slot = s;
        j->left = 1;
        j->action = RESET__COUNT;
        j->t0 = util_now_ms();
    }
    return j;
}

static void on_job_reply(void *ud, int err, const char *msg, const redisReply *reply)
{
    (void)reply;
    rd_job_t *j = ud;
    if (err && !j->err) {
        j->err = err;
        snprintf(j->msg, sizeof j->msg, "%s", msg ? msg : "redis command failed");
    }
    if (--j->left > 0)
        return;
    slot_t *s = j->slot;
    if (!j->err && j->password[0])
        memcpy(s->password, j->password, sizeof s->password);
    int e = j->err;
    char m[256];
    snprintf(m, sizeof m, "%s", j->msg);
    uint64_t now = util_now_ms();
    if (!e)
        pool_note_reset(s->pool, j->action, now - j->t0); /* ignores RESET__COUNT */
    free(j);
    pool_slot_done(s, e, m, now);
}

/* Queue one command of the job, its reply to cb (which ends with
 * on_job_reply). 0, or < 0 (then it counts as failed). */
static int job_send_cb(rsrv_t *r, rd_job_t *j, rdc_reply_cb cb, int argc, const char **argv)
{
    int rc = rsrv_command(r, argc, argv, cb, j);
    if (rc == 0)
        j->left++;
    else if (!j->err) {
        j->err = rc;
        snprintf(j->msg, sizeof j->msg, "%s: the redis-server is not reachable", argv[0]);
    }
    return rc;
}

static int job_send(rsrv_t *r, rd_job_t *j, int argc, const char **argv)
{
    return job_send_cb(r, j, on_job_reply, argc, argv);
}

/* All queued: drop the hold (finishes the job if no reply is to come). */
static void job_release(rd_job_t *j)
{
    on_job_reply(j, 0, NULL, NULL);
}

/* Finish a job early, as failed (nothing of it is queued). */
static void job_fail(rd_job_t *j, int err, const char *msg)
{
    on_job_reply(j, err, msg, NULL);
}

/* Queue the job's commands (argv lists). When the first cannot be queued
 * the job is freed and -ENOTCONN returned (pool_slot_done is not called);
 * otherwise the replies finish it. */
static int run(rsrv_t *r, rd_job_t *j, int n, int argc[], const char **argv[])
{
    for (int k = 0; k < n; k++) {
        if (job_send(r, j, argc[k], argv[k]) < 0) {
            if (k == 0) {
                free(j);
                return -ENOTCONN;
            }
            break;
        }
    }
    job_release(j);
    return 0;
}

/* ---- a server per lease -------------------------------------------------- */

static void on_slot_server(rsrv_t *r, rsrv_event_t ev, const char *msg, void *ud)
{
    slot_t *s = ud;
    if (ev == RSRV_UP) {
        if (s->state == SLOT_CREATING) {
            s->port = r->port;
            snprintf(s->host, sizeof s->host, "%s", r->host);
            pool_slot_done(s, 0, NULL, util_now_ms());
        }
        return;
    }
    rd_engine_t *e = engine_of(s);
    if (ev == RSRV_DIED)
        e->ev.server_died(e->ev.ud);
    if (ev == RSRV_DIED && msg)
        snprintf(s->lost_why, sizeof s->lost_why, "%s", msg);
    s->engine = NULL; /* the server is gone */
    switch (s->state) {
    case SLOT_CREATING:
    case SLOT_DROPPING:
        pool_slot_done(s, s->state == SLOT_CREATING ? -EIO : 0, msg, util_now_ms());
        break;
    case SLOT_READY:
    case SLOT_FAILED:
        pool_slot_lost(s, util_now_ms());
        break;
    case SLOT_LEASED:
        e->ev.slot_lost(e->ev.ud, s);
        break;
    default: /* ROTATING: its commands failed with the connection */
        break;
    }
}

/* [redis] maxmemory_mb for this many leases, in bytes (0: no limit). */
static long long maxmemory(const dbld_t *d, int leases)
{
    return (long long)d->cfg.redis.maxmemory_mb * leases * 1024 * 1024;
}

static int inst_create(slot_t *s, void *ud)
{
    tpl_t *t = ud;
    if (util_random_password(s->password, 32) < 0)
        return -EIO;
    s->db = 0;
    rsrv_conf_t conf = {.databases = 16, .password = s->password, .maxmemory = maxmemory(t->d, 1)};
    rsrv_t *r = rsrv_start(t->d, t->d->redis_bin, &conf, on_slot_server, s);
    if (!r)
        return -EIO;
    s->engine = r;
    return 0;
}

static int inst_drop(slot_t *s, void *ud)
{
    if (!s->engine)
        return -ENOTCONN;
    rsrv_stop(s->engine); /* RSRV_GONE completes it */
    return 0;
}

/* What a holder can leave on its own server, and what clears it:
 * - connections and what hangs on them (names, subscriptions, MULTI,
 *   WATCH, blocked commands, tracking): CLIENT KILL USER default;
 * - keys in any database: FLUSHALL;
 * - cached scripts, and the Lua VM they ran in: SCRIPT FLUSH;
 * - function libraries: FUNCTION FLUSH;
 * - statistics (INFO stats, commandstats): CONFIG RESETSTAT.
 * All else it could change is @admin, or denied to it (rd_server.c). */

/* The mark: rdb_changes_since_last_save of the server just wiped. Unread,
 * no release can match it, and the next one wipes again. */
static void on_mark(void *ud, int err, const char *msg, const redisReply *reply)
{
    rd_job_t *j = ud;
    rsrv_t *r = j->slot->engine;
    long long mark = -1;
    if (!err && reply && reply->type == REDIS_REPLY_STRING &&
        rd_info_int(reply->str, "rdb_changes_since_last_save", &mark) == 0)
        r->changes_mark = mark;
    else if (!err)
        r->changes_mark = -1;
    on_job_reply(j, err, msg, reply);
}

/* Every session of the lease has ended: what did it leave? Untouched, the
 * server goes back as it is; otherwise it is wiped, and its statistics reset
 * once more (the wipe's own commands would show in commandstats). */
static void on_left_behind(void *ud, int err, const char *msg, const redisReply *reply)
{
    rd_job_t *j = ud;
    rsrv_t *r = j->slot->engine;
    if (!err && !j->err) {
        const char *info = reply && reply->type == REDIS_REPLY_STRING ? reply->str : NULL;
        if (rd_info_untouched(info, r->changes_mark)) {
            j->action = RESET_REUSE;
        } else {
            j->action = RESET_FLUSH;
            const char *flush[] = {"FLUSHALL"};
            const char *scripts[] = {"SCRIPT", "FLUSH"};
            const char *functions[] = {"FUNCTION", "FLUSH"};
            const char *mark[] = {"INFO", "persistence"};
            const char *resetstat[] = {"CONFIG", "RESETSTAT"};
            job_send(r, j, 1, flush);
            job_send(r, j, 2, scripts);
            job_send(r, j, 2, functions);
            job_send_cb(r, j, on_mark, 2, mark);
            job_send(r, j, 2, resetstat);
        }
    }
    on_job_reply(j, err, msg, reply);
}

/* Back to a fresh server in place: new password first, then its sessions
 * end (so nothing of the holder runs after), then what it left is read and,
 * if anything, wiped. RESETSTAT clears none of what INFO reads here, so it
 * goes in the same round trip: an untouched server costs one. */
static int inst_reset(slot_t *s, void *ud)
{
    (void)ud;
    rd_job_t *j = job_new(s);
    if (!j || util_random_password(j->password, 32) < 0) {
        free(j);
        return -ENOMEM;
    }
    char pass[40];
    snprintf(pass, sizeof pass, ">%s", j->password);
    const char *acl[] = {"ACL", "SETUSER", "default", "resetpass", pass};
    const char *kill[] = {"CLIENT", "KILL", "USER", "default"};
    const char *info[] = {"INFO", "persistence", "keyspace", "memory", "stats"};
    const char *resetstat[] = {"CONFIG", "RESETSTAT"};
    if (job_send(s->engine, j, 5, acl) < 0) {
        free(j);
        return -ENOTCONN;
    }
    if (job_send(s->engine, j, 4, kill) == 0 &&
        job_send_cb(s->engine, j, on_left_behind, 5, info) == 0)
        job_send(s->engine, j, 2, resetstat);
    job_release(j);
    return 0;
}

const slot_ops_t rd_instance_slot_ops = {
    .create = inst_create, .drop = inst_drop, .rotate = inst_reset, .reset = inst_reset};

/* ---- a database number per lease on a shared server ------------------------ */

/* The shared server, if commands can go to it now. */
static rsrv_t *shared_srv(const slot_t *s)
{
    rd_engine_t *e = engine_of(s);
    return e->state == RD_READY ? e->srv : NULL;
}

static int db_create(slot_t *s, void *ud)
{
    (void)ud;
    rd_engine_t *e = engine_of(s);
    int n = 0;
    while (n < e->databases && e->used[n])
        n++;
    if (n == e->databases)
        return -ENOSPC;
    rd_job_t *j = job_new(s);
    if (!j)
        return -ENOMEM;
    char num[16];
    snprintf(num, sizeof num, "%d", n);
    const char *select[] = {"SELECT", num};
    const char *flush[] = {"FLUSHDB"};
    int argc[] = {2, 1};
    const char **argv[] = {select, flush};
    int rc = run(shared_srv(s), j, 2, argc, argv);
    if (rc == 0) {
        e->used[n] = 1;
        s->db = n;
        s->port = e->srv->port;
        snprintf(s->host, sizeof s->host, "%s", e->srv->host);
        memcpy(s->password, e->password, sizeof s->password);
    }
    return rc;
}

static int db_drop(slot_t *s, void *ud)
{
    (void)ud;
    engine_of(s)->used[s->db] = 0;
    rd_job_t *j = job_new(s);
    if (!j)
        return -ENOMEM;
    const char *ping[] = {"PING"}; /* nothing to do: answer on the loop */
    int argc[] = {1};
    const char **argv[] = {ping};
    return run(shared_srv(s), j, 1, argc, argv);
}

/* The ids of the sessions on database db as user default, from CLIENT LIST
 * lines ("id=7 addr=… db=3 … user=default …"). Returns how many (<= max). */
static int sessions_on(const char *list, int db, char ids[][24], int max)
{
    char want[24];
    snprintf(want, sizeof want, " db=%d ", db);
    int n = 0;
    for (const char *line = list; *line && n < max;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[1024];
        snprintf(buf, sizeof buf, " %.*s ", (int)(len < 1000 ? len : 1000), line);
        if (strstr(buf, want) && strstr(buf, " user=default ") &&
            sscanf(buf, " id=%23s", ids[n]) == 1) {
            char *sp = strchr(ids[n], ' ');
            if (sp)
                *sp = '\0';
            n++;
        }
        line += len + (end ? 1 : 0);
    }
    return n;
}

/* Kill the sessions on this number, then wipe it. The reply may come after
 * the shared server was stopped or lost (its pending commands fail then):
 * only a server that is still serving gets the follow-up commands. */
static void on_client_list(void *ud, int err, const char *msg, const redisReply *reply)
{
    rd_job_t *j = ud;
    slot_t *s = j->slot;
    rsrv_t *srv = shared_srv(s);
    if (err || !reply || reply->type != REDIS_REPLY_STRING) {
        job_fail(j, err ? err : -EIO, err ? msg : "CLIENT LIST: unexpected reply");
        return;
    }
    if (!srv) {
        job_fail(j, -ENOTCONN, "the shared redis-server is gone");
        return;
    }
    char ids[64][24];
    int kills = sessions_on(reply->str, s->db, ids, 64);
    char num[16];
    snprintf(num, sizeof num, "%d", s->db);
    for (int k = 0; k < kills; k++) {
        const char *kill[] = {"CLIENT", "KILL", "ID", ids[k]};
        job_send(srv, j, 4, kill);
    }
    const char *select[] = {"SELECT", num};
    const char *flush[] = {"FLUSHDB"};
    j->action = RESET_FLUSH; /* the database is shared: what the holder did cannot be told */
    if (job_send(srv, j, 2, select) == 0)
        job_send(srv, j, 1, flush);
    job_release(j);
}

static int db_reset(slot_t *s, void *ud)
{
    (void)ud;
    rd_job_t *j = job_new(s);
    if (!j)
        return -ENOMEM;
    const char *list[] = {"CLIENT", "LIST"};
    int rc = rsrv_command(shared_srv(s), 2, list, on_client_list, j);
    if (rc < 0)
        free(j);
    return rc;
}

const slot_ops_t rd_db_slot_ops = {
    .create = db_create, .drop = db_drop, .rotate = db_reset, .reset = db_reset};

static void start_shared(rd_engine_t *e);

static void on_restart(uv_timer_t *h)
{
    rd_engine_t *e = h->data;
    set_state(e, RD_STARTING);
    start_shared(e);
}

static void restart_later(rd_engine_t *e)
{
    set_state(e, RD_RESTARTING);
    uv_timer_start(&e->restart, on_restart, SHARED_RESTART_MS, 0);
}

static void on_shared_server(rsrv_t *r, rsrv_event_t ev, const char *msg, void *ud)
{
    rd_engine_t *e = ud;
    tpl_t *t = e->t;
    if (ev == RSRV_UP) {
        log_info("redis", "shared server %s ready on %s:%d", r->name, r->host, r->port);
        set_state(e, RD_READY);
        tpl_set_state(t, TPL_READY);
        return;
    }
    /* Its pending commands have failed already (their slots moved on). */
    if (ev == RSRV_DIED)
        e->ev.server_died(e->ev.ud);
    /* Every holder hears why (its instance_down message). */
    list_node_t *it, *tmp;
    list_for_each(&t->pool->slots[SLOT_LEASED], it, tmp)
    {
        slot_t *s = list_entry(it, slot_t, node);
        if (ev == RSRV_DIED && msg)
            snprintf(s->lost_why, sizeof s->lost_why, "%s", msg);
    }
    e->srv = NULL;
    restart_later(e);
    if (t->state == TPL_READY)
        tpl_set_state(t, TPL_PENDING);
    e->ev.pool_lost(e->ev.ud, t->pool);
    memset(e->used, 0, (size_t)e->databases);
}

static void start_shared(rd_engine_t *e)
{
    dbld_t *d = e->t->d;
    /* One server, one limit: the leases' budgets together, which any one of
     * them may use up (README, "Isolation"). */
    rsrv_conf_t conf = {.databases = e->databases,
                        .password = e->password,
                        .maxmemory = maxmemory(d, e->databases),
                        .shared = true};
    if (util_random_password(e->password, 32) == 0)
        e->srv = rsrv_start(d, d->redis_bin, &conf, on_shared_server, e);
    if (!e->srv)
        restart_later(e);
}

static void engine_timer_closed(uv_handle_t *h)
{
    rd_engine_t *e = h->data;
    free(e->used);
    free(e);
}

static void ready_up(rd_engine_t *e)
{
    if (e->t->pool->ops == &rd_db_slot_ops) {
        start_shared(e);
        return;
    }
    set_state(e, RD_READY);
    tpl_set_state(e->t, TPL_READY);
}

static void on_swept(void *ud, int err, const char *msg)
{
    rd_engine_t *e = ud;
    if (err == -ECANCELED || e->state != RD_STARTING)
        return;
    if (err)
        log_warn("redis", "removing leftover redis containers: %s", msg);
    ready_up(e);
}

int rd_setup(tpl_t *t, const rd_events_t *ev)
{
    dbld_t *d = t->d;
    rd_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->t = t;
    e->ev = *ev;
    e->state = RD_STARTING;
    e->databases = t->pool->max_total;
    e->used = calloc((size_t)e->databases, 1);
    if (!e->used) {
        free(e);
        return -ENOMEM;
    }
    uv_timer_init(d->loop, &e->restart);
    e->restart.data = e;
    t->rd = e;
    if (strcmp(d->cfg.redis.runtime, "docker") != 0 || !d->dk) {
        ready_up(e);
        return 0;
    }
    char daemon_id[32];
    snprintf(daemon_id, sizeof daemon_id, "%s", dk_self(d->dk)->id);
    dkc_sweep(d->dk, daemon_id, "redis", on_swept, e);
    return 0;
}

void rd_shared_stop(tpl_t *t)
{
    rd_engine_t *e = t->rd;
    if (!e || e->state == RD_STOPPED)
        return;
    set_state(e, RD_STOPPED);
    uv_timer_stop(&e->restart);
    rsrv_t *srv = e->srv;
    e->srv = NULL; /* what runs while it stops sees no server */
    if (srv)
        rsrv_abandon(srv);
}

void rd_free(tpl_t *t)
{
    rd_engine_t *e = t->rd;
    if (!e)
        return;
    rd_shared_stop(t);
    t->rd = NULL;
    uv_close((uv_handle_t *)&e->restart, engine_timer_closed);
}

void rd_status_instances(const tpl_t *t, json_object *arr)
{
    if (t->pool->ops == &rd_db_slot_ops) {
        if (t->rd && t->rd->srv)
            json_object_array_add(arr, rsrv_status_json(t->rd->srv));
        return;
    }
    static const slot_state_t states[] = {SLOT_CREATING, SLOT_READY, SLOT_LEASED, SLOT_ROTATING,
                                          SLOT_DROPPING};
    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
        list_node_t *it, *tmp;
        list_for_each(&t->pool->slots[states[k]], it, tmp)
        {
            slot_t *s = list_entry(it, slot_t, node);
            if (s->engine)
                json_object_array_add(arr, rsrv_status_json(s->engine));
        }
    }
}
