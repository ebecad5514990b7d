/* SIGHUP: re-read the configuration file and apply what can change while
 * leases live: pool sizes, templates (added, removed, changed), limits,
 * log level. Keys that need a restart (socket, state dir, run_as, runtime,
 * bin_dir, metrics_listen) are reported, not applied. An invalid file is
 * reported and the running configuration kept. */
#ifndef DBL_RELOAD_H
#define DBL_RELOAD_H

#include "dbld.h"

void reload_config(dbld_t *d);

#endif
