#include "pg_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm.h"
#include "list.h"
#include "log.h"
#include "util.h"

typedef struct pgc_job {
    list_node_t node;
    char **sql;
    int n, next;
    bool failed;
    pgc_done_cb cb;
    void *ud;
} pgc_job_t;

typedef enum {
    PGC_CONNECTING, /* libpq's handshake, under the connect deadline */
    PGC_UP,         /* usable; a statement in flight runs under its deadline */
    PGC_BROKEN,     /* failed or timed out: callbacks ran, waiting for pgc_close */
    PGC_CLOSING,    /* handles closing; freed when the last one is */
    PGC__COUNT
} pgc_state_t;

static const char *const state_names[PGC__COUNT] = {
    [PGC_CONNECTING] = "connecting", [PGC_UP] = "up", [PGC_BROKEN] = "broken",
    [PGC_CLOSING] = "closing"};
static const unsigned allowed[PGC__COUNT] = {
    [PGC_CONNECTING] = FSM_TO(PGC_UP) | FSM_TO(PGC_BROKEN) | FSM_TO(PGC_CLOSING),
    [PGC_UP] = FSM_TO(PGC_BROKEN) | FSM_TO(PGC_CLOSING),
    [PGC_BROKEN] = FSM_TO(PGC_CLOSING),
};
static const fsm_def_t pgc_fsm = {"pg connection", PGC__COUNT, state_names, allowed};

struct pgc {
    uv_poll_t *poll; /* follows PQsocket(): replaced when libpq changes sockets */
    uv_timer_t deadline;
    int open_handles; /* freed when the last one is closed */
    PGconn *conn;
    pgc_state_t state;
    bool in_flight; /* a statement was sent and its results are not all read */
    uint64_t sent_ms; /* when the running statement was sent */
    int connect_timeout_ms, statement_timeout_ms;
    PGresult *last;
    list_t jobs; /* head is running */
    pgc_status_cb status_cb;
    void *ud;
};

static void on_poll(uv_poll_t *h, int status, int events);

static void set_state(pgc_t *c, pgc_state_t to)
{
    c->state = (pgc_state_t)fsm_step(&pgc_fsm, (int)c->state, (int)to, "pgc");
}

static void job_free(pgc_job_t *j)
{
    for (int i = 0; i < j->n; i++)
        free(j->sql[i]);
    free(j->sql);
    free(j);
}

static void finish_job(pgc_t *c, int err, const char *msg)
{
    pgc_job_t *j = list_entry(list_first(&c->jobs), pgc_job_t, node);
    list_remove(&c->jobs, &j->node);
    PGresult *res = c->last;
    c->last = NULL;
    j->cb(j->ud, err, msg, res);
    PQclear(res);
    job_free(j);
}

static void fail_all(pgc_t *c, int err, const char *msg)
{
    while (!list_empty(&c->jobs))
        finish_job(c, err, msg);
}

static void on_handle_closed(uv_handle_t *h)
{
    pgc_t *c = h->data;
    if (h != (uv_handle_t *)&c->deadline)
        free(h);
    if (--c->open_handles == 0) {
        PQfinish(c->conn);
        free(c);
    }
}

static void copy_msg(char *out, size_t len, const char *msg, const char *fallback)
{
    snprintf(out, len, "%s", msg && *msg ? msg : fallback);
    size_t l = strlen(out);
    while (l && out[l - 1] == '\n')
        out[--l] = '\0';
}

/* The one way to fail: jobs first, then the owner, each exactly once. */
static void fail(pgc_t *c, int err, const char *msg)
{
    if (c->state != PGC_CONNECTING && c->state != PGC_UP)
        return;
    bool was_connecting = c->state == PGC_CONNECTING;
    set_state(c, PGC_BROKEN);
    uv_poll_stop(c->poll);
    uv_timer_stop(&c->deadline);
    char copy[512];
    copy_msg(copy, sizeof copy, msg, "connection lost");
    c->in_flight = false;
    if (err == 0)
        err = was_connecting ? -ECONNREFUSED : -ECONNRESET;
    fail_all(c, err == -ETIMEDOUT ? err : -ECONNRESET, copy);
    if (c->state == PGC_BROKEN) /* a job callback may have closed us */
        c->status_cb(c, err, copy, c->ud);
}

static void on_deadline(uv_timer_t *t)
{
    pgc_t *c = t->data;
    char msg[160];
    if (c->state == PGC_CONNECTING)
        snprintf(msg, sizeof msg, "the server did not let us in within %d ms",
                 c->connect_timeout_ms);
    else
        snprintf(msg, sizeof msg, "a statement did not finish within %d ms",
                 c->statement_timeout_ms);
    fail(c, -ETIMEDOUT, msg);
}

static void watch(pgc_t *c, int events)
{
    uv_poll_start(c->poll, events, on_poll);
}

/* Send the running job's next statement, under its own deadline. */
static void send_next(pgc_t *c)
{
    if (c->state != PGC_UP || c->in_flight || list_empty(&c->jobs))
        return;
    pgc_job_t *j = list_entry(list_first(&c->jobs), pgc_job_t, node);
    if (!PQsendQuery(c->conn, j->sql[j->next])) {
        fail(c, 0, PQerrorMessage(c->conn));
        return;
    }
    c->in_flight = true;
    c->sent_ms = util_now_ms();
    uv_timer_start(&c->deadline, on_deadline, (uint64_t)c->statement_timeout_ms, 0);
    watch(c, PQflush(c->conn) == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

static void statement_done(pgc_t *c, pgc_job_t *j)
{
    c->in_flight = false;
    uv_timer_stop(&c->deadline);
    if (j->failed) {
        char msg[512];
        copy_msg(msg, sizeof msg, PQresultErrorMessage(c->last), "statement failed");
        finish_job(c, -EIO, msg);
    } else if (++j->next == j->n) {
        finish_job(c, 0, NULL);
    }
    send_next(c); /* no-op if a callback closed us or queued and sent */
}

static void read_results(pgc_t *c)
{
    if (!PQconsumeInput(c->conn)) {
        fail(c, 0, PQerrorMessage(c->conn));
        return;
    }
    pgc_job_t *j = list_entry(list_first(&c->jobs), pgc_job_t, node);
    while (!PQisBusy(c->conn)) {
        PGresult *r = PQgetResult(c->conn);
        if (!r) {
            statement_done(c, j);
            return;
        }
        /* Keep the first error, else the latest result; drain to NULL. */
        if (!j->failed) {
            ExecStatusType st = PQresultStatus(r);
            j->failed = st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE;
            PQclear(c->last);
            c->last = r;
        } else {
            PQclear(r);
        }
    }
}


/* libpq may open a new socket between attempts (the next host or address,
 * an SSL or GSS retry): watch the one it uses now. A fresh handle every
 * time it changes, since libuv may not watch a closed descriptor. */
static int follow_socket(pgc_t *c)
{
    int fd = PQsocket(c->conn);
    uv_os_fd_t cur = -1;
    uv_fileno((uv_handle_t *)c->poll, &cur);
    if (fd == cur)
        return 0;
    if (fd < 0)
        return -EBADF;
    uv_poll_t *p = malloc(sizeof *p);
    if (!p)
        return -ENOMEM;
    if (uv_poll_init(c->poll->loop, p, fd) < 0) {
        free(p);
        return -EBADF;
    }
    p->data = c;
    uv_close((uv_handle_t *)c->poll, on_handle_closed);
    c->poll = p;
    c->open_handles++;
    return 0;
}

static void continue_connect(pgc_t *c)
{
    /* Unwatch first: libpq may close this socket inside PQconnectPoll, and
     * a descriptor must not be closed while libuv watches it. */
    uv_poll_stop(c->poll);
    PostgresPollingStatusType st = PQconnectPoll(c->conn);
    if (st != PGRES_POLLING_FAILED && follow_socket(c) < 0) {
        fail(c, 0, "cannot watch the connection's new socket");
        return;
    }
    switch (st) {
    case PGRES_POLLING_READING:
        watch(c, UV_READABLE);
        return;
    case PGRES_POLLING_WRITING:
        watch(c, UV_WRITABLE);
        return;
    case PGRES_POLLING_OK:
        PQsetnonblocking(c->conn, 1);
        uv_timer_stop(&c->deadline);
        set_state(c, PGC_UP);
        watch(c, UV_READABLE);
        c->status_cb(c, 0, NULL, c->ud);
        send_next(c);
        return;
    default:
        fail(c, 0, PQerrorMessage(c->conn));
        return;
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pgc_t *c = h->data;
    if (h != c->poll)
        return; /* an old socket's handle, closing */
    if (c->state == PGC_CONNECTING) {
        /* An error on the socket: libpq finds out what it is. */
        continue_connect(c);
        return;
    }
    if (c->state != PGC_UP)
        return;
    if (status < 0) {
        fail(c, 0, uv_strerror(status));
        return;
    }
    if (events & UV_WRITABLE) {
        int f = PQflush(c->conn);
        if (f < 0) {
            fail(c, 0, PQerrorMessage(c->conn));
            return;
        }
        if (f == 0)
            watch(c, UV_READABLE);
    }
    if (events & UV_READABLE) {
        if (!c->in_flight) {
            /* Idle and readable: a notice, or the server closed on us. */
            if (!PQconsumeInput(c->conn) || PQstatus(c->conn) == CONNECTION_BAD)
                fail(c, 0, PQerrorMessage(c->conn));
            return;
        }
        read_results(c);
    }
}

/* Server notices ("does not exist, skipping") go to our log, not stderr. */
static void on_notice(void *arg, const char *message)
{
    (void)arg;
    log_debug("engine", "server notice: %s", message);
}

static PGconn *start_libpq(const pgc_opts_t *o)
{
    /* The first dbname is expanded as a connection string (or URL); what
     * follows overrides what it says. */
    const char *keys[5] = {"dbname"}, *vals[5] = {o->conninfo};
    int n = 1;
    if (o->dbname) {
        keys[n] = "dbname";
        vals[n++] = o->dbname;
    }
    if (o->application_name) {
        keys[n] = "application_name";
        vals[n++] = o->application_name;
    }
    if (o->options) {
        keys[n] = "options";
        vals[n++] = o->options;
    }
    return PQconnectStartParams(keys, vals, 1);
}

pgc_t *pgc_open(uv_loop_t *loop, const pgc_opts_t *o, pgc_status_cb cb, void *ud,
                const char **err)
{
    pgc_t *c = calloc(1, sizeof *c);
    if (c)
        c->poll = malloc(sizeof *c->poll);
    PGconn *conn = c && c->poll ? start_libpq(o) : NULL;
    if (!conn || PQstatus(conn) == CONNECTION_BAD || PQsocket(conn) < 0) {
        *err = conn ? "libpq could not start the connection" : "out of memory";
        PQfinish(conn);
        if (c)
            free(c->poll);
        free(c);
        return NULL;
    }
    if (uv_poll_init(loop, c->poll, PQsocket(conn)) < 0) {
        *err = "cannot watch the connection's socket";
        PQfinish(conn);
        free(c->poll);
        free(c);
        return NULL;
    }
    c->conn = conn;
    PQsetNoticeProcessor(c->conn, on_notice, NULL);
    c->poll->data = c;
    uv_timer_init(loop, &c->deadline);
    c->deadline.data = c;
    c->open_handles = 2;
    c->state = PGC_CONNECTING;
    c->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms
                                                      : PGC_CONNECT_TIMEOUT_MS;
    c->statement_timeout_ms = o->statement_timeout_ms > 0 ? o->statement_timeout_ms
                                                          : PGC_STATEMENT_TIMEOUT_MS;
    c->status_cb = cb;
    c->ud = ud;
    list_init(&c->jobs);
    uv_timer_start(&c->deadline, on_deadline, (uint64_t)c->connect_timeout_ms, 0);
    watch(c, UV_WRITABLE);
    return c;
}

int pgc_exec(pgc_t *c, const char *const *sql, int n, pgc_done_cb cb, void *ud)
{
    if (c->state == PGC_BROKEN || c->state == PGC_CLOSING)
        return -ENOTCONN;
    pgc_job_t *j = calloc(1, sizeof *j);
    if (!j || !(j->sql = calloc((size_t)n, sizeof *j->sql))) {
        free(j);
        return -ENOMEM;
    }
    j->n = n;
    for (int i = 0; i < n; i++) {
        if (!(j->sql[i] = strdup(sql[i]))) {
            job_free(j);
            return -ENOMEM;
        }
    }
    j->cb = cb;
    j->ud = ud;
    list_append(&c->jobs, &j->node);
    send_next(c);
    return 0;
}

void pgc_close(pgc_t *c)
{
    if (!c || c->state == PGC_CLOSING)
        return;
    set_state(c, PGC_CLOSING);
    fail_all(c, -ECANCELED, "connection closed");
    PQclear(c->last);
    c->last = NULL;
    uv_close((uv_handle_t *)c->poll, on_handle_closed);
    uv_close((uv_handle_t *)&c->deadline, on_handle_closed);
}

void pgc_set_status_cb(pgc_t *c, pgc_status_cb cb, void *ud)
{
    c->status_cb = cb;
    c->ud = ud;
}

pgc_t *pgc_connect(uv_loop_t *loop, const char *conninfo, pgc_status_cb cb, void *ud,
                   const char **err)
{
    pgc_opts_t o = {.conninfo = conninfo};
    return pgc_open(loop, &o, cb, ud, err);
}

bool pgc_is_up(const pgc_t *c)
{
    return c && c->state == PGC_UP;
}

size_t pgc_queue_len(const pgc_t *c)
{
    return c->jobs.count;
}

void pgc_describe(const pgc_t *c, char *out, size_t len)
{
    if (!c) {
        snprintf(out, len, "not open");
        return;
    }
    if (!c->in_flight || list_empty(&c->jobs)) {
        snprintf(out, len, "%s, %zu queued", fsm_name(&pgc_fsm, (int)c->state), c->jobs.count);
        return;
    }
    const pgc_job_t *j = list_entry(list_first(&c->jobs), pgc_job_t, node);
    /* The first two words say what it is (DROP DATABASE, CREATE ROLE);
     * what follows may be a password. */
    char words[32];
    const char *s = j->sql[j->next];
    size_t n = 0;
    for (int spaces = 0; s[n] && n < sizeof words - 1; n++)
        if (s[n] == ' ' && ++spaces == 2)
            break;
    snprintf(words, sizeof words, "%.*s", (int)n, s);
    snprintf(out, len, "%s, %zu queued, running %s… for %llu ms", fsm_name(&pgc_fsm, (int)c->state),
             c->jobs.count, words, (unsigned long long)(util_now_ms() - c->sent_ms));
}

PGconn *pgc_raw(pgc_t *c)
{
    return c->conn;
}
