#include "dk_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dk_beacon.h"
#include "dk_reaper.h"
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
    char why[CURL_ERROR_SIZE + 1024];
} dk_req_t;

struct dk {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char socket_path[512]; /* unix:// */
    char base_url[600];    /* http://docker, or http(s)://host:port for tcp:// */
    dk_endpoint_t ep;
    list_t reqs;
    bool freeing;
    dk_owner_t self;      /* the labels our containers carry */
    dk_reaper_t *reaper;  /* removes dead owners' containers */
    dk_beacon_t *beacon;  /* our heartbeat, for daemons elsewhere */
};

/* One per socket curl watches; freed on close. */
typedef struct dk_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    dk_t *dk;
} dk_sock_t;

/* A refused client certificate shows as an alert at the first read (TLS
 * 1.3) or a failed handshake; a wrong CA as a failed verification. */
static bool tls_failure(CURLcode rc)
{
    return rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION ||
           rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE ||
           rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING;
}

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
            if (dk->ep.tls && tls_failure(msg->data.result)) {
                snprintf(r->why, sizeof r->why,
                         "TLS with the engine failed (%s): ca.pem in %s must have signed the "
                         "engine's certificate, and the engine must trust cert.pem there "
                         "(docker_cert_path, DOCKER_CERT_PATH)",
                         err, dk->ep.cert_path);
                err = r->why;
            }
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

static bool truthy(const char *v)
{
    return strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 ||
           strcasecmp(v, "on") == 0;
}

static bool falsy(const char *v)
{
    return strcmp(v, "0") == 0 || strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0 ||
           strcasecmp(v, "off") == 0;
}

static const char *env_or(const char *conf, const char *name)
{
    if (conf && conf[0])
        return conf;
    const char *v = getenv(name);
    return v ? v : "";
}

int dk_endpoint_resolve(dk_endpoint_t *ep, const char *conf_host, const char *conf_tls_verify,
                        const char *conf_cert_path, const char **err)
{
    memset(ep, 0, sizeof *ep);
    const char *host = env_or(conf_host, "DOCKER_HOST");
    snprintf(ep->host, sizeof ep->host, "%s", host[0] ? host : "unix:///var/run/docker.sock");
    /* The docker CLI: any non-empty DOCKER_TLS_VERIFY turns it on; the
     * config also says no in so many words. */
    const char *verify = conf_tls_verify && conf_tls_verify[0] ? conf_tls_verify : "";
    if (verify[0] && !truthy(verify) && !falsy(verify)) {
        *err = "docker_tls_verify must be yes or no";
        return -EINVAL;
    }
    ep->tls = verify[0] ? truthy(verify) : env_or(NULL, "DOCKER_TLS_VERIFY")[0] != '\0';
    const char *certs = env_or(conf_cert_path, "DOCKER_CERT_PATH");
    if (certs[0])
        snprintf(ep->cert_path, sizeof ep->cert_path, "%s", certs);
    else if (getenv("HOME"))
        snprintf(ep->cert_path, sizeof ep->cert_path, "%s/.docker", getenv("HOME"));
    if (ep->tls && strncmp(ep->host, "tcp://", 6) != 0) {
        *err = "TLS (docker_tls_verify, DOCKER_TLS_VERIFY) needs a tcp:// docker_host";
        return -EINVAL;
    }
    return 0;
}

void dk_endpoint_hostname(const dk_endpoint_t *ep, char *out, size_t len)
{
    out[0] = '\0';
    if (strncmp(ep->host, "tcp://", 6) != 0)
        return;
    const char *h = ep->host + 6;
    size_t n = h[0] == '[' ? strcspn(h, "]") + 1 : strcspn(h, ":/");
    snprintf(out, len, "%.*s", (int)n, h);
}

/* The URL prefix for tcp://host[:port][/]: https with TLS. */
static const char *tcp_base(dk_t *dk, const char **err)
{
    const char *h = dk->ep.host + 6;
    size_t n = strcspn(h, "/");
    if (n == 0) {
        *err = "tcp:// needs a host: tcp://HOST:2376";
        return NULL;
    }
    const char *colon = h[0] == '[' ? strstr(h, "]:") : memchr(h, ':', n);
    snprintf(dk->base_url, sizeof dk->base_url, "%s://%.*s%s", dk->ep.tls ? "https" : "http",
             (int)n, h, colon ? "" : dk->ep.tls ? ":2376" : ":2375");
    return dk->base_url;
}

/* The three files DOCKER_CERT_PATH holds, readable now: a clear error at
 * start beats a TLS failure on the first request. */
static const char *check_certs(const dk_endpoint_t *ep)
{
    static const char *const names[] = {"ca.pem", "cert.pem", "key.pem"};
    for (size_t k = 0; k < 3; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", ep->cert_path, names[k]);
        if (access(p, R_OK) < 0)
            return "DOCKER_CERT_PATH (docker_cert_path) must hold readable ca.pem, cert.pem "
                   "and key.pem";
    }
    return NULL;
}

dk_t *dk_new(uv_loop_t *loop, const dk_endpoint_t *ep, const char **err)
{
    bool unix_ep = strncmp(ep->host, "unix://", 7) == 0 && ep->host[7];
    if (!unix_ep && strncmp(ep->host, "tcp://", 6) != 0) {
        *err = "docker_host (DOCKER_HOST) must be unix:///path/to/docker.sock or tcp://HOST:PORT";
        return NULL;
    }
    if (ep->tls && (*err = check_certs(ep)))
        return NULL;
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
    dk->ep = *ep;
    if (unix_ep) {
        snprintf(dk->socket_path, sizeof dk->socket_path, "%s", ep->host + 7);
        snprintf(dk->base_url, sizeof dk->base_url, "http://docker");
    } else if (!tcp_base(dk, err)) {
        free(dk);
        return NULL;
    }
    dk->loop = loop;
    dk->multi = curl_multi_init();
    list_init(&dk->reqs);
    uv_timer_init(loop, &dk->timer);
    dk->timer.data = dk;
    curl_multi_setopt(dk->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(dk->multi, CURLMOPT_SOCKETDATA, dk);
    curl_multi_setopt(dk->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(dk->multi, CURLMOPT_TIMERDATA, dk);
    if (dk_owner_self(&dk->self) < 0)
        log_warn("docker", "no /proc here: other daemons cannot tell whether this one is alive, "
                           "and will leave its containers if it dies");
    return dk;
}

int dk_reap_start(dk_t *dk, const char *image, int beat_s)
{
    log_info("docker", "our containers carry dblease.daemon=%s; heartbeat every %d s", dk->self.id,
             beat_s);
    if (!dk->reaper)
        dk->reaper = dk_reaper_new(dk, dk->loop, &dk->self, beat_s);
    if (!dk->beacon)
        dk->beacon = dk_beacon_new(dk, dk->loop, image, beat_s);
    return dk->reaper && dk->beacon ? 0 : -ENOMEM;
}

const dk_endpoint_t *dk_ep(const dk_t *dk)
{
    return &dk->ep;
}

const dk_owner_t *dk_self(const dk_t *dk)
{
    return &dk->self;
}

const char *dk_api(const dk_t *dk)
{
    (void)dk;
    return "/v1.41"; /* Docker 20.10's API; Podman 4 serves it too */
}

/* Verify the engine against ca.pem (name included) and present our
 * certificate, as the docker CLI does with DOCKER_TLS_VERIFY. */
static void set_tls(CURL *easy, const dk_endpoint_t *ep)
{
    char ca[600], cert[600], key[600];
    snprintf(ca, sizeof ca, "%s/ca.pem", ep->cert_path);
    snprintf(cert, sizeof cert, "%s/cert.pem", ep->cert_path);
    snprintf(key, sizeof key, "%s/key.pem", ep->cert_path);
    curl_easy_setopt(easy, CURLOPT_CAINFO, ca);
    curl_easy_setopt(easy, CURLOPT_SSLCERT, cert);
    curl_easy_setopt(easy, CURLOPT_SSLKEY, key);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
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
    snprintf(url, sizeof url, "%s%s", dk->base_url, path);
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    if (dk->socket_path[0])
        curl_easy_setopt(r->easy, CURLOPT_UNIX_SOCKET_PATH, dk->socket_path);
    else if (dk->ep.tls)
        set_tls(r->easy, &dk->ep);
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

static void cancel_all(dk_t *dk)
{
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
}

static void close_client(void *ud)
{
    dk_t *dk = ud;
    cancel_all(dk);
    uv_timer_stop(&dk->timer);
    uv_close((uv_handle_t *)&dk->timer, timer_closed);
}

void dk_free(dk_t *dk)
{
    if (!dk)
        return;
    cancel_all(dk);
    dk_reaper_free(dk->reaper); /* after its requests were cancelled */
    dk->reaper = NULL;
    dk_beacon_t *b = dk->beacon;
    dk->beacon = NULL;
    if (b)
        dk_beacon_stop(b, close_client, dk); /* its DELETE still goes through us */
    else
        close_client(dk);
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
