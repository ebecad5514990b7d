#include "dk_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "list.h"
#include "log.h"

#define MAX_BODY (16u << 20)

typedef struct dk_req {
    list_node_t node;
    dk_t *dk;
    CURL *easy;
    struct curl_slist *headers;
    char *out;  /* request body */
    char *in;   /* response body */
    size_t in_len, in_cap;
    dk_cb cb;
    void *ud;
    char errbuf[CURL_ERROR_SIZE];
} dk_req_t;

struct dk {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char socket_path[512];
    list_t reqs;
    bool freeing;
};

/* One per socket curl watches; freed on close. */
typedef struct dk_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    dk_t *dk;
} dk_sock_t;

static void check_done(dk_t *dk)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(dk->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        dk_req_t *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        long status = 0;
        const char *err = NULL;
        if (msg->data.result == CURLE_OK)
            curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        else {
            status = msg->data.result == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED;
            err = r->errbuf[0] ? r->errbuf : curl_easy_strerror(msg->data.result);
        }
        json_object *body = NULL;
        if (r->in_len) {
            r->in[r->in_len] = '\0';
            body = json_tokener_parse(r->in);
        }
        list_remove(&dk->reqs, &r->node);
        curl_multi_remove_handle(dk->multi, r->easy);
        r->cb(r->ud, status, body, err);
        json_object_put(body);
        curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->headers);
        free(r->out);
        free(r->in);
        free(r);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    dk_sock_t *s = h->data;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    dk_t *dk = s->dk;
    curl_multi_socket_action(dk->multi, s->fd, flags, &running);
    check_done(dk);
}

static void on_timeout(uv_timer_t *t)
{
    dk_t *dk = t->data;
    int running;
    curl_multi_socket_action(dk->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(dk);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    dk_t *dk = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&dk->timer);
    else
        uv_timer_start(&dk->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static void sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    dk_t *dk = userp;
    dk_sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, sock_closed);
            curl_multi_assign(dk->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || uv_poll_init_socket(dk->loop, &s->poll, fd) < 0) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->dk = dk;
        s->poll.data = s;
        curl_multi_assign(dk->multi, fd, s);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

static size_t on_data(char *ptr, size_t size, size_t n, void *userdata)
{
    dk_req_t *r = userdata;
    size_t len = size * n;
    if (r->in_len + len + 1 > MAX_BODY)
        return 0; /* an answer this big is not one we asked for */
    if (r->in_len + len + 1 > r->in_cap) {
        size_t cap = r->in_cap ? r->in_cap * 2 : 4096;
        while (cap < r->in_len + len + 1)
            cap *= 2;
        char *grown = realloc(r->in, cap);
        if (!grown)
            return 0;
        r->in = grown;
        r->in_cap = cap;
    }
    memcpy(r->in + r->in_len, ptr, len);
    r->in_len += len;
    return len;
}

dk_t *dk_new(uv_loop_t *loop, const char *docker_host, const char **err)
{
    if (strncmp(docker_host, "unix://", 7) != 0 || !docker_host[7]) {
        *err = "only unix:// endpoints are supported (DOCKER_HOST or [postgres] docker_host)";
        return NULL;
    }
    static bool curl_ready;
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = true;
    }
    dk_t *dk = calloc(1, sizeof *dk);
    if (!dk) {
        *err = "out of memory";
        return NULL;
    }
    snprintf(dk->socket_path, sizeof dk->socket_path, "%s", docker_host + 7);
    dk->loop = loop;
    dk->multi = curl_multi_init();
    list_init(&dk->reqs);
    uv_timer_init(loop, &dk->timer);
    dk->timer.data = dk;
    curl_multi_setopt(dk->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(dk->multi, CURLMOPT_SOCKETDATA, dk);
    curl_multi_setopt(dk->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(dk->multi, CURLMOPT_TIMERDATA, dk);
    return dk;
}

const char *dk_api(const dk_t *dk)
{
    (void)dk;
    return "/v1.41"; /* Docker 20.10's API; Podman 4 serves it too */
}

int dk_request(dk_t *dk, const char *method, const char *path, json_object *body, long timeout_ms,
               dk_cb cb, void *ud)
{
    dk_req_t *r = calloc(1, sizeof *r);
    if (!r || !(r->easy = curl_easy_init())) {
        free(r);
        return -ENOMEM;
    }
    r->dk = dk;
    r->cb = cb;
    r->ud = ud;
    char url[1024];
    snprintf(url, sizeof url, "http://docker%s", path);
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    curl_easy_setopt(r->easy, CURLOPT_UNIX_SOCKET_PATH, dk->socket_path);
    curl_easy_setopt(r->easy, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    if (body) {
        r->out = strdup(json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
        r->headers = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->headers);
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, r->out);
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDS, "");
    }
    list_append(&dk->reqs, &r->node);
    if (curl_multi_add_handle(dk->multi, r->easy) != CURLM_OK) {
        list_remove(&dk->reqs, &r->node);
        curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->headers);
        free(r->out);
        free(r);
        return -EIO;
    }
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    dk_t *dk = h->data;
    curl_multi_cleanup(dk->multi);
    free(dk);
}

void dk_free(dk_t *dk)
{
    if (!dk)
        return;
    while (!list_empty(&dk->reqs)) {
        dk_req_t *r = list_entry(list_first(&dk->reqs), dk_req_t, node);
        list_remove(&dk->reqs, &r->node);
        curl_multi_remove_handle(dk->multi, r->easy); /* CURL_POLL_REMOVE closes its socket */
        r->cb(r->ud, -ECANCELED, NULL, "cancelled");
        curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->headers);
        free(r->out);
        free(r->in);
        free(r);
    }
    uv_timer_stop(&dk->timer);
    uv_close((uv_handle_t *)&dk->timer, timer_closed);
}

void dk_error_text(long status, json_object *body, const char *err, char *out, size_t len)
{
    json_object *m;
    if (status < 0)
        snprintf(out, len, "container engine unreachable: %s", err ? err : "no answer");
    else if (body && json_object_object_get_ex(body, "message", &m))
        snprintf(out, len, "container engine answered %ld: %s", status,
                 json_object_get_string(m));
    else
        snprintf(out, len, "container engine answered %ld", status);
}
