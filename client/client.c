/* libdblease: the context, connecting, hello, and error reporting.
 * Request/reply plumbing is in client_io.c, the operations in client_ops.c. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client_priv.h"

void dbl__clear_err(dbl_ctx_t *ctx)
{
    ctx->err = DBL_ERR_NONE;
    ctx->errstr[0] = '\0';
    ctx->code[0] = '\0';
}

void dbl__set_err(dbl_ctx_t *ctx, dbl_err_t err, const char *fmt, ...)
{
    va_list ap;

    ctx->err = err;
    ctx->code[0] = '\0';
    va_start(ap, fmt);
    vsnprintf(ctx->errstr, sizeof(ctx->errstr), fmt, ap);
    va_end(ap);
}

void dbl__disconnect(dbl_ctx_t *ctx)
{
    if (ctx->priv->fd >= 0)
        close(ctx->priv->fd);
    ctx->priv->fd = -1;
}

/* errstr holds DBL_ERRSTR_LEN - 1 characters, and the path can be longer:
 * use the longest wording that fits, and when none does put the advice
 * before the path, so that the path gets cut. */
static void set_connect_err(dbl_ctx_t *ctx, const char *path, int errnum)
{
    const char *why = strerror(errnum), *advice;
    size_t room = sizeof(ctx->errstr);

    switch (errnum) {
    case ENOENT:
    case ECONNREFUSED:
        advice = "start `dbleased` or set DBLEASE_SOCKET";
        break;
    case EACCES:
    case EPERM:
        advice = "join the socket's group or set DBLEASE_SOCKET";
        break;
    default:
        advice = "check DBLEASE_SOCKET";
        break;
    }
    ctx->err = DBL_ERR_UNAVAILABLE;
    ctx->code[0] = '\0';
    if ((size_t)snprintf(ctx->errstr, room, "cannot reach dbleased at %s: %s (is it running? %s)",
                         path, why, advice) < room)
        return;
    if ((size_t)snprintf(ctx->errstr, room, "cannot reach dbleased at %s: %s; %s", path, why,
                         advice) < room)
        return;
    snprintf(ctx->errstr, room, "cannot reach dbleased (%s; %s) at %s", why, advice, path);
}

/* A non-blocking connect to a Unix socket fails with EAGAIN while the
 * listener's backlog is full; that is a busy daemon, so retry until the
 * deadline instead of reporting it unreachable. */
static int connect_unix(dbl_ctx_t *ctx, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int64_t deadline = dbl__now_ms() + ctx->priv->timeout_ms;
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        dbl__set_err(ctx, DBL_ERR_USAGE,
                     "socket path is longer than %zu bytes; use a shorter DBLEASE_SOCKET: %s",
                     sizeof(sa.sun_path) - 1, path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    /* CLOEXEC: `dblease run` forks a command that must not hold our leases. */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        dbl__set_err(ctx, errno == ENOMEM ? DBL_ERR_OOM : DBL_ERR_IO,
                     "cannot create a socket: %s", strerror(errno));
        return -1;
    }
    while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN && dbl__now_ms() < deadline) {
            poll(NULL, 0, 10);
            continue;
        }
        if (errno == EAGAIN)
            dbl__set_err(ctx, DBL_ERR_TIMEOUT,
                         "dbleased is not accepting connections (backlog full); retry later");
        else
            set_connect_err(ctx, path, errno);
        close(fd);
        return -1;
    }
    ctx->priv->fd = fd;
    return 0;
}

static int hello(dbl_ctx_t *ctx, const char *client_name)
{
    dbl_reply_t reply;
    json_object *req, *v;
    int64_t id;
    int rc;

    req = dbl__request(ctx, "hello", &id);
    if (!req)
        return -1;
    json_object_object_add(req, "proto", json_object_new_int(DBL_PROTO_VERSION));
    if (!client_name)
        client_name = program_invocation_short_name;
    json_object_object_add(req, "client", json_object_new_string(client_name));
    if (dbl__call(ctx, req, id, 0, &reply) < 0)
        return -1;
    rc = 0;
    if (json_object_object_get_ex(reply.root, "version", &v) &&
        json_object_is_type(v, json_type_string)) {
        ctx->priv->daemon_version = strdup(json_object_get_string(v));
        if (!ctx->priv->daemon_version) {
            dbl__set_err(ctx, DBL_ERR_OOM, "out of memory");
            rc = -1;
        }
    }
    /* The daemon's own default wait bounds how long a lease that leaves
     * wait_ms to it may take, so a hung daemon is noticed in time. */
    json_object *defs = NULL, *w;
    if (json_object_object_get_ex(reply.root, "defaults", &defs) &&
        json_object_object_get_ex(defs, "wait_ms", &w) && json_object_is_type(w, json_type_int))
        ctx->priv->default_wait_ms = json_object_get_int(w);
    if (defs && json_object_object_get_ex(defs, "max_ttl_s", &w) &&
        json_object_is_type(w, json_type_int))
        ctx->priv->max_ttl_s = json_object_get_int(w);
    json_object *srv;
    if (json_object_object_get_ex(reply.root, "server", &srv)) {
        ctx->priv->daemon_pid = dbl__int_field(srv, "pid", -1);
        ctx->priv->daemon_uid = dbl__int_field(srv, "uid", -1);
    }
    dbl_reply_free(&reply);
    return rc;
}

static dbl_ctx_t *ctx_new(void)
{
    dbl_ctx_t *ctx = calloc(1, sizeof(*ctx));

    if (!ctx)
        return NULL;
    ctx->priv = calloc(1, sizeof(*ctx->priv));
    if (!ctx->priv) {
        free(ctx);
        return NULL;
    }
    ctx->priv->fd = -1;
    ctx->priv->timeout_ms = DBL__DEFAULT_TIMEOUT_MS;
    ctx->priv->default_wait_ms = -1;
    ctx->priv->max_ttl_s = -1;
    ctx->priv->daemon_pid = ctx->priv->daemon_uid = -1;
    dbl_decoder_init(&ctx->priv->dec, DBL__MAX_REPLY_LINE);
    return ctx;
}

dbl_ctx_t *dbl_connect(const dbl_options_t *opts)
{
    static const dbl_options_t no_opts;
    char buf[4096];
    const char *path;
    bool chosen;
    dbl_ctx_t *ctx = ctx_new();

    if (!ctx)
        return NULL;
    if (!opts)
        opts = &no_opts;
    if (opts->timeout_ms < 0) {
        dbl__set_err(ctx, DBL_ERR_USAGE, "timeout_ms must be 0 (default) or positive");
        return ctx;
    }
    if (opts->timeout_ms > 0)
        ctx->priv->timeout_ms = opts->timeout_ms;
    path = opts->socket_path ? opts->socket_path
                             : dbl_default_socket_path(buf, sizeof(buf), (unsigned)getuid());
    if (!path || !*path) {
        dbl__set_err(ctx, DBL_ERR_USAGE,
                     "no usable socket path; set DBLEASE_SOCKET to dbleased's socket");
        return ctx;
    }
    ctx->priv->socket_path = strdup(path);
    if (!ctx->priv->socket_path) {
        dbl__set_err(ctx, DBL_ERR_OOM, "out of memory");
        return ctx;
    }
    chosen = opts->socket_path || (getenv("DBLEASE_SOCKET") && *getenv("DBLEASE_SOCKET"));
    if (connect_unix(ctx, path) < 0)
        return ctx;
    /* Nothing is sent to, or believed from, a daemon we may not trust. A
     * daemon that refused hello serves nothing else either. */
    if (dbl__check_peer(ctx, path, chosen) < 0 || hello(ctx, opts->client_name) < 0)
        dbl__disconnect(ctx);
    return ctx;
}

void dbl_free(dbl_ctx_t *ctx)
{
    if (!ctx)
        return;
    if (ctx->priv) {
        dbl__disconnect(ctx);
        dbl_decoder_free(&ctx->priv->dec);
        free(ctx->priv->socket_path);
        free(ctx->priv->daemon_version);
        free(ctx->priv);
    }
    free(ctx);
}

const char *dbl_daemon_version(const dbl_ctx_t *ctx)
{
    if (!ctx || !ctx->priv || !ctx->priv->daemon_version)
        return "";
    return ctx->priv->daemon_version;
}
