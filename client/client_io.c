/* libdblease: sending requests and waiting for their replies.
 *
 * The socket is non-blocking and every wait is a poll() against one deadline
 * per request, so no call blocks longer than the caller allowed. Replies are
 * matched by id: events and replies to requests we stopped waiting for are
 * read and dropped on the way. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "client_priv.h"

int64_t dbl__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

json_object *dbl__request(dbl_ctx_t *ctx, const char *op, int64_t *id)
{
    json_object *req = json_object_new_object();

    if (!req) {
        dbl__set_err(ctx, DBL_ERR_OOM, "out of memory");
        return NULL;
    }
    *id = ++ctx->priv->next_id;
    json_object_object_add(req, "id", json_object_new_int64(*id));
    json_object_object_add(req, "op", json_object_new_string(op));
    return req;
}

static void conn_lost(dbl_ctx_t *ctx, const char *why)
{
    dbl__set_err(ctx, DBL_ERR_IO,
                 "lost the connection to dbleased (%s); reconnect, attached leases are gone", why);
    dbl__disconnect(ctx);
}

/* 1 when fd is ready, 0 at the deadline. */
static int wait_fd(dbl_ctx_t *ctx, short events, int64_t deadline)
{
    struct pollfd pfd = {.fd = ctx->priv->fd, .events = events};

    for (;;) {
        int64_t left = deadline - dbl__now_ms();
        int n;

        if (left <= 0)
            return 0;
        n = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return 1; /* let the send/recv that follows report it */
    }
}

static void set_timeout_err(dbl_ctx_t *ctx)
{
    dbl__set_err(ctx, DBL_ERR_TIMEOUT,
                 "no reply from dbleased in time; it may be overloaded or hung (see its log)");
}

static int send_all(dbl_ctx_t *ctx, const char *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        /* MSG_NOSIGNAL: a daemon gone away is an error to report, not SIGPIPE. */
        ssize_t n = send(ctx->priv->fd, buf, len, MSG_NOSIGNAL);

        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!wait_fd(ctx, POLLOUT, deadline)) {
                set_timeout_err(ctx);
                return -1;
            }
        } else if (errno != EINTR) {
            conn_lost(ctx, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* One recv(): bytes, 0 at end of stream, -1 on error (errno set), waiting
 * for the socket to become readable until the deadline (-1, ETIMEDOUT). */
static ssize_t recv_some(dbl_ctx_t *ctx, char *buf, size_t len, int64_t deadline)
{
    for (;;) {
        ssize_t n = recv(ctx->priv->fd, buf, len, 0);

        if (n >= 0)
            return n;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (!wait_fd(ctx, POLLIN, deadline)) {
                errno = ETIMEDOUT;
                return -1;
            }
        } else if (errno != EINTR) {
            return -1;
        }
    }
}

int dbl__wait_closed(dbl_ctx_t *ctx, int64_t deadline)
{
    char buf[8192];
    ssize_t n;

    while (ctx->priv->fd >= 0 && (n = recv_some(ctx, buf, sizeof(buf), deadline)) != 0) {
        if (n < 0 && errno == ETIMEDOUT) {
            set_timeout_err(ctx);
            return -1;
        }
        if (n < 0)
            break; /* reset: closed all the same */
    }
    dbl__disconnect(ctx);
    return 0;
}

static int read_more(dbl_ctx_t *ctx, int64_t deadline)
{
    char buf[8192];
    ssize_t n = recv_some(ctx, buf, sizeof(buf), deadline);

    if (n > 0) {
        if (dbl_decoder_feed(&ctx->priv->dec, buf, (size_t)n) == -ENOMEM) {
            dbl__set_err(ctx, DBL_ERR_OOM, "out of memory");
            return -1;
        }
        return 0; /* an overflow shows up in dbl_decoder_next() */
    }
    if (n == 0)
        conn_lost(ctx, "the daemon closed it; did it restart?");
    else if (errno == ETIMEDOUT)
        set_timeout_err(ctx);
    else
        conn_lost(ctx, strerror(errno));
    return -1;
}

static bool reply_has_id(const dbl_reply_t *r, int64_t id)
{
    return r->id && json_object_is_type(r->id, json_type_int) &&
           json_object_get_int64(r->id) == id;
}

static void abandon(dbl_ctx_t *ctx, int64_t id)
{
    struct dbl_ctx_priv *p = ctx->priv;

    if (p->n_abandoned == DBL__MAX_ABANDONED) {
        memmove(p->abandoned, p->abandoned + 1, sizeof(p->abandoned[0]) * (p->n_abandoned - 1));
        p->n_abandoned--;
    }
    p->abandoned[p->n_abandoned++] = id;
}

/* Sends a request whose reply nobody waits for: it is dropped as stale. */
static void send_and_forget(dbl_ctx_t *ctx, json_object *req, int64_t deadline)
{
    char *line;
    size_t len;

    line = dbl_encode(req, &len);
    json_object_put(req);
    if (line)
        send_all(ctx, line, len, deadline);
    free(line);
}

static bool is_string(json_object *o, const char *key, json_object **v)
{
    return json_object_object_get_ex(o, key, v) && json_object_is_type(*v, json_type_string);
}

/* A lease nobody will use: back, clean (nobody touched it). */
static void give_back_lease(dbl_ctx_t *ctx, json_object *lease, int64_t deadline)
{
    json_object *lid, *req;
    int64_t id;

    if (!is_string(lease, "id", &lid) || !(req = dbl__request(ctx, "release", &id)))
        return;
    json_object_object_add(req, "lease", json_object_get(lid));
    json_object_object_add(req, "clean", json_object_new_boolean(1));
    send_and_forget(ctx, req, deadline);
}

/* A claim to migrate nobody will use: abandoned, so the next waiter gets it. */
static void give_back_claim(dbl_ctx_t *ctx, json_object *tmpl, int64_t deadline)
{
    json_object *state, *name, *hash, *req;
    int64_t id;

    if (!is_string(tmpl, "state", &state) || strcmp(json_object_get_string(state), "migrate") != 0 ||
        !is_string(tmpl, "name", &name) || !is_string(tmpl, "hash", &hash) ||
        !(req = dbl__request(ctx, "template.finalize", &id)))
        return;
    json_object_object_add(req, "template", json_object_get(name));
    json_object_object_add(req, "hash", json_object_get(hash));
    json_object_object_add(req, "ok", json_object_new_boolean(0));
    send_and_forget(ctx, req, deadline);
}

/* A lease we timed out on may still be granted later, and a template.ensure
 * may still hand us the claim to migrate. Nobody will ever use either, so
 * give them straight back rather than hold them until this connection
 * closes or a TTL runs out. */
static void release_abandoned(dbl_ctx_t *ctx, const dbl_reply_t *r, int64_t deadline)
{
    struct dbl_ctx_priv *p = ctx->priv;
    json_object *obj;
    size_t i;

    for (i = 0; i < p->n_abandoned && !reply_has_id(r, p->abandoned[i]); i++)
        ;
    if (i == p->n_abandoned)
        return;
    memmove(p->abandoned + i, p->abandoned + i + 1, sizeof(p->abandoned[0]) * (p->n_abandoned - i - 1));
    p->n_abandoned--;
    if (!r->ok)
        return;
    if (json_object_object_get_ex(r->root, "lease", &obj))
        give_back_lease(ctx, obj, deadline);
    else if (json_object_object_get_ex(r->root, "template", &obj))
        give_back_claim(ctx, obj, deadline);
}

static void keep_event(dbl_ctx_t *ctx, const dbl_reply_t *r)
{
    struct dbl_ctx_priv *p = ctx->priv;
    json_object *lease;
    dbl__event_t *ev;

    if (p->n_events == DBL__MAX_EVENTS) {
        memmove(p->events, p->events + 1, sizeof(p->events[0]) * (p->n_events - 1));
        p->n_events--;
    }
    ev = &p->events[p->n_events++];
    snprintf(ev->name, sizeof(ev->name), "%s", r->event);
    snprintf(ev->lease, sizeof(ev->lease), "%s",
             is_string(r->root, "lease", &lease) ? json_object_get_string(lease) : "");
}

bool dbl__next_event(dbl_ctx_t *ctx, dbl__event_t *ev)
{
    struct dbl_ctx_priv *p = ctx->priv;

    if (p->n_events == 0)
        return false;
    *ev = p->events[0];
    memmove(p->events, p->events + 1, sizeof(p->events[0]) * --p->n_events);
    return true;
}

int dbl__fd(const dbl_ctx_t *ctx)
{
    return ctx->priv->fd;
}

/* 1 when the line is the reply to id (*reply filled), 0 when it is something
 * else to skip, -1 on a malformed line. */
static int take_line(dbl_ctx_t *ctx, const char *line, size_t len, int64_t id, int64_t deadline,
                     dbl_reply_t *reply)
{
    if (dbl_reply_parse(line, len, reply) < 0) {
        dbl_reply_free(reply);
        dbl__set_err(ctx, DBL_ERR_PROTOCOL,
                     "dbleased sent a malformed reply; check that the socket is dbleased's");
        return -1;
    }
    /* Events: kept for dbl__next_event(); no public API for them yet. */
    if (reply->is_event) {
        keep_event(ctx, reply);
        dbl_reply_free(reply);
        return 0;
    }
    /* An error without an id answers a line the daemon could not read an id
     * from (line_too_long, say): with one request in flight, that is ours. */
    if (reply_has_id(reply, id) || (!reply->id && !reply->ok))
        return 1;
    release_abandoned(ctx, reply, deadline);
    dbl_reply_free(reply);
    return 0;
}

static int remote_err(dbl_ctx_t *ctx, dbl_reply_t *reply)
{
    const char *code = reply->code_name ? reply->code_name : "internal";

    if (reply->message && *reply->message)
        dbl__set_err(ctx, DBL_ERR_REMOTE, "%s", reply->message);
    else
        dbl__set_err(ctx, DBL_ERR_REMOTE, "dbleased refused the request (%s)", code);
    snprintf(ctx->code, sizeof(ctx->code), "%s", code);
    dbl_reply_free(reply);
    return -1;
}

static int await_reply(dbl_ctx_t *ctx, int64_t id, int64_t deadline, dbl_reply_t *reply)
{
    for (;;) {
        const char *line;
        size_t len;
        int n;

        while ((n = dbl_decoder_next(&ctx->priv->dec, &line, &len)) == 1) {
            int m = take_line(ctx, line, len, id, deadline, reply);

            if (m < 0)
                return -1;
            if (m > 0)
                return reply->ok ? 0 : remote_err(ctx, reply);
        }
        if (n < 0) {
            dbl__set_err(ctx, DBL_ERR_PROTOCOL,
                         "dbleased sent a line over %d bytes; check that the socket is dbleased's",
                         DBL__MAX_REPLY_LINE);
            dbl__disconnect(ctx); /* the stream cannot be resynchronised */
            return -1;
        }
        if (read_more(ctx, deadline) < 0)
            return -1;
    }
}

int dbl__poll_events(dbl_ctx_t *ctx)
{
    int64_t now = dbl__now_ms();

    for (;;) {
        const char *line;
        size_t len;
        dbl_reply_t r;
        int n;

        /* No request is waiting for a reply: id 0 matches none of ours. */
        while ((n = dbl_decoder_next(&ctx->priv->dec, &line, &len)) == 1)
            if (take_line(ctx, line, len, 0, now, &r) == 1)
                dbl_reply_free(&r);
        if (n < 0 || ctx->priv->fd < 0) {
            conn_lost(ctx, "it sent a line too long to read");
            return -1;
        }
        if (read_more(ctx, now) == 0)
            continue;
        if (ctx->err != DBL_ERR_TIMEOUT)
            return -1;
        dbl__clear_err(ctx); /* nothing more for now */
        return 0;
    }
}

int dbl__call(dbl_ctx_t *ctx, json_object *req, int64_t id, int64_t extra_ms,
              dbl_reply_t *reply)
{
    json_object *op;
    const char *op_name =
        json_object_object_get_ex(req, "op", &op) ? json_object_get_string(op) : "";
    /* Requests the daemon may answer after we stop waiting, with something
     * we hold until we give it back. */
    bool may_grant = strcmp(op_name, "lease") == 0 || strcmp(op_name, "template.ensure") == 0;
    int64_t deadline = dbl__now_ms() + ctx->priv->timeout_ms + (extra_ms > 0 ? extra_ms : 0);
    char *line;
    size_t len;
    int rc;

    memset(reply, 0, sizeof(*reply));
    dbl__clear_err(ctx);
    if (ctx->priv->fd < 0) {
        json_object_put(req);
        dbl__set_err(ctx, DBL_ERR_IO, "not connected to dbleased; connect again");
        return -1;
    }
    line = dbl_encode(req, &len);
    json_object_put(req);
    if (!line) {
        dbl__set_err(ctx, DBL_ERR_OOM, "out of memory");
        return -1;
    }
    rc = send_all(ctx, line, len, deadline);
    free(line);
    if (rc == 0)
        rc = await_reply(ctx, id, deadline, reply);
    if (rc == 0)
        dbl__clear_err(ctx); /* a failed give-back on the way is not this call's */
    else if (ctx->err == DBL_ERR_TIMEOUT && may_grant)
        abandon(ctx, id);
    return rc;
}
