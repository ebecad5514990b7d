/* The libpq adapter (daemon/engine/pg_conn.c) against fake servers on the
 * same loop: every connect and statement has a deadline, a connection that
 * passes one fails with its callbacks run exactly once, and the poll
 * handle follows libpq to a new socket (the next host of a list). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "pg_conn.h"

/* A guard: a test whose callbacks never come ends instead of hanging. */
#define GUARD_MS 5000

typedef enum {
    FAKE_SILENT,            /* accepts, never answers */
    FAKE_LOGIN_THEN_SILENT, /* lets anyone in, never answers a query */
    FAKE_BAD_SSL,           /* says yes to SSL, then hangs up in the handshake */
} fake_mode_t;

typedef struct fake {
    uv_tcp_t server;
    fake_mode_t mode;
    int port;
} fake_t;

typedef struct peer {
    uv_tcp_t tcp;
    fake_t *f;
    uv_write_t w;
    int reads;
} peer_t;

typedef struct outcome {
    int status_calls, status_err;
    int done_calls, done_err;
    uv_loop_t *loop;
} outcome_t;

static void on_peer_closed(uv_handle_t *h)
{
    free(h);
}

static void alloc_cb(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
    static char b[4096];
    (void)h;
    (void)n;
    *buf = uv_buf_init(b, sizeof b);
}

/* Closed when the fake server says yes to SSL, so libpq's next socket gets
 * this lower descriptor number, not the one it just closed. */
static int spare_fd = -1;

/* AuthenticationOk, then ReadyForQuery (idle): libpq is in. */
static const char login_ok[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0, 'Z', 0, 0, 0, 5, 'I'};

static void on_peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    peer_t *p = (peer_t *)s;
    (void)buf;
    if (n < 0 || (n > 0 && p->reads == -1)) {
        uv_read_stop(s);
        uv_close((uv_handle_t *)s, on_peer_closed);
        return;
    }
    if (n <= 0 || p->reads++)
        return;
    /* SSLRequest: length 8, code 80877103. */
    static const char ssl_request[] = {0, 0, 0, 8, 0x04, (char)0xd2, 0x16, 0x2f};
    bool ssl = n == 8 && memcmp(buf->base, ssl_request, 8) == 0;
    if (ssl && p->f->mode == FAKE_BAD_SSL) {
        /* Yes to SSL; the ClientHello that follows gets a hang-up. */
        uv_buf_t b = uv_buf_init("S", 1);
        uv_write(&p->w, s, &b, 1, NULL);
        p->reads = -1; /* the next read closes */
        if (spare_fd >= 0)
            close(spare_fd);
        spare_fd = -1;
        return;
    }
    if (ssl) {
        uv_buf_t b = uv_buf_init("N", 1);
        uv_write(&p->w, s, &b, 1, NULL);
        p->reads = 0; /* the startup packet comes next */
        return;
    }
    uv_buf_t b = uv_buf_init((char *)login_ok, sizeof login_ok);
    uv_write(&p->w, s, &b, 1, NULL);
}

static void on_connection(uv_stream_t *server, int status)
{
    fake_t *f = server->data;
    assert_int_equal(status, 0);
    peer_t *p = calloc(1, sizeof *p);
    uv_tcp_init(server->loop, &p->tcp);
    p->f = f;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&p->tcp), 0);
    if (f->mode == FAKE_SILENT)
        return; /* reads nothing, answers nothing */
    uv_read_start((uv_stream_t *)&p->tcp, alloc_cb, on_peer_read);
}

static void fake_start(uv_loop_t *loop, fake_t *f, fake_mode_t mode)
{
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    f->mode = mode;
    uv_tcp_init(loop, &f->server);
    f->server.data = f;
    assert_int_equal(uv_tcp_bind(&f->server, (struct sockaddr *)&sa, 0), 0);
    int len = sizeof sa;
    uv_tcp_getsockname(&f->server, (struct sockaddr *)&sa, &len);
    f->port = ntohs(sa.sin_port);
    assert_int_equal(uv_listen((uv_stream_t *)&f->server, 8, on_connection), 0);
}

static void on_status(pgc_t *c, int err, const char *msg, void *ud)
{
    outcome_t *o = ud;
    (void)c;
    (void)msg;
    o->status_calls++;
    o->status_err = err;
    if (err)
        uv_stop(o->loop);
}

static void on_done(void *ud, int err, const char *msg, const PGresult *res)
{
    outcome_t *o = ud;
    (void)msg;
    (void)res;
    o->done_calls++;
    o->done_err = err;
}

static void on_guard(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void on_any_closed(uv_handle_t *h)
{
    (void)h;
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h->type == UV_TCP && h->data == NULL ? on_peer_closed : on_any_closed);
}

/* Run until the connection reports an error or the guard passes. */
static uint64_t run(uv_loop_t *loop)
{
    static uv_timer_t guard; /* outlives this call: closed later */
    uv_timer_init(loop, &guard);
    uv_timer_start(&guard, on_guard, GUARD_MS, 0);
    uint64_t start = uv_now(loop);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_update_time(loop);
    uint64_t took = uv_now(loop) - start;
    uv_close((uv_handle_t *)&guard, on_any_closed);
    return took;
}

static void finish(uv_loop_t *loop, pgc_t *c)
{
    pgc_close(c);
    uv_walk(loop, walk_close, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(loop), 0);
}

/* Start a fake server and a connection to it (sslmode: disable or prefer). */
static pgc_t *open_fake(uv_loop_t *loop, fake_t *f, fake_mode_t mode, const char *sslmode,
                        pgc_opts_t opts, outcome_t *o)
{
    uv_loop_init(loop);
    fake_start(loop, f, mode);
    char ci[192];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=x dbname=x sslmode=%s gssencmode=disable",
             f->port, sslmode);
    o->loop = loop;
    opts.conninfo = ci;
    const char *err = NULL;
    pgc_t *c = pgc_open(loop, &opts, on_status, o, &err);
    assert_non_null(c);
    return c;
}

static const char *const select_1[] = {"SELECT 1"};

static void a_connect_that_gets_no_answer_fails_at_its_deadline(void **state)
{
    (void)state;
    uv_loop_t loop;
    fake_t f;
    outcome_t o = {0};
    pgc_t *c = open_fake(&loop, &f, FAKE_SILENT, "disable", (pgc_opts_t){.connect_timeout_ms = 200}, &o);
    uint64_t took = run(&loop);
    assert_int_equal(o.status_calls, 1);
    assert_int_equal(o.status_err, -ETIMEDOUT);
    assert_true(took < 2000);
    finish(&loop, c);
}

static void a_statement_that_gets_no_answer_fails_at_its_deadline_once(void **state)
{
    (void)state;
    uv_loop_t loop;
    fake_t f;
    outcome_t o = {0};
    pgc_t *c = open_fake(&loop, &f, FAKE_LOGIN_THEN_SILENT, "disable",
                         (pgc_opts_t){.statement_timeout_ms = 200}, &o);
    assert_int_equal(pgc_exec(c, select_1, 1, on_done, &o), 0);
    uint64_t took = run(&loop);
    assert_int_equal(o.done_calls, 1);
    assert_int_equal(o.done_err, -ETIMEDOUT);
    assert_int_equal(o.status_calls, 2); /* connected, then timed out */
    assert_int_equal(o.status_err, -ETIMEDOUT);
    assert_true(took < 2000);
    finish(&loop, c);
    assert_int_equal(o.done_calls, 1); /* closing does not call it again */
}

/* sslmode=prefer: the SSL handshake fails, libpq retries without SSL on
 * a new socket, here with another descriptor number than the old one. */
static void the_poll_handle_follows_libpq_to_a_new_socket(void **state)
{
    (void)state;
    uv_loop_t loop;
    fake_t f;
    outcome_t o = {0};
    spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pgc_t *c = open_fake(&loop, &f, FAKE_BAD_SSL, "prefer",
                         (pgc_opts_t){.connect_timeout_ms = 3000, .statement_timeout_ms = 200}, &o);
    /* A statement, so the run ends (at its deadline) once connected. */
    assert_int_equal(pgc_exec(c, select_1, 1, on_done, &o), 0);
    run(&loop);
    assert_int_equal(o.status_calls, 2); /* connected on the second socket */
    assert_int_equal(o.done_err, -ETIMEDOUT);
    finish(&loop, c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_connect_that_gets_no_answer_fails_at_its_deadline),
        cmocka_unit_test(a_statement_that_gets_no_answer_fails_at_its_deadline_once),
        cmocka_unit_test(the_poll_handle_follows_libpq_to_a_new_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
