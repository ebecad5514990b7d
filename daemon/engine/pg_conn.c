#include "pg_conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"
#include "log.h"

typedef struct pgc_job {
    list_node_t node;
    char **sql;
    int n, next;
    bool failed;
    pgc_done_cb cb;
    void *ud;
} pgc_job_t;

typedef enum { PGC_CONNECTING, PGC_UP, PGC_BROKEN, PGC_CLOSING } pgc_state_t;

struct pgc {
    uv_poll_t poll;
    PGconn *conn;
    pgc_state_t state;
    bool poll_open;
    bool in_flight; /* a statement was sent and its results are not all read */
    PGresult *last;
    list_t jobs; /* head is running */
    pgc_status_cb status_cb;
    void *ud;
};

static void on_poll(uv_poll_t *h, int status, int events);

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

static void on_closed(uv_handle_t *h)
{
    pgc_t *c = h->data;
    PQfinish(c->conn);
    free(c);
}

static void set_broken(pgc_t *c, const char *msg)
{
    if (c->state == PGC_BROKEN || c->state == PGC_CLOSING)
        return;
    bool was_connecting = c->state == PGC_CONNECTING;
    c->state = PGC_BROKEN;
    uv_poll_stop(&c->poll);
    char copy[512];
    snprintf(copy, sizeof copy, "%s", msg && *msg ? msg : "connection lost");
    size_t l = strlen(copy);
    while (l && copy[l - 1] == '\n')
        copy[--l] = '\0';
    c->in_flight = false;
    fail_all(c, -ECONNRESET, copy);
    if (c->state == PGC_BROKEN) /* a job callback may have closed us */
        c->status_cb(c, was_connecting ? -ECONNREFUSED : -ECONNRESET, copy, c->ud);
}

static void watch(pgc_t *c, int events)
{
    uv_poll_start(&c->poll, events, on_poll);
}

/* Send the running job's next statement. */
static void send_next(pgc_t *c)
{
    if (c->state != PGC_UP || c->in_flight || list_empty(&c->jobs))
        return;
    pgc_job_t *j = list_entry(list_first(&c->jobs), pgc_job_t, node);
    if (!PQsendQuery(c->conn, j->sql[j->next])) {
        set_broken(c, PQerrorMessage(c->conn));
        return;
    }
    c->in_flight = true;
    watch(c, PQflush(c->conn) == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

static void read_results(pgc_t *c)
{
    if (!PQconsumeInput(c->conn)) {
        set_broken(c, PQerrorMessage(c->conn));
        return;
    }
    pgc_job_t *j = list_entry(list_first(&c->jobs), pgc_job_t, node);
    while (!PQisBusy(c->conn)) {
        PGresult *r = PQgetResult(c->conn);
        if (r) {
            /* Keep the first error, else the latest result; drain to NULL. */
            if (!j->failed) {
                ExecStatusType st = PQresultStatus(r);
                j->failed = st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE;
                PQclear(c->last);
                c->last = r;
            } else {
                PQclear(r);
            }
            continue;
        }
        c->in_flight = false;
        if (j->failed) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(c->last));
            size_t l = strlen(msg);
            while (l && msg[l - 1] == '\n')
                msg[--l] = '\0';
            finish_job(c, -EIO, msg);
        } else if (++j->next == j->n) {
            finish_job(c, 0, NULL);
        }
        send_next(c); /* no-op if a callback closed us or queued and sent */
        return;
    }
}

static void continue_connect(pgc_t *c)
{
    switch (PQconnectPoll(c->conn)) {
    case PGRES_POLLING_READING:
        watch(c, UV_READABLE);
        return;
    case PGRES_POLLING_WRITING:
        watch(c, UV_WRITABLE);
        return;
    case PGRES_POLLING_OK:
        PQsetnonblocking(c->conn, 1);
        c->state = PGC_UP;
        watch(c, UV_READABLE);
        c->status_cb(c, 0, NULL, c->ud);
        send_next(c);
        return;
    default:
        set_broken(c, PQerrorMessage(c->conn));
        return;
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pgc_t *c = h->data;
    if (c->state == PGC_CONNECTING) {
        continue_connect(c);
        return;
    }
    if (c->state != PGC_UP)
        return;
    if (status < 0) {
        set_broken(c, uv_strerror(status));
        return;
    }
    if (events & UV_WRITABLE) {
        int f = PQflush(c->conn);
        if (f < 0) {
            set_broken(c, PQerrorMessage(c->conn));
            return;
        }
        if (f == 0)
            watch(c, UV_READABLE);
    }
    if (events & UV_READABLE) {
        if (!c->in_flight) {
            /* Idle and readable: a notice, or the server closed on us. */
            if (!PQconsumeInput(c->conn) || PQstatus(c->conn) == CONNECTION_BAD)
                set_broken(c, PQerrorMessage(c->conn));
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

static pgc_t *connect_with(uv_loop_t *loop, PGconn *conn, pgc_status_cb cb, void *ud,
                           const char **err)
{
    pgc_t *c = calloc(1, sizeof *c);
    if (!c) {
        PQfinish(conn);
        *err = "out of memory";
        return NULL;
    }
    c->conn = conn;
    if (!c->conn || PQstatus(c->conn) == CONNECTION_BAD || PQsocket(c->conn) < 0) {
        *err = c->conn ? "libpq could not start the connection" : "out of memory";
        PQfinish(c->conn);
        free(c);
        return NULL;
    }
    /* One host, one address: the socket stays the same through the
     * handshake, so one poll handle serves the connection's whole life. */
    if (uv_poll_init(loop, &c->poll, PQsocket(c->conn)) < 0) {
        *err = "cannot watch the connection's socket";
        PQfinish(c->conn);
        free(c);
        return NULL;
    }
    PQsetNoticeProcessor(c->conn, on_notice, NULL);
    c->poll.data = c;
    c->poll_open = true;
    c->state = PGC_CONNECTING;
    c->status_cb = cb;
    c->ud = ud;
    list_init(&c->jobs);
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
    c->state = PGC_CLOSING;
    fail_all(c, -ECANCELED, "connection closed");
    PQclear(c->last);
    c->last = NULL;
    uv_poll_stop(&c->poll);
    uv_close((uv_handle_t *)&c->poll, on_closed);
}

void pgc_set_status_cb(pgc_t *c, pgc_status_cb cb, void *ud)
{
    c->status_cb = cb;
    c->ud = ud;
}

pgc_t *pgc_connect(uv_loop_t *loop, const char *conninfo, pgc_status_cb cb, void *ud,
                   const char **err)
{
    return connect_with(loop, PQconnectStart(conninfo), cb, ud, err);
}

pgc_t *pgc_connect_db(uv_loop_t *loop, const char *conninfo, const char *dbname,
                      pgc_status_cb cb, void *ud, const char **err)
{
    /* The first dbname is expanded as a connection string (or URL); the
     * second overrides the database in it. */
    const char *const keys[] = {"dbname", "dbname", NULL};
    const char *const vals[] = {conninfo, dbname, NULL};
    return connect_with(loop, PQconnectStartParams(keys, vals, 1), cb, ud, err);
}

bool pgc_is_up(const pgc_t *c)
{
    return c && c->state == PGC_UP;
}

size_t pgc_queue_len(const pgc_t *c)
{
    return c->jobs.count;
}

PGconn *pgc_raw(pgc_t *c)
{
    return c->conn;
}
