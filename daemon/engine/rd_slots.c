#include "rd_slots.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "dk_container.h"
#include "rd_server.h"
#include "util.h"

#define SHARED_RESTART_MS 1000

/* The per-template state of db isolation. */
typedef struct rd_shared {
    rsrv_t *srv;
    char password[33];
    unsigned char *used; /* database numbers in use */
    int databases;
    uv_timer_t restart;
    bool stopping;
} rd_shared_t;

/* A multi-command job: the slot is done when the last reply arrives. */
typedef struct rd_job {
    slot_t *slot;
    int left;
    int err;
    char msg[256];
    char password[33];
} rd_job_t;

static rd_job_t *job_new(slot_t *s, int commands)
{
    rd_job_t *j = calloc(1, sizeof *j);
    if (j) {
        j->slot = s;
        j->left = commands;
    }
    return j;
}

static void on_job_reply(void *ud, int err, const char *msg, const redisReply *reply)
{
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
    free(j);
    pool_slot_done(s, e, m, util_now_ms());
}

/* Queue the job's commands (argv lists); on a refusal before the first is
 * queued the job is freed and -ENOTCONN returned. */
static int run(rsrv_t *r, rd_job_t *j, int n, int argc[], const char **argv[])
{
    for (int k = 0; k < n; k++) {
        if (rsrv_command(r, argc[k], argv[k], on_job_reply, j) < 0) {
            if (k == 0) {
                free(j);
                return -ENOTCONN;
            }
            /* the ones queued will fail with the connection and finish j */
            j->left -= n - k;
            return 0;
        }
    }
    return 0;
}

/* ---- a server per lease -------------------------------------------------- */

static void on_slot_server(rsrv_t *r, rsrv_event_t ev, const char *msg, void *ud)
{
    slot_t *s = ud;
    tpl_t *t = s->pool->ops_ud;
    if (ev == RSRV_UP) {
        if (s->state == SLOT_CREATING) {
            s->port = r->port;
            pool_slot_done(s, 0, NULL, util_now_ms());
        }
        return;
    }
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
        dbld_slot_lost(t->d, s);
        break;
    default: /* ROTATING: its commands fail with the connection */
        break;
    }
}

static int inst_create(slot_t *s, void *ud)
{
    tpl_t *t = ud;
    if (util_random_password(s->password, 32) < 0)
        return -EIO;
    s->db = 0;
    rsrv_t *r = rsrv_start(t->d, t->d->redis_bin, 16, s->password, on_slot_server, s);
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

/* Back to a fresh server in place: new password first, then its sessions
 * end, then the data goes (so the old holder cannot write after the wipe). */
static int inst_reset(slot_t *s, void *ud)
{
    rd_job_t *j = job_new(s, 4);
    if (!j || util_random_password(j->password, 32) < 0) {
        free(j);
        return -ENOMEM;
    }
    char pass[40];
    snprintf(pass, sizeof pass, ">%s", j->password);
    const char *acl[] = {"ACL", "SETUSER", "default", "resetpass", pass};
    const char *kill[] = {"CLIENT", "KILL", "USER", "default"};
    const char *flush[] = {"FLUSHALL"};
    const char *scripts[] = {"SCRIPT", "FLUSH"};
    int argc[] = {5, 4, 1, 2};
    const char **argv[] = {acl, kill, flush, scripts};
    return run(s->engine, j, 4, argc, argv);
}

const slot_ops_t rd_instance_slot_ops = {
    .create = inst_create, .drop = inst_drop, .rotate = inst_reset, .reset = inst_reset};

/* ---- a database number per lease on a shared server ------------------------ */

static rd_shared_t *shared(const slot_t *s)
{
    return ((tpl_t *)s->pool->ops_ud)->rd;
}

static int db_create(slot_t *s, void *ud)
{
    rd_shared_t *sh = shared(s);
    int n = 0;
    while (n < sh->databases && sh->used[n])
        n++;
    if (n == sh->databases)
        return -ENOSPC;
    rd_job_t *j = job_new(s, 2);
    if (!j)
        return -ENOMEM;
    char num[16];
    snprintf(num, sizeof num, "%d", n);
    const char *select[] = {"SELECT", num};
    const char *flush[] = {"FLUSHDB"};
    int argc[] = {2, 1};
    const char **argv[] = {select, flush};
    int rc = run(sh->srv, j, 2, argc, argv);
    if (rc == 0) {
        sh->used[n] = 1;
        s->db = n;
        s->port = sh->srv->port;
        memcpy(s->password, sh->password, sizeof s->password);
    }
    return rc;
}

static int db_drop(slot_t *s, void *ud)
{
    rd_shared_t *sh = shared(s);
    sh->used[s->db] = 0;
    rd_job_t *j = job_new(s, 1);
    if (!j)
        return -ENOMEM;
    const char *ping[] = {"PING"}; /* nothing to do: answer on the loop */
    int argc[] = {1};
    const char **argv[] = {ping};
    return run(sh->srv, j, 1, argc, argv);
}

/* CLIENT LIST lines: "id=7 addr=… db=3 … user=default …". */
static void on_client_list(void *ud, int err, const char *msg, const redisReply *reply)
{
    rd_job_t *j = ud;
    slot_t *s = j->slot;
    rd_shared_t *sh = shared(s);
    char want[24];
    snprintf(want, sizeof want, " db=%d ", s->db);
    const char *list = (!err && reply && reply->type == REDIS_REPLY_STRING) ? reply->str : "";
    /* Kill the sessions on this number, then wipe it. */
    j->left = 0;
    int kills = 0;
    char ids[64][24];
    for (const char *line = list; *line && kills < 64;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[1024];
        snprintf(buf, sizeof buf, " %.*s ", (int)(len < 1000 ? len : 1000), line);
        if (strstr(buf, want) && strstr(buf, " user=default ") && sscanf(buf, " id=%23s", ids[kills]) == 1) {
            char *sp = strchr(ids[kills], ' ');
            if (sp)
                *sp = '\0';
            kills++;
        }
        line += len + (end ? 1 : 0);
    }
    char num[16];
    snprintf(num, sizeof num, "%d", s->db);
    j->left = kills + 2;
    for (int k = 0; k < kills; k++) {
        const char *kill[] = {"CLIENT", "KILL", "ID", ids[k]};
        if (rsrv_command(sh->srv, 4, kill, on_job_reply, j) < 0)
            j->left--;
    }
    const char *select[] = {"SELECT", num};
    const char *flush[] = {"FLUSHDB"};
    int argc[] = {2, 1};
    const char **argv[] = {select, flush};
    if (rsrv_command(sh->srv, argc[0], argv[0], on_job_reply, j) < 0 ||
        rsrv_command(sh->srv, argc[1], argv[1], on_job_reply, j) < 0) {
        j->err = -ENOTCONN;
        snprintf(j->msg, sizeof j->msg, "lost the shared redis-server");
        j->left = 1;
        on_job_reply(j, 0, NULL, NULL);
    }
}

static int db_reset(slot_t *s, void *ud)
{
    rd_shared_t *sh = shared(s);
    rd_job_t *j = job_new(s, 1);
    if (!j)
        return -ENOMEM;
    const char *list[] = {"CLIENT", "LIST"};
    int rc = rsrv_command(sh->srv, 2, list, on_client_list, j);
    if (rc < 0)
        free(j);
    return rc;
}

const slot_ops_t rd_db_slot_ops = {
    .create = db_create, .drop = db_drop, .rotate = db_reset, .reset = db_reset};

static void start_shared(rd_shared_t *sh, tpl_t *t);

static void on_restart(uv_timer_t *h)
{
    tpl_t *t = h->data;
    start_shared(t->rd, t);
}

static void on_shared_server(rsrv_t *r, rsrv_event_t ev, const char *msg, void *ud)
{
    tpl_t *t = ud;
    rd_shared_t *sh = t->rd;
    if (ev == RSRV_UP) {
        log_info("redis", "shared server %s ready on 127.0.0.1:%d", r->name, r->port);
        tpl_set_state(t, TPL_READY);
        return;
    }
    sh->srv = NULL;
    if (t->state == TPL_READY)
        tpl_set_state(t, TPL_PENDING);
    dbld_pool_lost(t->d, t->pool);
    memset(sh->used, 0, (size_t)sh->databases);
    if (!sh->stopping && !dbld_stopping(t->d))
        uv_timer_start(&sh->restart, on_restart, SHARED_RESTART_MS, 0);
}

static void start_shared(rd_shared_t *sh, tpl_t *t)
{
    if (util_random_password(sh->password, 32) < 0)
        return;
    sh->srv = rsrv_start(t->d, t->d->redis_bin, sh->databases, sh->password, on_shared_server, t);
    if (!sh->srv)
        uv_timer_start(&sh->restart, on_restart, SHARED_RESTART_MS, 0);
}

static void shared_timer_closed(uv_handle_t *h)
{
    rd_shared_t *sh = h->data;
    free(sh->used);
    free(sh);
}

int rd_shared_start(tpl_t *t)
{
    rd_shared_t *sh = calloc(1, sizeof *sh);
    if (!sh)
        return -ENOMEM;
    sh->databases = t->pool->max_total;
    sh->used = calloc((size_t)sh->databases, 1);
    if (!sh->used) {
        free(sh);
        return -ENOMEM;
    }
    uv_timer_init(t->d->loop, &sh->restart);
    sh->restart.data = t;
    t->rd = sh;
    start_shared(sh, t);
    return 0;
}

void rd_shared_stop(tpl_t *t)
{
    rd_shared_t *sh = t->rd;
    if (!sh)
        return;
    sh->stopping = true;
    uv_timer_stop(&sh->restart);
    if (sh->srv) {
        sh->srv->cb = NULL; /* no more news: we are going */
        rsrv_stop(sh->srv);
        sh->srv = NULL;
    }
    t->rd = NULL;
    sh->restart.data = sh; /* the template may be gone when it closes */
    uv_close((uv_handle_t *)&sh->restart, shared_timer_closed);
}

void rd_status_instances(const tpl_t *t, json_object *arr)
{
    if (t->rd && t->rd->srv) {
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
            if (s->engine && t->rd == NULL)
                json_object_array_add(arr, rsrv_status_json(s->engine));
        }
    }
}


static void ready_up(tpl_t *t)
{
    if (t->pool->ops == &rd_db_slot_ops)
        rd_shared_start(t);
    else
        tpl_set_state(t, TPL_READY);
}

static void on_swept(void *ud, int err, const char *msg)
{
    tpl_t *t = ud;
    if (err == -ECANCELED)
        return;
    if (err)
        log_warn("redis", "removing leftover redis containers: %s", msg);
    ready_up(t);
}

void rd_setup(tpl_t *t)
{
    dbld_t *d = t->d;
    if (strcmp(d->cfg.redis.runtime, "docker") != 0 || !d->dk) {
        ready_up(t);
        return;
    }
    char daemon_id[32];
    snprintf(daemon_id, sizeof daemon_id, "%016llx", util_hash_str(d->cfg.state_dir));
    dkc_sweep(d->dk, daemon_id, "redis", on_swept, t);
}
