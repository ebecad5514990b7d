#include "session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lease.h"
#include "log.h"
#include "ops.h"

/* A client that stops reading while we keep writing is cut off past this,
 * so one slow reader cannot make the daemon buffer without bound. */
#define MAX_WRITE_QUEUE (4u << 20)
#define READ_CHUNK 16384

typedef struct write_req {
    uv_write_t req;
    char *data;
} write_req_t;

static void on_closed(uv_handle_t *h)
{
    sess_t *s = h->data;
    dbl_decoder_free(&s->dec);
    free(s);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    sess_t *s = req->data;
    free(req);
    uv_close((uv_handle_t *)&s->pipe, on_closed);
}

static void close_session(sess_t *s, bool flush)
{
    if (s->closing)
        return;
    s->closing = true;
    log_debug("server", "session %llu (pid %d) closed", (unsigned long long)s->serial,
              (int)s->pid);
    ops_cancel_pending(s);
    while (!list_empty(&s->leases)) {
        lease_t *l = list_entry(list_first(&s->leases), lease_t, sess_node);
        if (l->detached) {
            list_remove(&s->leases, &l->sess_node);
            l->sess = NULL;
        } else {
            lease_end(l, LEASE_DISCONNECTED, false);
        }
    }
    list_remove(&s->d->sessions, &s->node);
    uv_read_stop((uv_stream_t *)&s->pipe);
    /* uv_shutdown lets queued replies (a last error) reach the client first. */
    uv_shutdown_t *req = flush ? malloc(sizeof *req) : NULL;
    if (req) {
        req->data = s;
        if (uv_shutdown(req, (uv_stream_t *)&s->pipe, on_shutdown) == 0)
            return;
        free(req);
    }
    uv_close((uv_handle_t *)&s->pipe, on_closed);
}

void sess_close(sess_t *s)
{
    close_session(s, false);
}

static void on_written(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    free(w->data);
    free(w);
    (void)status; /* a failed write shows up as EOF/error on read */
}

void sess_send(sess_t *s, json_object *msg)
{
    if (s->closing) {
        json_object_put(msg);
        return;
    }
    size_t len;
    char *line = dbl_encode(msg, &len);
    json_object_put(msg);
    write_req_t *w = line ? malloc(sizeof *w) : NULL;
    if (!w) {
        free(line);
        sess_close(s);
        return;
    }
    w->data = line;
    uv_buf_t buf = uv_buf_init(line, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&s->pipe, &buf, 1, on_written) < 0) {
        free(line);
        free(w);
        sess_close(s);
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&s->pipe) > MAX_WRITE_QUEUE) {
        log_warn("server", "client pid %d is not reading its replies; closing it", (int)s->pid);
        sess_close(s);
    }
}

void sess_reply_error(sess_t *s, json_object *id, dbl_errcode_t code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sess_send(s, dbl_reply_error(id, code, msg));
}

static void handle_line(sess_t *s, const char *line, size_t len)
{
    dbl_request_t req;
    char err[256];
    if (dbl_request_parse(line, len, &req, err, sizeof err) != DBL_E_NONE)
        sess_reply_error(s, req.id, DBL_E_BAD_REQUEST, "%s", err);
    else
        ops_dispatch(s, &req);
    dbl_request_free(&req);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char chunk[READ_CHUNK]; /* consumed synchronously in on_read */
    *buf = uv_buf_init(chunk, sizeof chunk);
}

void sess_maybe_finish(sess_t *s)
{
    if (s->eof && !s->closing && list_empty(&s->pending) && list_empty(&s->tpl_reqs))
        close_session(s, true);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    sess_t *s = stream->data;
    if (nread == UV_EOF && (!list_empty(&s->pending) || !list_empty(&s->tpl_reqs))) {
        /* The client is done sending (a shell's `printf … | socat`), not
         * gone: answer what it is waiting for, then close. */
        s->eof = true;
        uv_read_stop(stream);
        return;
    }
    if (nread < 0) {
        sess_close(s);
        return;
    }
    if (nread == 0)
        return;
    int rc = dbl_decoder_feed(&s->dec, buf->base, (size_t)nread);
    if (rc == -ENOMEM) { /* the chunk was not stored: the stream has a gap */
        sess_close(s);
        return;
    }
    const char *line;
    size_t len;
    while (!s->closing && (rc = dbl_decoder_next(&s->dec, &line, &len)) == 1)
        handle_line(s, line, len);
    if (rc == -E2BIG && !s->closing) {
        log_warn("server", "client pid %d sent a line over %d bytes; closing it", (int)s->pid,
                 DBL_PROTO_MAX_LINE);
        sess_reply_error(s, NULL, DBL_E_LINE_TOO_LONG,
                         "line longer than %d bytes; the connection is closed (split the "
                         "request or reconnect)",
                         DBL_PROTO_MAX_LINE);
        close_session(s, true);
    } else if (rc < 0 && rc != -E2BIG && !s->closing) {
        sess_close(s);
    }
}

static void peer_credentials(sess_t *s)
{
    uv_os_fd_t fd;
    struct ucred cred;
    socklen_t len = sizeof cred;
    s->uid = (uid_t)-1;
    s->pid = 0;
    if (uv_fileno((uv_handle_t *)&s->pipe, &fd) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
        s->uid = cred.uid;
        s->pid = cred.pid;
    }
    /* The peer's command name, for status ("who holds this?"). */
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)s->pid);
    FILE *f = s->pid > 0 ? fopen(path, "r") : NULL;
    if (f) {
        if (fgets(s->command, sizeof s->command, f))
            s->command[strcspn(s->command, "\n")] = '\0';
        fclose(f);
    }
}

void sess_accept(dbld_t *d, uv_stream_t *listener)
{
    sess_t *s = calloc(1, sizeof *s);
    if (!s)
        return;
    s->d = d;
    uv_pipe_init(d->loop, &s->pipe, 0);
    s->pipe.data = s;
    list_init(&s->leases);
    list_init(&s->pending);
    list_init(&s->tpl_reqs);
    dbl_decoder_init(&s->dec, DBL_PROTO_MAX_LINE);
    if (uv_accept(listener, (uv_stream_t *)&s->pipe) < 0) {
        uv_close((uv_handle_t *)&s->pipe, on_closed);
        return;
    }
    list_append(&d->sessions, &s->node);
    s->serial = ++d->counters.connections;
    peer_credentials(s);
    if (d->stopping || d->sessions.count > (size_t)d->cfg.max_clients) {
        log_warn("server", "refusing client pid %d: %s", (int)s->pid,
                 d->stopping ? "shutting down" : "too many clients (max_clients)");
        sess_reply_error(s, NULL, d->stopping ? DBL_E_SHUTTING_DOWN : DBL_E_INTERNAL,
                         d->stopping ? "dbleased is shutting down; retry when it is back"
                                     : "too many clients; raise [daemon] max_clients or retry");
        close_session(s, true);
        return;
    }
    log_debug("server", "session %llu from uid %d pid %d", (unsigned long long)s->serial,
              (int)s->uid, (int)s->pid);
    uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read);
}
