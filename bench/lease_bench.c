/* Warm-lease latency and pool refill rate against a running dbleased.
 *
 *   lease_bench latency [-s SOCK] [-k postgres|redis] [-m raw|lib] [-c CLIENTS] [-n ROUNDS]
 *   lease_bench fill|refill [-s SOCK] [-k KIND] [-t TEMPLATE]
 *
 * latency: CLIENTS threads, each with its own connection, each doing ROUNDS
 * lease + release(clean:true) round trips back to back (after a few untimed
 * warm-up rounds). Before the timed part starts, the pool must report at
 * least CLIENTS ready databases, so the run begins warm; clean releases
 * rotate databases back without a re-clone. Percentiles are taken over all
 * samples of all threads. Mode raw speaks the NDJSON protocol over a plain
 * Unix socket (proto/ for framing and parsing); mode lib uses libdblease.
 *
 * fill: run right after the daemon starts; times how long the pool takes to
 * reach min_ready (clones alone). refill: with the pool full, leases all
 * min_ready databases, releases them without clean (drop + re-clone), and
 * times how long until the pool is full again: drops and clones.
 *
 * Prints one JSON object on stdout. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dbl_proto.h"
#include "dblease.h"

#define WARMUP_ROUNDS 5

static const char *sock_path;
static const char *kind = "postgres";
static const char *template_name = "default"; /* -t: a [template.X] pool */

/* NULL for the default pool, else the -t template. */
static const char *lease_template(void)
{
    return strcmp(template_name, "default") == 0 ? NULL : template_name;
}
static int raw_mode = 1;
static int rounds = 1000;
static int clients = 1;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)n);
    return v[i >= n ? n - 1 : i];
}

/* ---- raw protocol client --------------------------------------------- */

typedef struct raw {
    int fd;
    dbl_decoder_t dec;
    int next_id;
} raw_t;

static int raw_open(raw_t *r)
{
    r->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_path);
    if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&a, sizeof a) < 0)
        return -1;
    dbl_decoder_init(&r->dec, DBL_PROTO_MAX_LINE);
    r->next_id = 1;
    return 0;
}

static void raw_close(raw_t *r)
{
    close(r->fd);
    dbl_decoder_free(&r->dec);
}

/* Send one request line and read until its reply (events are skipped).
 * Returns 0 with *out parsed (caller frees), -1 on I/O or protocol error. */
static int raw_call(raw_t *r, const char *line, size_t len, dbl_reply_t *out)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(r->fd, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    for (;;) {
        const char *l;
        size_t ll;
        int got = dbl_decoder_next(&r->dec, &l, &ll);
        if (got < 0)
            return -1;
        if (got == 1) {
            if (dbl_reply_parse(l, ll, out) < 0)
                return -1;
            if (out->is_event) {
                dbl_reply_free(out);
                continue;
            }
            return 0;
        }
        char buf[8192];
        ssize_t n = read(r->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || dbl_decoder_feed(&r->dec, buf, (size_t)n) < 0)
            return -1;
    }
}

static int raw_lease(raw_t *r, char *id, size_t idlen)
{
    char line[256];
    int n = snprintf(line, sizeof line, "{\"id\":%d,\"op\":\"lease\",\"kind\":\"%s\",\"wait_ms\":30000}\n",
                     r->next_id++, kind);
    dbl_reply_t rep;
    if (raw_call(r, line, (size_t)n, &rep) < 0)
        return -1;
    int rc = -1;
    json_object *lease, *lid;
    if (rep.ok && json_object_object_get_ex(rep.root, "lease", &lease) &&
        json_object_object_get_ex(lease, "id", &lid)) {
        snprintf(id, idlen, "%s", json_object_get_string(lid));
        rc = 0;
    } else {
        fprintf(stderr, "lease_bench: lease failed: %s %s\n", rep.code_name ? rep.code_name : "",
                rep.message ? rep.message : "");
    }
    dbl_reply_free(&rep);
    return rc;
}

static int raw_release(raw_t *r, const char *id, int clean)
{
    char line[256];
    int n = snprintf(line, sizeof line, "{\"id\":%d,\"op\":\"release\",\"lease\":\"%s\",\"clean\":%s}\n",
                     r->next_id++, id, clean ? "true" : "false");
    dbl_reply_t rep;
    if (raw_call(r, line, (size_t)n, &rep) < 0)
        return -1;
    int rc = rep.ok ? 0 : -1;
    dbl_reply_free(&rep);
    return rc;
}

/* ---- pool status ------------------------------------------------------ */

typedef struct pool_st {
    int ready, leased, resetting, creating, min_ready;
} pool_st_t;

/* The pool of `kind` and template_name; -1 on error or when it is not there yet. */
static int pool_status(dbl_ctx_t *c, const char *k, pool_st_t *out)
{
    char *js = NULL;
    if (dbl_status(c, &js) < 0)
        return -1;
    int rc = -1;
    json_object *root = json_tokener_parse(js), *pools;
    if (root && json_object_object_get_ex(root, "pools", &pools)) {
        for (size_t i = 0; i < json_object_array_length(pools); i++) {
            json_object *p = json_object_array_get_idx(pools, i), *pk, *pt, *v;
            if (!json_object_object_get_ex(p, "kind", &pk) ||
                !json_object_object_get_ex(p, "template", &pt) ||
                strcmp(json_object_get_string(pk), k) != 0 ||
                strcmp(json_object_get_string(pt), template_name) != 0)
                continue;
#define GET(f) out->f = json_object_object_get_ex(p, #f, &v) ? json_object_get_int(v) : 0
            GET(ready);
            GET(leased);
            GET(resetting);
            GET(creating);
            GET(min_ready);
#undef GET
            rc = 0;
        }
    }
    json_object_put(root);
    free(js);
    return rc;
}

/* Wait up to timeout_ms for at least want ready (and, when settled, nothing
 * being created or reset); 0 when reached. */
static int wait_pool(dbl_ctx_t *c, const char *k, int want, int settled, int timeout_ms)
{
    double end = now_us() + timeout_ms * 1000.0;
    while (now_us() < end) {
        pool_st_t st;
        if (pool_status(c, k, &st) == 0 && st.ready >= want &&
            (!settled || (st.creating == 0 && st.resetting == 0)))
            return 0;
        sleep_ms(1);
    }
    return -1;
}

static int wait_ready(dbl_ctx_t *c, const char *k, int want, int timeout_ms)
{
    return wait_pool(c, k, want, 0, timeout_ms);
}

/* ---- latency ---------------------------------------------------------- */

typedef struct worker {
    pthread_t t;
    int idx;
    double *rt, *lease; /* round trip and lease-only samples, rounds each */
    int failed;
} worker_t;

static pthread_barrier_t ready_barrier, go_barrier;
static atomic_int setup_failed;

static int one_round(raw_t *r, dbl_ctx_t *c, double *rt, double *ls)
{
    double t0 = now_us(), t1;
    if (raw_mode) {
        char id[64];
        if (raw_lease(r, id, sizeof id) < 0)
            return -1;
        t1 = now_us();
        if (raw_release(r, id, 1) < 0)
            return -1;
    } else {
        dbl_lease_t *l;
        dbl_lease_opts_t o = {.kind = kind, .wait_ms = 30000};
        if (dbl_lease(c, &o, &l) < 0) {
            fprintf(stderr, "lease_bench: %s\n", c->errstr);
            return -1;
        }
        t1 = now_us();
        int rc = dbl_release(c, l->id, true);
        dbl_lease_free(l);
        if (rc < 0)
            return -1;
    }
    double t2 = now_us();
    if (rt)
        *rt = t2 - t0;
    if (ls)
        *ls = t1 - t0;
    return 0;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    raw_t r = {.fd = -1};
    dbl_ctx_t *c = NULL;
    char name[32];
    snprintf(name, sizeof name, "lease_bench %d", w->idx);
    if (raw_mode) {
        if (raw_open(&r) < 0) {
            perror("lease_bench: connect");
            atomic_store(&setup_failed, 1);
        }
    } else {
        c = dbl_connect(&(dbl_options_t){.socket_path = sock_path, .client_name = name});
        if (!c || c->err) {
            fprintf(stderr, "lease_bench: %s\n", c ? c->errstr : "oom");
            atomic_store(&setup_failed, 1);
        }
    }
    for (int i = 0; i < WARMUP_ROUNDS && !atomic_load(&setup_failed); i++)
        if (one_round(&r, c, NULL, NULL) < 0)
            atomic_store(&setup_failed, 1);
    pthread_barrier_wait(&ready_barrier); /* main waits for a warm pool */
    pthread_barrier_wait(&go_barrier);
    for (int i = 0; i < rounds && !atomic_load(&setup_failed); i++) {
        if (one_round(&r, c, &w->rt[i], &w->lease[i]) < 0) {
            w->failed = 1;
            break;
        }
    }
    if (raw_mode && r.fd >= 0)
        raw_close(&r);
    dbl_free(c);
    return NULL;
}

static void print_pcts(const char *key, double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    printf("\"%s\":{\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f}",
           key, pct(v, n, 0.50), pct(v, n, 0.99), pct(v, n, 0.999), v[n - 1], sum / (double)n);
}

static int run_latency(void)
{
    dbl_ctx_t *c = dbl_connect(&(dbl_options_t){.socket_path = sock_path, .client_name = "lease_bench"});
    if (!c || c->err) {
        fprintf(stderr, "lease_bench: %s\n", c ? c->errstr : "oom");
        return 69;
    }
    worker_t *w = calloc((size_t)clients, sizeof *w);
    pthread_barrier_init(&ready_barrier, NULL, (unsigned)clients + 1);
    pthread_barrier_init(&go_barrier, NULL, (unsigned)clients + 1);
    for (int i = 0; i < clients; i++) {
        w[i].idx = i;
        w[i].rt = calloc((size_t)rounds, sizeof(double));
        w[i].lease = calloc((size_t)rounds, sizeof(double));
        pthread_create(&w[i].t, NULL, worker_main, &w[i]);
    }
    pthread_barrier_wait(&ready_barrier);
    int warm = wait_ready(c, kind, clients, 60000);
    if (warm < 0)
        fprintf(stderr, "lease_bench: pool never had %d ready; measuring anyway\n", clients);
    double t0 = now_us();
    pthread_barrier_wait(&go_barrier);
    int failed = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(w[i].t, NULL);
        failed |= w[i].failed;
    }
    double wall = now_us() - t0;
    dbl_free(c);
    if (failed || atomic_load(&setup_failed)) {
        fprintf(stderr, "lease_bench: a worker failed\n");
        return 1;
    }
    size_t n = (size_t)clients * (size_t)rounds;
    double *rt = malloc(n * sizeof *rt), *ls = malloc(n * sizeof *ls);
    for (int i = 0; i < clients; i++) {
        memcpy(rt + (size_t)i * rounds, w[i].rt, (size_t)rounds * sizeof(double));
        memcpy(ls + (size_t)i * rounds, w[i].lease, (size_t)rounds * sizeof(double));
        free(w[i].rt);
        free(w[i].lease);
    }
    printf("{\"bench\":\"lease_latency\",\"kind\":\"%s\",\"mode\":\"%s\",\"clients\":%d,"
           "\"samples\":%zu,\"started_warm\":%s,\"wall_s\":%.3f,\"round_trips_per_s\":%.0f,",
           kind, raw_mode ? "raw" : "lib", clients, n, warm == 0 ? "true" : "false", wall / 1e6,
           (double)n / (wall / 1e6));
    print_pcts("lease_release", rt, n);
    printf(",");
    print_pcts("lease", ls, n);
    printf("}\n");
    free(rt);
    free(ls);
    free(w);
    return 0;
}

/* ---- refill ----------------------------------------------------------- */

/* fill: right after the daemon started (it returns with one database
 * ready), time until the pool holds min_ready: creation alone.
 * refill: with the pool full and settled, lease all min_ready databases,
 * release them all without clean, and time until the pool is full and
 * settled again: min_ready drops plus min_ready clones. */
static int run_refill(int fill)
{
    double t_start = now_us();
    dbl_ctx_t *c = dbl_connect(&(dbl_options_t){.socket_path = sock_path, .client_name = "lease_bench refill"});
    if (!c || c->err) {
        fprintf(stderr, "lease_bench: %s\n", c ? c->errstr : "oom");
        return 69;
    }
    pool_st_t st;
    if (pool_status(c, kind, &st) < 0) {
        fprintf(stderr, "lease_bench: no %s pool\n", kind);
        return 1;
    }
    int count = st.min_ready;
    if (fill) {
        int ready0 = st.ready;
        if (wait_pool(c, kind, count, 1, 300000) < 0) {
            fprintf(stderr, "lease_bench: pool never reached %d ready\n", count);
            return 1;
        }
        double t = (now_us() - t_start) / 1e6;
        printf("{\"bench\":\"fill\",\"kind\":\"%s\",\"databases\":%d,\"seconds\":%.3f,"
               "\"per_s\":%.1f}\n",
               kind, count - ready0, t, (count - ready0) / t);
        dbl_free(c);
        return 0;
    }
    if (wait_pool(c, kind, count, 1, 300000) < 0) {
        fprintf(stderr, "lease_bench: pool never settled at %d ready\n", count);
        return 1;
    }
    dbl_lease_t **held = calloc((size_t)count, sizeof *held);
    double t0 = now_us();
    for (int i = 0; i < count; i++) {
        if (dbl_lease(c,
                      &(dbl_lease_opts_t){
                          .kind = kind, .template_name = lease_template(), .wait_ms = 30000},
                      &held[i]) < 0) {
            fprintf(stderr, "lease_bench: %s\n", c->errstr);
            return 1;
        }
    }
    for (int i = 0; i < count; i++) {
        if (dbl_release(c, held[i]->id, false) < 0) {
            fprintf(stderr, "lease_bench: %s\n", c->errstr);
            return 1;
        }
        dbl_lease_free(held[i]);
    }
    int rc = wait_pool(c, kind, count, 1, 300000);
    double t = (now_us() - t0) / 1e6;
    if (rc < 0) {
        fprintf(stderr, "lease_bench: pool did not refill\n");
        return 1;
    }
    printf("{\"bench\":\"refill\",\"kind\":\"%s\",\"databases\":%d,\"seconds\":%.3f,"
           "\"per_s\":%.1f}\n",
           kind, count, t, count / t);
    free(held);
    dbl_free(c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(
            stderr,
            "usage: lease_bench latency|fill|refill [-s SOCK] [-k KIND] [-t TEMPLATE] [-m raw|lib] "
            "[-c CLIENTS] [-n ROUNDS]\n");
        return 2;
    }
    const char *what = argv[1];
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "s:k:t:m:c:n:")) != -1) {
        switch (opt) {
        case 's': sock_path = optarg; break;
        case 'k': kind = optarg; break;
        case 't': template_name = optarg; break;
        case 'm': raw_mode = strcmp(optarg, "lib") != 0; break;
        case 'c': clients = atoi(optarg); break;
        case 'n': rounds = atoi(optarg); break;
        default: return 2;
        }
    }
    static char defsock[256];
    if (!sock_path)
        sock_path = dbl_default_socket_path(defsock, sizeof defsock, (unsigned)getuid());
    if (clients <= 0 || rounds <= 0)
        return 2;
    if (strcmp(what, "latency") == 0)
        return run_latency();
    if (strcmp(what, "refill") == 0 || strcmp(what, "fill") == 0)
        return run_refill(strcmp(what, "fill") == 0);
    fprintf(stderr, "lease_bench: unknown mode %s\n", what);
    return 2;
}
