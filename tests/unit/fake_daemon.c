/* A scripted fake dbleased for the client's unit tests; see fake_daemon.h. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client_priv.h"
#include "fake_daemon.h"

/* ---- the daemon side ---------------------------------------------------- */

static const char *script = "?"; /* the child's serve function */
static char read_failure[128];   /* why srv_read() last returned NULL */
static int go_r = -1;            /* the child's end of the go pipe */

void srv_fail(const char *file, int line, const char *func, int err, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (err)
        fprintf(stderr, "fake daemon [%s]: %s:%d (%s): %s (errno %d, %s)\n", script, file, line,
                func, msg, err, strerror(err));
    else
        fprintf(stderr, "fake daemon [%s]: %s:%d (%s): %s\n", script, file, line, func, msg);
    _exit(1);
}

json_object *srv_read(int fd)
{
    char line[65536];
    size_t n = 0;
    json_object *req;

    while (n < sizeof(line) - 1) {
        ssize_t r = read(fd, line + n, 1);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(read_failure, sizeof(read_failure), "read failed: %s (errno %d)",
                     strerror(errno), errno);
            return NULL;
        }
        if (r == 0) {
            snprintf(read_failure, sizeof(read_failure),
                     n ? "the client hung up mid-line" : "the client hung up");
            return NULL;
        }
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    req = json_tokener_parse(line);
    if (!req)
        snprintf(read_failure, sizeof(read_failure), "not a JSON line: %.80s", line);
    return req;
}

const char *srv_read_failure(void)
{
    return read_failure;
}

/* Formats a reply line and writes all of it: 0, or the errno of the failure. */
static int send_line(int fd, char *buf, size_t size, const char *fmt, va_list ap)
{
    int n = vsnprintf(buf, size - 1, fmt, ap);
    size_t len, done = 0;

    if (n < 0 || (size_t)n >= size - 1)
        return EMSGSIZE;
    buf[n] = '\n';
    len = (size_t)n + 1;
    while (done < len) {
        ssize_t w = write(fd, buf + done, len - done);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int err = errno;

            buf[n] = '\0';
            return err;
        }
        done += (size_t)w;
    }
    buf[n] = '\0';
    return 0;
}

void srv_send_at(const char *file, int line, const char *func, int fd, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    int err;

    va_start(ap, fmt);
    err = send_line(fd, buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (err)
        srv_fail(file, line, func, err, "cannot send %.200s", buf);
}

bool srv_send_unawaited_at(const char *file, int line, const char *func, int fd, const char *fmt,
                           ...)
{
    char buf[4096];
    va_list ap;
    int err;

    va_start(ap, fmt);
    err = send_line(fd, buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (err && err != EPIPE && err != ECONNRESET)
        srv_fail(file, line, func, err, "cannot send %.200s", buf);
    return err == 0;
}

const char *srv_str(json_object *req, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(req, key, &v) ? json_object_get_string(v) : NULL;
}

bool srv_has(json_object *req, const char *key)
{
    return json_object_object_get_ex(req, key, NULL);
}

int64_t srv_expect_at(const char *file, int line, const char *func, int fd, const char *op,
                      json_object **out)
{
    json_object *req = srv_read(fd), *v;
    const char *got;
    int64_t id;

    if (!req)
        srv_fail(file, line, func, 0, "expected a \"%s\" request: %s", op, srv_read_failure());
    got = srv_str(req, "op");
    if (!got || strcmp(got, op) != 0)
        srv_fail(file, line, func, 0, "expected a \"%s\" request, got %.300s", op,
                 json_object_to_json_string(req));
    if (!json_object_object_get_ex(req, "id", &v) || !json_object_is_type(v, json_type_int))
        srv_fail(file, line, func, 0, "\"%s\" request without an integer id: %.300s", op,
                 json_object_to_json_string(req));
    id = json_object_get_int64(v);
    if (out)
        *out = req;
    else
        json_object_put(req);
    return id;
}

void srv_hello_from(int fd, const char *client)
{
    json_object *req;
    int64_t id = srv_expect(fd, "hello", &req);

    SRV_CHECK(json_object_get_int(json_object_object_get(req, "proto")) == 1);
    SRV_CHECK(!client || strcmp(srv_str(req, "client"), client) == 0);
    json_object_put(req);
    srv_send(fd,
             "{\"id\":%lld,\"ok\":true,\"daemon\":\"dbleased\",\"version\":\"9.9.9\",\"proto\":1}",
             (long long)id);
}

void srv_hello(int fd)
{
    srv_hello_from(fd, "unit");
}

void srv_grant(int fd, int64_t id)
{
    srv_send(fd, "{\"id\":%lld,\"ok\":true,\"lease\":" LEASE_JSON "}", (long long)id);
}

void srv_error_at(const char *file, int line, const char *func, int fd, int64_t id,
                  const char *code, const char *message)
{
    json_object *msg = json_object_new_string(message);

    if (!msg)
        srv_fail(file, line, func, ENOMEM, "cannot build an error reply");
    srv_send_at(file, line, func, fd,
                "{\"id\":%lld,\"ok\":false,\"error\":{\"code\":\"%s\",\"message\":%s}}",
                (long long)id, code,
                json_object_to_json_string_ext(msg, JSON_C_TO_STRING_PLAIN |
                                                        JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(msg);
}

/* Ends at the client's hang-up: end of stream, or ECONNRESET when it closed
 * with replies still unread. */
void srv_drain(int fd)
{
    json_object *req;

    while ((req = srv_read(fd)))
        json_object_put(req);
}

void srv_wait_go_at(const char *file, int line, const char *func)
{
    char c;
    ssize_t r;

    do
        r = read(go_r, &c, 1);
    while (r < 0 && errno == EINTR);
    if (r != 1)
        srv_fail(file, line, func, r < 0 ? errno : 0, "the test never said go");
}

void srv_hold_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- the test side ------------------------------------------------------ */

void fake_start_named(fake_t *f, void (*serve)(int fd), const char *name)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int lfd, cfd, go[2];

    f->script = name;
    assert_int_equal(pipe(go), 0);
    snprintf(f->dir, sizeof(f->dir), "/tmp/dblease-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/s.sock", f->dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
    lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 4), 0);
    f->pid = fork();
    assert_true(f->pid >= 0);
    if (f->pid == 0) {
        script = name;
        close(go[1]);
        go_r = go[0];
        /* A write to a client that hung up is an error to report (EPIPE),
         * not a silent death by SIGPIPE. */
        signal(SIGPIPE, SIG_IGN);
        do
            cfd = accept(lfd, NULL, NULL);
        while (cfd < 0 && errno == EINTR);
        SRV_CHECK(cfd >= 0);
        serve(cfd);
        _exit(0);
    }
    close(lfd);
    close(go[0]);
    f->go_w = go[1];
}

void fake_go(fake_t *f)
{
    assert_int_equal(write(f->go_w, "g", 1), 1);
}

void wait_for_reply_in_flight(dbl_ctx_t *ctx)
{
    struct pollfd p = {.fd = ctx->priv->fd, .events = POLLIN};
    int n;

    do
        n = poll(&p, 1, 10000);
    while (n < 0 && errno == EINTR);
    assert_int_equal(n, 1);
}

void set_timeout(dbl_ctx_t *ctx, int timeout_ms)
{
    ctx->priv->timeout_ms = timeout_ms;
}

void fake_finish(fake_t *f)
{
    int status;

    close(f->go_w);
    assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
    unlink(f->path);
    rmdir(f->dir);
    if (WIFSIGNALED(status))
        fail_msg("fake daemon [%s] killed by signal %d (%s)", f->script, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        fail_msg("fake daemon [%s] exited with status %d: a check failed, see its message above",
                 f->script, WEXITSTATUS(status));
    assert_true(WIFEXITED(status));
}

dbl_ctx_t *connect_to(const fake_t *f, int timeout_ms)
{
    dbl_options_t o = {.socket_path = f->path, .timeout_ms = timeout_ms, .client_name = "unit"};
    dbl_ctx_t *ctx = dbl_connect(&o);

    assert_non_null(ctx);
    return ctx;
}

int64_t elapsed_ms(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}
