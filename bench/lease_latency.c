/* Warm-lease latency through libdblease: time lease and release calls while
 * the pool has ready databases. Batches of B leases are taken (each timed),
 * released clean, and the pool is given time to rotate them back to ready
 * before the next batch, so every timed lease is a warm one.
 *
 * usage: lease_latency [-s SOCKET] [-n ITERATIONS] [-b BATCH] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dblease.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *what, double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    printf("%-8s n=%d  p50=%.0f us  p99=%.0f us  max=%.0f us\n", what, n, v[n / 2],
           v[(int)(n * 0.99)], v[n - 1]);
}

/* Wait until the pool reports at least `want` ready databases. */
static void wait_ready(dbl_ctx_t *c, int want)
{
    for (int tries = 0; tries < 5000; tries++) {
        char *js = NULL;
        if (dbl_status(c, &js) == 0) {
            const char *p = strstr(js, "\"ready\":");
            int ready = p ? atoi(p + 8) : 0;
            free(js);
            if (ready >= want)
                return;
        }
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    dbl_options_t o = {0};
    int n = 300, batch = 8, opt;
    while ((opt = getopt(argc, argv, "s:n:b:")) != -1) {
        if (opt == 's')
            o.socket_path = optarg;
        else if (opt == 'n')
            n = atoi(optarg);
        else if (opt == 'b')
            batch = atoi(optarg);
        else
            return 2;
    }
    if (n <= 0 || batch <= 0)
        return 2;
    dbl_ctx_t *c = dbl_connect(&o);
    if (!c || c->err) {
        fprintf(stderr, "lease_latency: %s\n", c ? c->errstr : "out of memory");
        return 69;
    }
    double *lease_us = calloc((size_t)n, sizeof *lease_us);
    double *release_us = calloc((size_t)n, sizeof *release_us);
    dbl_lease_t **held = calloc((size_t)batch, sizeof *held);
    int done = 0, rc = 0;
    while (done < n && rc == 0) {
        int k = batch < n - done ? batch : n - done;
        wait_ready(c, k);
        for (int j = 0; j < k; j++) {
            dbl_lease_opts_t lo = {.wait_ms = 10000};
            double t0 = now_us();
            if (dbl_lease(c, &lo, &held[j]) < 0) {
                fprintf(stderr, "lease_latency: %s\n", c->errstr);
                rc = 1;
                k = j;
                break;
            }
            lease_us[done + j] = now_us() - t0;
        }
        for (int j = 0; j < k; j++) {
            double t0 = now_us();
            if (dbl_release(c, held[j]->id, true) < 0)
                rc = 1;
            release_us[done + j] = now_us() - t0;
            dbl_lease_free(held[j]);
        }
        done += k;
    }
    if (rc == 0) {
        report("lease", lease_us, n);
        report("release", release_us, n);
    }
    free(lease_us);
    free(release_us);
    free(held);
    dbl_free(c);
    return rc;
}
