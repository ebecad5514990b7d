/* A scripted fake dbleased for the client's unit tests; see fake_daemon.h. */
#include <setjmp.h>
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

#include "fake_daemon.h"

/* ---- the daemon side ---------------------------------------------------- */

json_object *srv_read(int fd)
{
    char line[65536];
    size_t n = 0;

    while (n < sizeof(line) - 1) {
        ssize_t r = read(fd, line + n, 1);

        if (r <= 0)
            return NULL;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    return json_tokener_parse(line);
}

void srv_send(int fd, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    buf[n++] = '\n';
    SRV_CHECK(write(fd, buf, (size_t)n) == n);
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

int64_t srv_expect(int fd, const char *op, json_object **out)
{
    json_object *req = srv_read(fd), *v;
    int64_t id;

    SRV_CHECK(req);
    SRV_CHECK(srv_str(req, "op") && strcmp(srv_str(req, "op"), op) == 0);
    SRV_CHECK(json_object_object_get_ex(req, "id", &v) && json_object_is_type(v, json_type_int));
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

void srv_drain(int fd)
{
    json_object *req;

    while ((req = srv_read(fd)))
        json_object_put(req);
}

/* ---- the test side ------------------------------------------------------ */

void fake_start(fake_t *f, void (*serve)(int fd))
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int lfd, cfd;

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
        cfd = accept(lfd, NULL, NULL);
        SRV_CHECK(cfd >= 0);
        serve(cfd);
        _exit(0);
    }
    close(lfd);
}

void fake_finish(fake_t *f)
{
    int status;

    assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
    unlink(f->path);
    rmdir(f->dir);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
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
