/* The process runtime for PostgreSQL: servers are child processes of the
 * daemon, from the binaries installed on this machine. An initialised data
 * dir is cached in the state dir and copied, so initdb runs once. */
#ifndef DBL_RT_PROCESS_H
#define DBL_RT_PROCESS_H

#include <stddef.h>

#include "inst.h"
#include "pg_settings.h"

/* Find initdb and postgres: the configured dir, then `pg_config --bindir`,
 * then the newest /usr/lib/postgresql/N/bin, then PATH. */
int rt_pg_find_bins(const char *configured, char *out, size_t outlen, int *major, char *err,
                    size_t errlen);
/* Prepare (cache, copy, configure) and spawn; reports inst_spawned() or
 * inst_start_failed(), later inst_exited(). */
void rt_pg_start(inst_t *i);
/* Ask the server to stop: fast shutdown now, SIGKILL if it lingers. */
void rt_pg_stop(inst_t *i, bool force);
/* Remove what a previous daemon on this state dir left: kill servers whose
 * postmaster.pid names a live postgres, then delete their dirs. */
void rt_pg_cleanup_leftovers(const char *server_root, uid_t uid);
/* Re-exec entry: `dbleased --exec-child PPID UID GID LOG PROG ARGS…`
 * switches to UID/GID, ties PROG's life to the daemon (PR_SET_PDEATHSIG),
 * appends its output to LOG (opened as UID, never through a link) and
 * execs it.
 * Never returns on success. */
int rt_exec_child(int argc, char **argv);

#endif
