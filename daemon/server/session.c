#include "session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "caps.h"
#include "fsm.h"
#include "lease.h"
#include "inst.h"
#include "log.h"
#include "ops.h"

/* Backpressure: past HIGH_WATER bytes of unsent replies a session is not
 * read until they drain below LOW_WATER, so one slow reader cannot make the
 * daemon buffer without bound, and is never cut off for being slow. */
#define HIGH_WATER (1u << 20)
#define LOW_WATER (256u << 10)
/* A closing session's last replies get this long to reach its client. */
#define FLUSH_DEADLINE_MS 5000
#define READ_CHUNK 16384

typedef struct write_req {
    uv_write_t req;
    char *data;
} write_req_t;

static const char *const state_names[] = {
    [SESS_OPEN] = "open",           [SESS_PAUSED] = "paused",   [SESS_EOF] = "eof",
    [SESS_FLUSHING] = "flushing",   [SESS_LINGERING] = "lingering",
    [SESS_CLOSING] = "closing",
};
static const unsigned allowed[] = {
    [SESS_OPEN] = FSM_TO(SESS_PAUSED) | FSM_TO(SESS_EOF) | FSM_TO(SESS_FLUSHING) |
                  FSM_TO(SESS_CLOSING),
    [SESS_PAUSED] = FSM_TO(SESS_OPEN) | FSM_TO(SESS_FLUSHING) | FSM_TO(SESS_CLOSING),
    [SESS_EOF] = FSM_TO(SESS_FLUSHING) | FSM_TO(SESS_CLOSING),
    [SESS_FLUSHING] = FSM_TO(SESS_LINGERING) | FSM_TO(SESS_CLOSING),
    [SESS_LINGERING] = FSM_TO(SESS_CLOSING),
    [SESS_CLOSING] = 0,
};
static const fsm_def_t sess_fsm = {"server", SESS__STATES, state_names, allowed};

static void set_state(sess_t *s, sess_state_t to)
{
    char who[48];
    snprintf(who, sizeof who, "session %llu", (unsigned long long)s->serial);
    s->state = (sess_state_t)fsm_step(&sess_fsm, s->state, to, who);
}

bool sess_closing(const sess_t *s)
{
    return s->state >= SESS_FLUSHING;
}

static void on_handle_closed(uv_handle_t *h)
{
    sess_t *s = h->data;
    if (--s->open_handles > 0)
        return;
    /* Until now it counted against max_clients. */
    list_remove(&s->d->sessions, &s->node);
    dbl_decoder_free(&s->dec);
    free(s);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char chunk[READ_CHUNK]; /* consumed synchronously in on_read */
    *buf = uv_buf_init(chunk, sizeof chunk);
}

static void begin_close(sess_t *s)
{
    set_state(s, SESS_CLOSING);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->pipe, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    sess_t *s = req->data;
    log_debug("server", "session %llu: replies flushed (%s)", (unsigned long long)s->serial,
              status < 0 ? uv_strerror(status) : "ok");
    free(req);
    if (s->state != SESS_FLUSHING) /* the deadline closed it first */
        return;
    /* Still sending to us: wait for its close (or the deadline), so what it
     * sends meanwhile cannot reset the connection before it read the flush.
     * Not when the daemon stops: an idle client would hold the stop up. */
    if (status == 0 && uv_is_readable((uv_stream_t *)&s->pipe) && !dbld_stopping(s->d))
        set_state(s, SESS_LINGERING);
    else
        begin_close(s);
}

/* FLUSHING, LINGERING: what the client still sends is read and dropped. */
static void on_read_dropped(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    sess_t *s = stream->data;
    if (nread >= 0)
        return;
    uv_read_stop(stream);
    /* At EOF a half-closed client may still be reading the flush. */
    if (s->state == SESS_LINGERING || nread != UV_EOF)
        begin_close(s);
}

static void on_flush_deadline(uv_timer_t *t)
{
    sess_t *s = t->data;
    log_warn("server", "client pid %d did not %s in %d ms; closing it", (int)s->pid,
             s->state == SESS_FLUSHING ? "read its last replies" : "close its end",
             FLUSH_DEADLINE_MS);
    begin_close(s);
}

/* Whatever the session held or waited for ends with it. */
static void let_go(sess_t *s)
{
    ops_cancel_pending(s);
    list_node_t *n;
    while ((n = list_first(&s->leases))) {
        lease_t *l = list_entry(n, lease_t, holder_node);
        if (l->detached) {
            list_remove(&s->leases, n);
            lease_set_holder(l, NULL);
        } else {
            lease_end(l, LEASE_DISCONNECTED, false); /* on_lease_end unlinks it */
        }
    }
}

/* FLUSHING: uv_shutdown lets queued replies (a last error) reach the
 * client first; the deadline keeps one that does not read from holding us.
 * false if it cannot start. */
static bool start_flush(sess_t *s)
{
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req)
        return false;
    set_state(s, SESS_FLUSHING);
    req->data = s;
    if (uv_shutdown(req, (uv_stream_t *)&s->pipe, on_shutdown) < 0) {
        free(req);
        return false;
    }
    uv_timer_start(&s->timer, on_flush_deadline, FLUSH_DEADLINE_MS, 0);
    if (uv_is_readable((uv_stream_t *)&s->pipe)) /* not after EOF */
        uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read_dropped);
    return true;
}

static void close_session(sess_t *s, bool flush)
{
    if (s->state == SESS_CLOSING)
        return;
    if (s->state == SESS_FLUSHING || s->state == SESS_LINGERING) {
        if (!flush)
            begin_close(s);
        return;
    }
    log_debug("server", "session %llu (pid %d) closed", (unsigned long long)s->serial,
              (int)s->pid);
    uv_read_stop((uv_stream_t *)&s->pipe);
    uv_timer_stop(&s->timer);
    /* Flushing or closing before let_go(): nothing it sets off (a lease
     * ending, a template claim dropped) can send to us or close us again. */
    if (!flush || !start_flush(s))
        begin_close(s);
    let_go(s);
}

void sess_close(sess_t *s)
{
    close_session(s, false);
}

void sess_refuse(sess_t *s, bool flush)
{
    close_session(s, flush);
}

static void on_stuck(uv_timer_t *t)
{
    sess_t *s = t->data;
    log_warn("server",
             "client pid %d has read none of its replies for %d s; closing it (raise [daemon] "
             "stuck_client_timeout_s for clients that pause longer)",
             (int)s->pid, s->d->cfg.stuck_client_timeout_s);
    sess_close(s);
}

static size_t queued(const sess_t *s)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&s->pipe);
}

static void arm_stuck_timer(sess_t *s)
{
    uv_timer_start(&s->timer, on_stuck, (uint64_t)s->d->cfg.stuck_client_timeout_s * 1000u, 0);
}

static void pause_reading(sess_t *s)
{
    log_debug("server", "client pid %d: %zu bytes of replies unread; pausing its requests",
              (int)s->pid, queued(s));
    set_state(s, SESS_PAUSED);
    uv_read_stop((uv_stream_t *)&s->pipe);
    arm_stuck_timer(s);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);
static void handle_lines(sess_t *s);

static void resume_reading(sess_t *s)
{
    set_state(s, SESS_OPEN);
    uv_timer_stop(&s->timer);
    handle_lines(s); /* those read before the pause */
    if (s->state == SESS_OPEN)
        uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read);
}

static void on_written(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    sess_t *s = req->handle->data;
    free(w->data);
    free(w);
    if (status < 0 && status != UV_ECANCELED) {
        /* The client is gone. A paused session reads nothing, so this is
         * the only news of it: its attached leases must end now. */
        log_debug("server", "client pid %d: write failed (%s)", (int)s->pid, uv_strerror(status));
        sess_close(s);
        return;
    }
    if (s->state != SESS_PAUSED)
        return;
    if (queued(s) < LOW_WATER)
        resume_reading(s);
    else /* it reads, slowly: stuck means no progress at all */
        arm_stuck_timer(s);
}

void sess_send(sess_t *s, json_object *msg)
{
    if (sess_closing(s)) {
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
    if (s->state == SESS_OPEN && queued(s) > HIGH_WATER)
        pause_reading(s);
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

void sess_maybe_finish(sess_t *s)
{
    if (s->state == SESS_EOF && list_empty(&s->pending) && list_empty(&s->tpl_reqs))
        close_session(s, true);
}

static void line_too_long(sess_t *s)
{
    log_warn("server", "client pid %d sent a line over %d bytes; closing it", (int)s->pid,
             DBL_PROTO_MAX_LINE);
    sess_reply_error(s, NULL, DBL_E_LINE_TOO_LONG,
                     "line longer than %d bytes; the connection is closed (split the "
                     "request or reconnect)",
                     DBL_PROTO_MAX_LINE);
    ops_refuse_waiting(s, DBL_E_LINE_TOO_LONG,
                       "a later line on this connection was too long, so it is closed before "
                       "this request was answered; reconnect and retry");
    close_session(s, true);
}

/* Answer the complete lines read so far, until the session pauses (the
 * rest stay in the decoder for resume_reading) or closes. */
static void handle_lines(sess_t *s)
{
    const char *line;
    size_t len;
    int rc;
    while (s->state == SESS_OPEN && (rc = dbl_decoder_next(&s->dec, &line, &len)) == 1)
        handle_line(s, line, len);
    if (s->state != SESS_OPEN)
        return;
    if (rc == -E2BIG)
        line_too_long(s);
    else if (rc < 0)
        sess_close(s);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    sess_t *s = stream->data;
    if (nread == UV_EOF) {
        /* The client is done sending (a shell's `printf … | socat`), not
         * gone: answer what it waits for, then flush and close. */
        set_state(s, SESS_EOF);
        uv_read_stop(stream);
        sess_maybe_finish(s);
        return;
    }
    if (nread < 0) {
        sess_close(s);
        return;
    }
    if (nread == 0)
        return;
    if (dbl_decoder_feed(&s->dec, buf->base, (size_t)nread) == -ENOMEM) {
        sess_close(s); /* the chunk was not stored: the stream has a gap */
        return;
    }
    handle_lines(s);
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
    s->state = SESS_OPEN;
    uv_pipe_init(d->loop, &s->pipe, 0);
    uv_timer_init(d->loop, &s->timer);
    s->pipe.data = s->timer.data = s;
    s->open_handles = 2;
    list_init(&s->leases);
    list_init(&s->pending);
    list_init(&s->tpl_reqs);
    dbl_decoder_init(&s->dec, DBL_PROTO_MAX_LINE);
    list_append(&d->sessions, &s->node);
    s->serial = ++d->counters.connections;
    if (uv_accept(listener, (uv_stream_t *)&s->pipe) < 0) {
        begin_close(s);
        return;
    }
    peer_credentials(s);
    if (dbld_stopping(d)) {
        log_warn("server", "refusing client pid %d: shutting down", (int)s->pid);
        sess_reply_error(s, NULL, DBL_E_SHUTTING_DOWN,
                         "dbleased is shutting down; retry when it is back");
        close_session(s, true);
        return;
    }
    /* Closing sessions count too: each still holds its buffers. */
    if (!caps_admit_client(s))
        return;
    log_debug("server", "session %llu from uid %d pid %d", (unsigned long long)s->serial,
              (int)s->uid, (int)s->pid);
    uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read);
}

/* The daemon ended one of our leases (not us): it is off every list, so
 * whatever the event sets off cannot end it again. */
static void on_lease_end(lease_t *l, lease_end_reason_t why, void *ud)
{
    sess_t *s = ud;
    list_remove(&s->leases, &l->holder_node);
    if (why != LEASE_EXPIRED && why != LEASE_INSTANCE_DOWN)
        return;
    json_object *ev = dbl_event_new(why == LEASE_EXPIRED ? "lease_expired" : "instance_down");
    json_object_object_add(ev, "lease", json_object_new_string(l->id));
    if (why == LEASE_INSTANCE_DOWN)
        json_object_object_add(ev, "kind", json_object_new_string(l->slot->pool->kind));
    /* Why, in the server's own words when it said any (a full disk, a
     * crash): its slot's own server (Redis), else the instance's. */
    const char *msg = NULL;
    if (why == LEASE_INSTANCE_DOWN && l->slot->lost_why[0])
        msg = l->slot->lost_why;
    else if (why == LEASE_INSTANCE_DOWN && strcmp(l->slot->pool->kind, "postgres") == 0 &&
             s->d->pg && s->d->pg->last_error[0])
        msg = s->d->pg->last_error;
    if (msg)
        json_object_object_add(ev, "message", json_object_new_string(msg));
    sess_send(s, ev);
}

void sess_hold_lease(sess_t *s, lease_t *l)
{
    const lease_holder_t h = {on_lease_end, s};
    lease_set_holder(l, &h);
    list_append(&s->leases, &l->holder_node);
}

/* Sessions leave d->sessions only in their last close callback, never
 * inside a call, so walking it survives whatever each step sets off. */
void sess_refuse_waiting_all(dbld_t *d)
{
    list_node_t *it, *tmp;
    list_for_each(&d->sessions, it, tmp)
    {
        sess_t *s = list_entry(it, sess_t, node);
        if (!sess_closing(s))
            ops_refuse_waiting(s, DBL_E_SHUTTING_DOWN,
                               "dbleased is shutting down; retry when it is back");
    }
}

void sess_close_all(dbld_t *d)
{
    sess_refuse_waiting_all(d);
    list_node_t *it, *tmp;
    list_for_each(&d->sessions, it, tmp)
        close_session(list_entry(it, sess_t, node), true);
}
