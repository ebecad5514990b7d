/* The free-space reserve of the disk the servers' data lives on: below it
 * no new database is cloned, so one lease filling the disk does not take
 * the server (and every other lease on it) down with ENOSPC. */
#ifndef DBL_RT_DISK_H
#define DBL_RT_DISK_H

#include <stddef.h>

#include "dbld.h"

/* 0 when the servers' disk has at least [daemon] disk_reserve_mb free (or
 * the reserve is 0, or the servers are not ours to store); else -ENOSPC
 * with how much is free and what to do in msg. One statvfs: cheap enough
 * for the loop. */
int rt_disk_check(const dbld_t *d, char *msg, size_t len);

#endif
