/* One container's life (daemon/runtime/dk_container.c) against a fake
 * Docker Engine API on a Unix socket: a removal asked at any point is
 * carried out, and the owner hears started() then gone(), once each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include <cmocka.h>

#include "dk_container.h"

#define GUARD_MS 5000

typedef struct peer {
    uv_pipe_t pipe;
    char buf[8192];
    size_t len;
    bool is_wait; /* a /wait held open until the container is removed */
    uv_write_t w;
    char reply[512];
} peer_t;

static struct {
    uv_pipe_t server;
    char path[108];
    char requests[16][160]; /* "METHOD /path" in arrival order */
    int n;
    peer_t *wait; /* the held /wait, if any */
} api;

static struct {
    int started, started_err, gone;
    int64_t exit_code;
    bool remove_when_started;
    dkc_t *c;
} owner;

static void on_closed(uv_handle_t *h)
{
    if (h != (uv_handle_t *)&api.server)
        free(h);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    uv_close((uv_handle_t *)w->data, on_closed);
}

static void respond(peer_t *p, int status, const char *body)
{
    snprintf(p->reply, sizeof p->reply,
             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n%s",
             status, strlen(body), body);
    uv_buf_t b = uv_buf_init(p->reply, (unsigned)strlen(p->reply));
    p->w.data = p;
    uv_read_stop((uv_stream_t *)&p->pipe);
    uv_write(&p->w, (uv_stream_t *)&p->pipe, &b, 1, on_written);
}

static bool has(const char *what)
{
    for (int k = 0; k < api.n; k++)
        if (strstr(api.requests[k], what))
            return true;
    return false;
}

/* The whole request is in: record it and answer as an engine would. */
static void handle(peer_t *p)
{
    char method[16], path[128];
    if (sscanf(p->buf, "%15s %127s", method, path) != 2)
        return;
    if (api.n < 16)
        snprintf(api.requests[api.n++], sizeof api.requests[0], "%s %s", method, path);
    if (strstr(path, "/containers/create"))
        respond(p, 201, "{\"Id\":\"c0ffee\"}");
    else if (strstr(path, "/start"))
        respond(p, 204, "");
    else if (strstr(path, "/wait"))
        api.wait = p; /* answered when the container goes */
    else if (strcmp(method, "DELETE") == 0) {
        respond(p, 204, "");
        if (api.wait)
            respond(api.wait, 200, "{\"StatusCode\":137}");
        api.wait = NULL;
    } else
        respond(p, 404, "{\"message\":\"no such thing\"}");
}

static void alloc_cb(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
    peer_t *p = (peer_t *)h;
    (void)n;
    *buf = uv_buf_init(p->buf + p->len, (unsigned)(sizeof p->buf - p->len - 1));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    peer_t *p = (peer_t *)s;
    (void)buf;
    if (n < 0) {
        if (api.wait == p)
            api.wait = NULL;
        uv_close((uv_handle_t *)s, on_closed);
        return;
    }
    p->len += (size_t)n;
    p->buf[p->len] = '\0';
    char *end = strstr(p->buf, "\r\n\r\n");
    if (!end)
        return;
    const char *cl = strcasestr(p->buf, "Content-Length:");
    size_t want = cl && cl < end ? strtoul(cl + 15, NULL, 10) : 0;
    if (p->len >= (size_t)(end + 4 - p->buf) + want)
        handle(p);
}

static void on_connection(uv_stream_t *server, int status)
{
    assert_int_equal(status, 0);
    peer_t *p = calloc(1, sizeof *p);
    uv_pipe_init(server->loop, &p->pipe, 0);
    assert_int_equal(uv_accept(server, (uv_stream_t *)&p->pipe), 0);
    uv_read_start((uv_stream_t *)&p->pipe, alloc_cb, on_read);
}

static void on_started(void *ud, int err, const char *msg)
{
    (void)ud;
    (void)msg;
    owner.started++;
    owner.started_err = err;
    if (err == 0 && owner.remove_when_started)
        dkc_remove(owner.c);
}

static void on_gone(void *ud, int64_t code)
{
    uv_loop_t *loop = ud;
    owner.gone++;
    owner.exit_code = code;
    uv_stop(loop);
}

static void on_guard(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void close_all(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, h->type == UV_NAMED_PIPE && h != (uv_handle_t *)&api.server ? on_closed : NULL);
}

/* Run a container through the fake engine; remove it right away
 * (still being created) or once it has started. */
static void run_container(bool remove_at_once)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    memset(&api, 0, sizeof api);
    memset(&owner, 0, sizeof owner);
    snprintf(api.path, sizeof api.path, "/tmp/dbl-fake-docker.%d.sock", (int)getpid());
    unlink(api.path);
    uv_pipe_init(&loop, &api.server, 0);
    assert_int_equal(uv_pipe_bind(&api.server, api.path), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&api.server, 8, on_connection), 0);
    dk_endpoint_t ep = {0};
    snprintf(ep.host, sizeof ep.host, "unix://%s", api.path);
    const char *why = NULL;
    dk_t *dk = dk_new(&loop, &ep, &why);
    assert_non_null(dk);
    json_object *body = json_object_new_object();
    static const dkc_cbs_t cbs = {.started = on_started, .gone = on_gone};
    owner.remove_when_started = !remove_at_once;
    owner.c = dkc_run(dk, body, "test", &cbs, &loop);
    json_object_put(body);
    assert_non_null(owner.c);
    if (remove_at_once)
        dkc_remove(owner.c);
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_guard, GUARD_MS, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    dk_free(dk);
    uv_walk(&loop, close_all, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    unlink(api.path);
}

static void a_container_removed_while_being_created_is_removed(void **state)
{
    (void)state;
    run_container(true);
    assert_int_equal(owner.started, 1);
    assert_true(owner.started_err < 0);
    assert_true(has("DELETE /v1.41/containers/c0ffee"));
    assert_false(has("/start"));
    assert_int_equal(owner.gone, 1);
}

static void a_running_container_removed_is_gone_with_its_exit_code(void **state)
{
    (void)state;
    run_container(false);
    assert_int_equal(owner.started, 1);
    assert_int_equal(owner.started_err, 0);
    assert_true(has("DELETE /v1.41/containers/c0ffee"));
    assert_int_equal(owner.gone, 1);
    assert_int_equal(owner.exit_code, 137);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_container_removed_while_being_created_is_removed),
        cmocka_unit_test(a_running_container_removed_is_gone_with_its_exit_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
