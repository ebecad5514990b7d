/* Telling systemd (Type=notify) and a waiting parent how we are: READY once
 * the first pool can serve, STATUS= with the counts, RELOADING/STOPPING.
 * All of it is a no-op without NOTIFY_SOCKET. */
#ifndef DBL_NOTIFY_H
#define DBL_NOTIFY_H

#include "dbld.h"

/* Each janitor tick: READY=1 the first time a database is ready, and a
 * STATUS= line when the counts changed. */
void notify_tick(dbld_t *d);
void notify_reloading(dbld_t *d);
void notify_reloaded(dbld_t *d);
void notify_stopping(dbld_t *d);

#endif
