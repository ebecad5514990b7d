/* A latency histogram's counts (metrics.c fills and renders it). */
#ifndef DBL_LAT_HIST_H
#define DBL_LAT_HIST_H

#include <stdint.h>

#define METRICS_BUCKETS 12

typedef struct lat_hist {
    uint64_t buckets[METRICS_BUCKETS]; /* cumulative: observations at or below each bound */
    uint64_t count;
    double sum_s;
} lat_hist_t;

#endif
