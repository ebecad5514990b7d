/* Who the database servers run as. PostgreSQL refuses to run as root, so a
 * root daemon hands its servers to an unprivileged user. */
#ifndef DBL_RUNAS_H
#define DBL_RUNAS_H

#include <stddef.h>

#include "dbld.h"

/* Fill d->run_uid/run_gid/run_user from [daemon] run_as (default: the
 * dedicated user "dblease"; never a fallback to a shared user such as
 * nobody, which only an explicit run_as names); the daemon's own user when
 * not root. 0, or -1 with a message saying how to create the user. */
int runas_resolve(dbld_t *d, char *err, size_t errlen);
/* Can run_as traverse every existing directory of path? 0, or -1 with a
 * message saying what to chmod. */
int runas_check_dir(const dbld_t *d, const char *path, char *err, size_t errlen);

/* Choose d->server_root (where server data dirs live) and default the cache
 * dir under it. The state dir when run_as can reach it, else a private dir
 * in /dev/shm (or /tmp) named after the state dir. */
int runas_pick_server_root(dbld_t *d, char *err, size_t errlen);

#endif
