/* The Redis admin connection (rd_conn.c over rd_uv.c) against a fake server
 * on the same loop: socket errors and silence fail every pending command,
 * nothing waits forever, closing from a callback is safe. */
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "rd_conn.h"

#define GUARD_MS   5000 /* a test that waits longer than this has failed */
#define PATIENT_MS 60000

typedef struct fake {
    uv_loop_t loop;
    char dir[64], path[128];
    uv_pipe_t listener;
    uv_pipe_t peer; /* the accepted connection */
    int accepted;
    int answer_auth; /* answer the first command with +OK, then read nothing */
    int answered;
    /* what the client saw */
    rdc_t *c;
    int status_calls, up, lost_err;
    int replies_before_lost; /* replies already run when the loss was reported */
    int replies, reply_err[8];
} fake_t;

static void on_status(rdc_t *c, int err, const char *msg, void *ud)
{
    (void)c, (void)msg;
    fake_t *f = ud;
    f->status_calls++;
    if (err == 0)
        f->up = 1;
    else {
        f->lost_err = err;
        f->replies_before_lost = f->replies;
    }
}

static void on_reply(void *ud, int err, const char *msg, const redisReply *reply)
{
    (void)msg, (void)reply;
    fake_t *f = ud;
    if (f->replies < 8)
        f->reply_err[f->replies] = err;
    f->replies++;
}

static void alloc_cb(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    static char mem[4096];
    *buf = uv_buf_init(mem, size < sizeof mem ? (unsigned)size : sizeof mem);
}

static void on_peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    fake_t *f = s->data;
    if (n <= 0)
        return;
    /* AUTH came: answer it, then leave whatever follows unread. */
    uv_read_stop(s);
    f->answered = 1;
    static const char ok[] = "+OK\r\n";
    uv_buf_t b = uv_buf_init((char *)ok, sizeof ok - 1);
    assert_int_equal(uv_try_write(s, &b, 1), (int)sizeof ok - 1);
}

static void on_connection(uv_stream_t *server, int status)
{
    fake_t *f = server->data;
    assert_int_equal(status, 0);
    uv_pipe_init(&f->loop, &f->peer, 0);
    f->peer.data = f;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&f->peer), 0);
    f->accepted = 1;
    if (f->answer_auth)
        uv_read_start((uv_stream_t *)&f->peer, alloc_cb, on_peer_read);
}

static int setup(void **state)
{
    fake_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof f->dir, "/tmp/rdconn.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/redis.sock", f->dir);
    uv_pipe_init(&f->loop, &f->listener, 0);
    f->listener.data = f;
    assert_int_equal(uv_pipe_bind(&f->listener, f->path), 0);
    /* A listener that never accepts still completes connects (the backlog). */
    assert_int_equal(uv_listen((uv_stream_t *)&f->listener, 8, on_connection), 0);
    *state = f;
    return 0;
}

static void on_walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int teardown(void **state)
{
    fake_t *f = *state;
    rdc_close(f->c);
    uv_walk(&f->loop, on_walk_close, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* nothing of the connection left open */
    unlink(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void on_guard(uv_timer_t *t)
{
    *(int *)t->data = 1;
}

/* Run the loop until cond(f) holds or GUARD_MS pass; returns cond(f). */
static int run_until(fake_t *f, int (*cond)(fake_t *f))
{
    int expired = 0;
    uv_timer_t guard;
    uv_timer_init(&f->loop, &guard);
    guard.data = &expired;
    uv_timer_start(&guard, on_guard, GUARD_MS, 0);
    while (!cond(f) && !expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return cond(f);
}

static int is_up(fake_t *f)
{
    return f->up;
}

static int is_lost(fake_t *f)
{
    return f->lost_err != 0;
}

static int three_replies(fake_t *f)
{
    return f->replies >= 3;
}

/* The fake's receive queue holds the client's command. */
static int peer_has_unread(fake_t *f)
{
    uv_os_fd_t fd;
    int n = 0;
    return uv_fileno((uv_handle_t *)&f->peer, &fd) == 0 && ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

static rdc_t *connect_unix(fake_t *f, int connect_ms, int command_ms)
{
    rdc_opts_t o = {.loop = &f->loop,
                    .path = f->path,
                    .user = "u",
                    .password = "p",
                    .connect_timeout_ms = connect_ms,
                    .command_timeout_ms = command_ms};
    f->c = rdc_connect(&o, on_status, f);
    assert_non_null(f->c);
    return f->c;
}

static void ping(fake_t *f)
{
    const char *argv[] = {"PING"};
    assert_int_equal(rdc_command(f->c, 1, argv, on_reply, f), 0);
}

static void test_server_closing_with_commands_unread_fails_them(void **state)
{
    fake_t *f = *state;
    f->answer_auth = 1;
    connect_unix(f, PATIENT_MS, PATIENT_MS);
    assert_true(run_until(f, is_up));
    ping(f);
    ping(f);
    assert_true(run_until(f, peer_has_unread));
    /* Closed with our PINGs unread: the client's socket reports ECONNRESET
     * as a poll error, which hiredis 0.14's own adapter dropped. */
    uv_close((uv_handle_t *)&f->peer, NULL);
    assert_true(run_until(f, is_lost));
    assert_int_equal(f->replies, 2);
    assert_int_equal(f->reply_err[0], -ECONNRESET);
    assert_int_equal(f->reply_err[1], -ECONNRESET);
    assert_int_equal(f->replies_before_lost, 0); /* the owner knew first */
}

static void test_unanswered_command_fails_at_its_deadline(void **state)
{
    fake_t *f = *state;
    f->answer_auth = 1;
    connect_unix(f, PATIENT_MS, 200);
    assert_true(run_until(f, is_up));
    uint64_t start = uv_now(&f->loop);
    ping(f);
    assert_true(run_until(f, is_lost));
    assert_int_equal(f->lost_err, -ETIMEDOUT);
    assert_int_equal(f->replies, 1);
    assert_int_equal(f->reply_err[0], -ETIMEDOUT);
    assert_int_equal(f->replies_before_lost, 0);
    assert_true(uv_now(&f->loop) - start >= 150);
}

static void test_unanswered_auth_fails_at_the_connect_deadline(void **state)
{
    fake_t *f = *state;
    f->answer_auth = 0; /* accepted (or not) but never read */
    connect_unix(f, 200, PATIENT_MS);
    assert_true(run_until(f, is_lost));
    assert_int_equal(f->lost_err, -ETIMEDOUT);
    assert_false(f->up);
    assert_int_equal(f->status_calls, 1);
}

static void test_refused_tcp_connect_is_reported(void **state)
{
    fake_t *f = *state;
    /* A loopback port nobody listens on: bind one, learn it, close it. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    rdc_opts_t o = {.loop = &f->loop,
                    .host = "127.0.0.1",
                    .port = ntohs(a.sin_port),
                    .user = "u",
                    .password = "p",
                    .connect_timeout_ms = PATIENT_MS,
                    .command_timeout_ms = PATIENT_MS};
    f->c = rdc_connect(&o, on_status, f);
    if (!f->c)
        return; /* refused at once: reported by the NULL */
    assert_true(run_until(f, is_lost));
    assert_int_equal(f->lost_err, -ECONNREFUSED);
}

/* The owner closes the connection from the first reply's callback: the
 * others are cancelled, and nothing is used after it is freed (ASan). */
static void on_reply_then_close(void *ud, int err, const char *msg, const redisReply *reply)
{
    fake_t *f = ud;
    on_reply(ud, err, msg, reply);
    if (f->replies == 1) {
        rdc_t *c = f->c;
        f->c = NULL;
        rdc_close(c);
    }
}

static void test_closing_inside_a_reply_callback_cancels_the_rest(void **state)
{
    fake_t *f = *state;
    f->answer_auth = 1;
    connect_unix(f, PATIENT_MS, PATIENT_MS);
    assert_true(run_until(f, is_up));
    const char *argv[] = {"PING"};
    for (int k = 0; k < 3; k++)
        assert_int_equal(rdc_command(f->c, 1, argv, on_reply_then_close, f), 0);
    static const char pong[] = "+PONG\r\n";
    uv_buf_t b = uv_buf_init((char *)pong, sizeof pong - 1);
    assert_int_equal(uv_try_write((uv_stream_t *)&f->peer, &b, 1), (int)sizeof pong - 1);
    assert_true(run_until(f, three_replies));
    assert_int_equal(f->reply_err[0], 0);
    assert_int_equal(f->reply_err[1], -ECANCELED);
    assert_int_equal(f->reply_err[2], -ECANCELED);
    assert_int_equal(f->lost_err, 0); /* closed by its owner: no news */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_closing_with_commands_unread_fails_them, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_command_fails_at_its_deadline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_auth_fails_at_the_connect_deadline, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_tcp_connect_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closing_inside_a_reply_callback_cancels_the_rest,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
