#include "rt_disk.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

int rt_disk_check(const dbld_t *d, char *msg, size_t len)
{
    if (d->cfg.disk_reserve_mb <= 0 || strcmp(d->cfg.postgres.runtime, "process") != 0)
        return 0;
    struct statvfs st;
    if (statvfs(d->server_root, &st) < 0)
        return 0; /* cannot tell: the clone itself will say */
    uint64_t free_mb = (uint64_t)st.f_bavail * st.f_frsize >> 20;
    if (free_mb >= (uint64_t)d->cfg.disk_reserve_mb)
        return 0;
    snprintf(msg, len,
             "the disk of %s has %llu MiB free, under the reserve of %d MiB "
             "([daemon] disk_reserve_mb), so no new database is cloned; release leases, free "
             "space there, or lower the reserve",
             d->server_root, (unsigned long long)free_mb, d->cfg.disk_reserve_mb);
    return -ENOSPC;
}
