#include "rd_conn.h"

#include <errno.h>
#include <stdbool.h>
#include <hiredis/adapters/libuv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { RDC_CONNECTING, RDC_AUTHENTICATING, RDC_UP, RDC_DOWN } rdc_state_t;

struct rdc {
    redisAsyncContext *ac; /* NULL once hiredis has freed it */
    rdc_state_t state;
    bool closing; /* rdc_close called: report nothing more */
    int pending;  /* commands whose callback has not run */
    int busy;     /* inside one of our callbacks: not freed until it returns */
    rdc_status_cb cb;
    void *ud;
};

typedef struct rdc_cmd {
    rdc_t *c;
    rdc_reply_cb cb;
    void *ud;
} rdc_cmd_t;

/* Free once the owner closed it, hiredis has let go, and no callback of
 * ours is outstanding or running. */
static void maybe_free(rdc_t *c)
{
    if (c->closing && !c->ac && c->pending == 0 && c->busy == 0)
        free(c);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    rdc_cmd_t *cmd = privdata;
    rdc_t *c = cmd->c;
    redisReply *reply = r;
    c->pending--;
    c->busy++;
    if (cmd->cb) {
        if (!reply)
            cmd->cb(cmd->ud, c->closing ? -ECANCELED : -ECONNRESET,
                    ac && ac->errstr[0] ? ac->errstr : "connection lost", NULL);
        else if (reply->type == REDIS_REPLY_ERROR)
            cmd->cb(cmd->ud, -EIO, reply->str, reply);
        else
            cmd->cb(cmd->ud, 0, NULL, reply);
    }
    free(cmd);
    c->busy--;
    maybe_free(c);
}

static void report(rdc_t *c, int err, const char *msg)
{
    if (c->closing)
        return;
    c->busy++;
    c->cb(c, err, msg, c->ud);
    c->busy--;
}

static void on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    rdc_t *c = ac->data;
    redisReply *reply = r;
    if (!reply || c->state != RDC_AUTHENTICATING)
        return; /* the disconnect callback reports */
    if (reply->type == REDIS_REPLY_ERROR) {
        char msg[256];
        snprintf(msg, sizeof msg, "AUTH refused: %s", reply->str);
        c->state = RDC_DOWN;
        report(c, -EACCES, msg);
        redisAsyncDisconnect(ac);
        return;
    }
    c->state = RDC_UP;
    report(c, 0, NULL);
}

typedef struct auth_ctx {
    char user[64];
    char password[128];
} auth_ctx_t;

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    rdc_t *c = ac->data;
    auth_ctx_t *a = (auth_ctx_t *)((char *)c + sizeof *c);
    if (status != REDIS_OK) {
        c->state = RDC_DOWN;
        c->ac = NULL; /* hiredis frees it after a failed connect */
        report(c, -ECONNREFUSED, ac->errstr);
        maybe_free(c);
        return;
    }
    c->state = RDC_AUTHENTICATING;
    const char *argv[] = {"AUTH", a->user, a->password};
    redisAsyncCommandArgv(ac, on_auth, NULL, 3, argv, NULL);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rdc_t *c = ac->data;
    bool was = c->state == RDC_UP || c->state == RDC_AUTHENTICATING;
    c->state = RDC_DOWN;
    c->ac = NULL; /* hiredis frees it when this returns */
    if (was)
        report(c, -ECONNRESET, status == REDIS_OK ? "connection closed" : ac->errstr);
    maybe_free(c);
}

static rdc_t *connect_ctx(uv_loop_t *loop, redisAsyncContext *ac, const char *user,
                          const char *password, rdc_status_cb cb, void *ud);

rdc_t *rdc_connect_unix(uv_loop_t *loop, const char *path, const char *user, const char *password,
                        rdc_status_cb cb, void *ud)
{
    return connect_ctx(loop, redisAsyncConnectUnix(path), user, password, cb, ud);
}

rdc_t *rdc_connect_tcp(uv_loop_t *loop, const char *host, int port, const char *user,
                       const char *password, rdc_status_cb cb, void *ud)
{
    return connect_ctx(loop, redisAsyncConnect(host, port), user, password, cb, ud);
}

static rdc_t *connect_ctx(uv_loop_t *loop, redisAsyncContext *ac, const char *user,
                          const char *password, rdc_status_cb cb, void *ud)
{
    /* The credentials live right behind the struct, for on_connect. */
    rdc_t *c = calloc(1, sizeof *c + sizeof(auth_ctx_t));
    if (!c)
        return NULL;
    auth_ctx_t *a = (auth_ctx_t *)((char *)c + sizeof *c);
    snprintf(a->user, sizeof a->user, "%s", user);
    snprintf(a->password, sizeof a->password, "%s", password);
    c->cb = cb;
    c->ud = ud;
    if (!ac || ac->err || redisLibuvAttach(ac, loop) != REDIS_OK) {
        if (ac)
            redisAsyncFree(ac);
        free(c);
        return NULL;
    }
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
    if (redisAsyncCommandArgv(c->ac, on_reply, cmd, argc, argv, NULL) != REDIS_OK) {
        free(cmd);
        return -ENOTCONN;
    }
    c->pending++;
    return 0;
}

void rdc_close(rdc_t *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    c->busy++; /* hiredis may call on_disconnect (and free) right inside */
    if (c->ac && c->state == RDC_CONNECTING) {
        /* hiredis calls no callback for a context that never connected. */
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac);
    } else if (c->ac) {
        redisAsyncDisconnect(c->ac); /* pending callbacks run, then on_disconnect */
    }
    c->busy--;
    maybe_free(c);
}

int rdc_is_up(const rdc_t *c)
{
    return c && c->state == RDC_UP && !c->closing;
}
