#include "rd_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm.h"
#include "list.h"
#include "rd_uv.h"
#include "util.h"

typedef enum {
    RDC_CONNECTING,
    RDC_AUTHENTICATING,
    RDC_UP,
    RDC_DOWN,   /* failed or lost, and reported */
    RDC_CLOSED, /* the owner closed it: report nothing more */
    RDC__COUNT
} rdc_state_t;

static const char *const rdc_state_names[] = {"connecting", "authenticating", "up", "down",
                                              "closed"};
static const unsigned rdc_allowed[RDC__COUNT] = {
    [RDC_CONNECTING] = FSM_TO(RDC_AUTHENTICATING) | FSM_TO(RDC_DOWN) | FSM_TO(RDC_CLOSED),
    [RDC_AUTHENTICATING] = FSM_TO(RDC_UP) | FSM_TO(RDC_DOWN) | FSM_TO(RDC_CLOSED),
    [RDC_UP] = FSM_TO(RDC_DOWN) | FSM_TO(RDC_CLOSED),
    [RDC_DOWN] = FSM_TO(RDC_CLOSED),
};
static const fsm_def_t rdc_fsm = {"redis", RDC__COUNT, rdc_state_names, rdc_allowed};

struct rdc {
    char name[48];
    redisAsyncContext *ac; /* NULL once hiredis has freed it */
    rdc_state_t state;
    int err; /* why it went down, for the callbacks that follow */
    char errmsg[128];
    list_t cmds;         /* sent, unanswered: oldest first */
    int busy;            /* inside one of our callbacks: not freed until it returns */
    uv_timer_t deadline; /* connect deadline, then the oldest command's */
    int connect_timeout_ms, command_timeout_ms;
    rdc_status_cb cb;
    void *ud;
    char user[64];
    char password[128];
};

typedef struct rdc_cmd {
    list_node_t node; /* in c->cmds */
    rdc_t *c;
    uint64_t deadline_ms;
    rdc_reply_cb cb;
    void *ud;
} rdc_cmd_t;

static void set_state(rdc_t *c, rdc_state_t to)
{
    c->state = fsm_step(&rdc_fsm, (int)c->state, (int)to, c->name);
}

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Free once the owner closed it, hiredis has let go, and no callback of
 * ours is outstanding or running. The timer's close callback frees, on a
 * later loop turn: a free that hiredis deferred (asked for inside one of its
 * callbacks) still calls on_disconnect with c before the stack unwinds. */
static void maybe_free(rdc_t *c)
{
    if (c->state == RDC_CLOSED && !c->ac && list_empty(&c->cmds) && c->busy == 0 &&
        !uv_is_closing((uv_handle_t *)&c->deadline))
        uv_close((uv_handle_t *)&c->deadline, timer_closed);
}

static void report(rdc_t *c, int err, const char *msg)
{
    if (c->state == RDC_CLOSED)
        return;
    c->busy++;
    c->cb(c, err, msg, c->ud);
    c->busy--;
}

/* Went down (before or after being up): remember why, tell the owner once. */
static void down(rdc_t *c, int err, const char *msg)
{
    if (c->state == RDC_DOWN || c->state == RDC_CLOSED)
        return;
    c->err = err;
    if (msg != c->errmsg)
        snprintf(c->errmsg, sizeof c->errmsg, "%s", msg ? msg : "connection lost");
    set_state(c, RDC_DOWN);
    uv_timer_stop(&c->deadline);
    report(c, err, c->errmsg);
}

static void on_deadline(uv_timer_t *h);

/* The timer follows the oldest unanswered command once up. */
static void arm_for_oldest(rdc_t *c)
{
    list_node_t *n = list_first(&c->cmds);
    if (c->state != RDC_UP || !n) {
        if (c->state == RDC_UP)
            uv_timer_stop(&c->deadline);
        return;
    }
    uint64_t due = list_entry(n, rdc_cmd_t, node)->deadline_ms, now = util_now_ms();
    uv_timer_start(&c->deadline, on_deadline, due > now ? due - now : 0, 0);
}

/* A command failed without a reply: closed by its owner (-ECANCELED), or
 * lost, which the owner hears first, so that it knows why before any of
 * its commands' callbacks run. */
static void on_no_reply(rdc_t *c, const redisAsyncContext *ac)
{
    if (c->state == RDC_CLOSED || c->state == RDC_DOWN)
        return;
    down(c, -ECONNRESET, ac && ac->errstr[0] ? ac->errstr : "connection lost");
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rdc_cmd_t *cmd = privdata;
    rdc_t *c = cmd->c;
    redisReply *reply = r;
    list_remove(&c->cmds, &cmd->node);
    c->busy++;
    if (!reply)
        on_no_reply(c, ac);
    if (cmd->cb) {
        if (!reply)
            cmd->cb(cmd->ud, c->err ? c->err : -ECANCELED, c->err ? c->errmsg : "connection closed",
                    NULL);
        else if (reply->type == REDIS_REPLY_ERROR)
            cmd->cb(cmd->ud, -EIO, reply->str, reply);
        else
            cmd->cb(cmd->ud, 0, NULL, reply);
    }
    free(cmd);
    c->busy--;
    if (reply)
        arm_for_oldest(c);
    maybe_free(c);
}

/* hiredis frees the context once this returns or, inside one of its
 * callbacks, once that returns; pending callbacks run with NULL first. */
static void free_context(rdc_t *c)
{
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    c->busy++;
    redisAsyncFree(ac);
    c->busy--;
}

/* Silent past a deadline: give up on the connection, so every pending
 * command fails and the owner hears -ETIMEDOUT. */
static void on_deadline(uv_timer_t *h)
{
    rdc_t *c = h->data;
    char msg[128];
    if (c->state == RDC_UP)
        snprintf(msg, sizeof msg, "no reply within %d ms", c->command_timeout_ms);
    else
        snprintf(msg, sizeof msg, "not connected and authenticated within %d ms",
                 c->connect_timeout_ms);
    c->busy++;
    down(c, -ETIMEDOUT, msg); /* the owner first: it may close, failing the commands */
    if (c->ac)
        free_context(c); /* pending commands fail with -ETIMEDOUT */
    c->busy--;
    maybe_free(c);
}

static void on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    rdc_t *c = ac->data;
    redisReply *reply = r;
    if (!reply || c->state != RDC_AUTHENTICATING)
        return; /* the disconnect callback reports */
    if (reply->type == REDIS_REPLY_ERROR) {
        char msg[256];
        snprintf(msg, sizeof msg, "AUTH refused: %s", reply->str);
        c->busy++;
        down(c, -EACCES, msg);
        if (c->ac)
            free_context(c); /* deferred by hiredis: we are in its callback */
        c->busy--;
        return;
    }
    set_state(c, RDC_UP);
    uv_timer_stop(&c->deadline);
    report(c, 0, NULL);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    rdc_t *c = ac->data;
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees it after a failed connect */
        c->busy++;
        down(c, -ECONNREFUSED, ac->errstr);
        c->busy--;
        maybe_free(c);
        return;
    }
    if (c->state != RDC_CONNECTING)
        return;
    set_state(c, RDC_AUTHENTICATING);
    const char *argv[] = {"AUTH", c->user, c->password};
    redisAsyncCommandArgv(ac, on_auth, NULL, 3, argv, NULL);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rdc_t *c = ac->data;
    c->ac = NULL; /* hiredis frees it when this returns */
    c->busy++;
    if (c->err)
        down(c, c->err, c->errmsg);
    else
        down(c, -ECONNRESET, status == REDIS_OK ? "connection closed" : ac->errstr);
    c->busy--;
    maybe_free(c);
}

rdc_t *rdc_connect(const rdc_opts_t *o, rdc_status_cb cb, void *ud)
{
    rdc_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    redisAsyncContext *ac =
        o->path ? redisAsyncConnectUnix(o->path) : redisAsyncConnect(o->host, o->port);
    if (!ac || ac->err || rd_uv_attach(ac, o->loop) != REDIS_OK) {
        if (ac)
            redisAsyncFree(ac);
        free(c);
        return NULL;
    }
    snprintf(c->name, sizeof c->name, "%s connection", o->name ? o->name : "redis");
    snprintf(c->user, sizeof c->user, "%s", o->user);
    snprintf(c->password, sizeof c->password, "%s", o->password);
    list_init(&c->cmds);
    c->connect_timeout_ms = o->connect_timeout_ms;
    c->command_timeout_ms = o->command_timeout_ms;
    c->cb = cb;
    c->ud = ud;
    c->state = RDC_CONNECTING;
    uv_timer_init(o->loop, &c->deadline);
    c->deadline.data = c;
    uv_timer_start(&c->deadline, on_deadline, (uint64_t)o->connect_timeout_ms, 0);
    ac->data = c;
    c->ac = ac;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return c;
}

int rdc_command(rdc_t *c, int argc, const char **argv, rdc_reply_cb cb, void *ud)
{
    if (!c->ac || c->state != RDC_UP)
        return -ENOTCONN;
    rdc_cmd_t *cmd = malloc(sizeof *cmd);
    if (!cmd)
        return -ENOMEM;
    cmd->c = c;
    cmd->cb = cb;
    cmd->ud = ud;
    cmd->deadline_ms = util_now_ms() + (uint64_t)c->command_timeout_ms;
    if (redisAsyncCommandArgv(c->ac, on_reply, cmd, argc, argv, NULL) != REDIS_OK) {
        free(cmd);
        return -ENOTCONN;
    }
    list_append(&c->cmds, &cmd->node);
    if (list_first(&c->cmds) == &cmd->node)
        arm_for_oldest(c);
    return 0;
}

void rdc_close(rdc_t *c)
{
    if (!c || c->state == RDC_CLOSED)
        return;
    set_state(c, RDC_CLOSED);
    uv_timer_stop(&c->deadline);
    if (c->ac)
        free_context(c); /* pending callbacks run with -ECANCELED */
    maybe_free(c);
}

int rdc_is_up(const rdc_t *c)
{
    return c && c->state == RDC_UP;
}
