/* Prometheus text exposition on an optional loopback listener
 * ([daemon] metrics_listen = 127.0.0.1:9187): lease latency histograms,
 * per-pool gauges, counters. The HTTP is the minimum a scraper needs
 * (GET /metrics, one response, close), which no library here serves. */
#ifndef DBL_METRICS_H
#define DBL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "dbld.h"

/* Start the listener if configured. 0, or -1 with a message. */
int metrics_start(dbld_t *d, char *err, size_t errlen);
void metrics_stop(dbld_t *d);
/* A lease was granted start_ns (uv_hrtime) after its request arrived. */
void metrics_lease_latency(dbld_t *d, const char *kind, uint64_t start_ns);
/* The exposition text, malloc'd (for the endpoint and for tests). */
char *metrics_render(dbld_t *d);

#endif
