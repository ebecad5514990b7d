#include "metrics.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tpl.h"

/* Upper bounds in seconds: a warm lease is ~100 µs, a cold one tens of ms,
 * a lease that waits for a migration seconds. */
static const double bounds[METRICS_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,   0.025,   0.05,   0.1,   1,      10};

#define MAX_SCRAPERS 16
#define MAX_REQUEST 8192

typedef struct scrape {
    uv_tcp_t tcp;
    dbld_t *d;
    char req[MAX_REQUEST];
    size_t len;
    bool answered;
} scrape_t;

void metrics_lease_latency(dbld_t *d, const char *kind, uint64_t start_ns)
{
    lat_hist_t *h = strcmp(kind, "redis") == 0 ? &d->lat_redis : &d->lat_pg;
    double s = (double)(uv_hrtime() - start_ns) / 1e9;
    for (int k = 0; k < METRICS_BUCKETS; k++)
        if (s <= bounds[k])
            h->buckets[k]++;
    h->count++;
    h->sum_s += s;
}

typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static void add(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(buf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = b->p ? vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 16384;
        char *grown = realloc(b->p, cap);
        if (!grown)
            return;
        b->p = grown;
        b->cap = cap;
    }
}

static void hist(buf_t *b, const char *kind, const lat_hist_t *h)
{
    for (int k = 0; k < METRICS_BUCKETS; k++)
        add(b, "dblease_lease_latency_seconds_bucket{kind=\"%s\",le=\"%g\"} %llu\n", kind,
            bounds[k], (unsigned long long)h->buckets[k]);
    add(b, "dblease_lease_latency_seconds_bucket{kind=\"%s\",le=\"+Inf\"} %llu\n", kind,
        (unsigned long long)h->count);
    add(b, "dblease_lease_latency_seconds_sum{kind=\"%s\"} %.9f\n", kind, h->sum_s);
    add(b, "dblease_lease_latency_seconds_count{kind=\"%s\"} %llu\n", kind,
        (unsigned long long)h->count);
}

char *metrics_render(dbld_t *d)
{
    buf_t b = {0};
    add(&b, "# HELP dblease_lease_latency_seconds Time from a lease request to its grant.\n"
            "# TYPE dblease_lease_latency_seconds histogram\n");
    hist(&b, "postgres", &d->lat_pg);
    hist(&b, "redis", &d->lat_redis);
    static const struct {
        const char *name, *help;
        slot_state_t state;
    } gauges[] = {
        {"ready", "Databases prepared and waiting for a lease.", SLOT_READY},
        {"leased", "Databases held by a lease.", SLOT_LEASED},
        {"creating", "Databases being prepared.", SLOT_CREATING},
        {"resetting", "Databases being reset or dropped.", SLOT_DROPPING},
        {"failed", "Databases whose preparation failed (retried after a back-off).", SLOT_FAILED},
    };
    for (size_t g = 0; g < sizeof gauges / sizeof gauges[0]; g++) {
        add(&b, "# HELP dblease_pool_%s %s\n# TYPE dblease_pool_%s gauge\n", gauges[g].name,
            gauges[g].help, gauges[g].name);
        list_node_t *it, *tmp;
        list_for_each(&d->templates, it, tmp)
        {
            const tpl_t *t = list_entry(it, tpl_t, node);
            size_t n = pool_count(t->pool, gauges[g].state);
            if (gauges[g].state == SLOT_DROPPING)
                n += pool_count(t->pool, SLOT_ROTATING);
            add(&b, "dblease_pool_%s{kind=\"%s\",template=\"%s\",hash=\"%.12s\"} %zu\n",
                gauges[g].name, t->kind, t->name, t->hash, n);
        }
    }
    add(&b, "# HELP dblease_pool_waiting Lease requests queued for a database.\n"
            "# TYPE dblease_pool_waiting gauge\n");
    uint64_t resets = 0, failures = 0;
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        const tpl_t *t = list_entry(it, tpl_t, node);
        add(&b, "dblease_pool_waiting{kind=\"%s\",template=\"%s\",hash=\"%.12s\"} %zu\n", t->kind,
            t->name, t->hash, t->pool->waiters.count);
        resets += t->pool->counters.dropped + t->pool->counters.rotated;
        failures += t->pool->counters.create_failures + t->pool->counters.drop_failures;
    }
    add(&b, "# HELP dblease_pool_releases_total Releases by outcome (reused, reloaded, "
            "recloned).\n# TYPE dblease_pool_releases_total counter\n"
            "# HELP dblease_pool_release_seconds_total Time spent per release outcome.\n"
            "# TYPE dblease_pool_release_seconds_total counter\n"
            "# HELP dblease_pool_releases_unchecked_total Releases recloned without checking "
            "(reset = auto, after repeated changes).\n"
            "# TYPE dblease_pool_releases_unchecked_total counter\n");
    list_for_each(&d->templates, it, tmp)
    {
        const tpl_t *t = list_entry(it, tpl_t, node);
        for (int a = 0; a < RESET__COUNT; a++) {
            const char *name = reset_action_name((reset_action_t)a);
            add(&b,
                "dblease_pool_releases_total{kind=\"%s\",template=\"%s\",hash=\"%.12s\","
                "outcome=\"%s\"} %llu\n"
                "dblease_pool_release_seconds_total{kind=\"%s\",template=\"%s\",hash=\"%.12s\","
                "outcome=\"%s\"} %.3f\n",
                t->kind, t->name, t->hash, name,
                (unsigned long long)t->pool->counters.resets[a], t->kind, t->name, t->hash, name,
                (double)t->pool->counters.reset_ms[a] / 1000.0);
        }
        add(&b,
            "dblease_pool_releases_unchecked_total{kind=\"%s\",template=\"%s\",hash=\"%.12s\"} "
            "%llu\n",
            t->kind, t->name, t->hash, (unsigned long long)t->pool->counters.unchecked);
    }
    const dbld_counters_t *c = &d->counters;
    const struct {
        const char *name, *help;
        uint64_t v;
    } counters[] = {
        {"leases_granted_total", "Leases handed out.", c->leases_granted},
        {"leases_released_total", "Leases released by their holder.", c->leases_released},
        {"leases_expired_total", "Leases ended by their TTL.", c->leases_expired},
        {"leases_disconnected_total", "Attached leases ended by their connection closing.",
         c->leases_disconnected},
        {"resets_total", "Databases reset or dropped after use.", resets},
        {"failures_total", "Databases that could not be prepared or dropped.", failures},
        {"instance_restarts_total", "Servers that died or hung and were replaced.",
         c->instance_restarts},
        {"connections_total", "Client connections accepted.", c->connections},
    };
    for (size_t k = 0; k < sizeof counters / sizeof counters[0]; k++)
        add(&b, "# HELP dblease_%s %s\n# TYPE dblease_%s counter\ndblease_%s %llu\n",
            counters[k].name, counters[k].help, counters[k].name, counters[k].name,
            (unsigned long long)counters[k].v);
    add(&b, "# HELP dblease_databases Databases in any state, against max_databases.\n"
            "# TYPE dblease_databases gauge\ndblease_databases %d\n"
            "# HELP dblease_max_databases The [daemon] max_databases limit.\n"
            "# TYPE dblease_max_databases gauge\ndblease_max_databases %d\n",
        d->limits.total, d->limits.max);
    return b.p;
}

/* ---- the endpoint -------------------------------------------------------- */

static void scrape_closed(uv_handle_t *h)
{
    scrape_t *s = h->data;
    s->d->scrapers--;
    free(s);
}

typedef struct reply_req {
    uv_write_t w;
    char *body;
    char head[256];
} reply_req_t;

static void on_written(uv_write_t *w, int status)
{
    reply_req_t *r = (reply_req_t *)w;
    uv_close((uv_handle_t *)w->handle, scrape_closed);
    free(r->body);
    free(r);
}

static void respond(scrape_t *s, int code, const char *type, char *body)
{
    reply_req_t *r = calloc(1, sizeof *r);
    if (!r) {
        free(body);
        uv_close((uv_handle_t *)&s->tcp, scrape_closed);
        return;
    }
    r->body = body;
    size_t blen = body ? strlen(body) : 0;
    snprintf(r->head, sizeof r->head,
             "HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
             code, code == 200 ? "OK" : "Not Found", type, blen);
    uv_buf_t bufs[2] = {uv_buf_init(r->head, (unsigned)strlen(r->head)),
                        uv_buf_init(body ? body : "", (unsigned)blen)};
    s->answered = true;
    if (uv_write(&r->w, (uv_stream_t *)&s->tcp, bufs, 2, on_written) < 0) {
        free(body);
        free(r);
        uv_close((uv_handle_t *)&s->tcp, scrape_closed);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    scrape_t *s = h->data;
    *buf = uv_buf_init(s->req + s->len, (unsigned)(MAX_REQUEST - 1 - s->len));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    scrape_t *s = st->data;
    if (s->answered)
        return;
    if (n < 0 || (n == 0 && s->len == MAX_REQUEST - 1)) {
        uv_close((uv_handle_t *)st, scrape_closed);
        return;
    }
    s->len += (size_t)n;
    s->req[s->len] = '\0';
    if (!strstr(s->req, "\r\n\r\n") && !strstr(s->req, "\n\n")) {
        if (s->len == MAX_REQUEST - 1)
            uv_close((uv_handle_t *)st, scrape_closed);
        return;
    }
    uv_read_stop(st);
    if (strncmp(s->req, "GET /metrics ", 13) == 0 || strncmp(s->req, "GET /metrics?", 13) == 0) {
        respond(s, 200, "text/plain; version=0.0.4; charset=utf-8", metrics_render(s->d));
    } else {
        char *body = strdup("dbleased serves Prometheus metrics at /metrics\n");
        respond(s, 404, "text/plain; charset=utf-8", body);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    dbld_t *d = server->data;
    if (status < 0)
        return;
    scrape_t *s = calloc(1, sizeof *s);
    if (!s)
        return;
    s->d = d;
    uv_tcp_init(d->loop, &s->tcp);
    s->tcp.data = s;
    d->scrapers++;
    if (uv_accept(server, (uv_stream_t *)&s->tcp) < 0 || d->scrapers > MAX_SCRAPERS) {
        uv_close((uv_handle_t *)&s->tcp, scrape_closed);
        return;
    }
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
}

int metrics_start(dbld_t *d, char *err, size_t errlen)
{
    const char *spec = d->cfg.metrics_listen;
    if (!spec[0])
        return 0;
    char host[64];
    int port = 0;
    /* config_validate() checked it: the same parse cannot fail here */
    if (config_parse_listen(spec, host, sizeof host, &port, err, errlen) < 0)
        return -1;
    struct sockaddr_storage sa;
    int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&sa);
    if (rc < 0)
        rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa);
    if (rc == 0) {
        uv_tcp_init(d->loop, &d->metrics);
        d->metrics.data = d;
        rc = uv_tcp_bind(&d->metrics, (struct sockaddr *)&sa, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&d->metrics, 16, on_connection);
        if (rc < 0)
            uv_close((uv_handle_t *)&d->metrics, NULL);
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot serve metrics on %s: %s", spec, uv_strerror(rc));
        return -1;
    }
    d->metrics_on = true;
    /* Port 0 asks for any free port: say which one we got. */
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    char ip[64] = "";
    if (uv_tcp_getsockname(&d->metrics, (struct sockaddr *)&bound, &blen) == 0) {
        int bport = 0;
        if (bound.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&bound, ip, sizeof ip);
            bport = ntohs(((struct sockaddr_in *)&bound)->sin_port);
        } else {
            uv_ip6_name((struct sockaddr_in6 *)&bound, ip, sizeof ip);
            bport = ntohs(((struct sockaddr_in6 *)&bound)->sin6_port);
        }
        snprintf(d->metrics_addr, sizeof d->metrics_addr, "%s:%d", ip, bport);
    }
    log_info("metrics", "Prometheus metrics on http://%s/metrics", d->metrics_addr);
    return 0;
}

void metrics_stop(dbld_t *d)
{
    if (!d->metrics_on)
        return;
    d->metrics_on = false;
    uv_close((uv_handle_t *)&d->metrics, NULL);
}
