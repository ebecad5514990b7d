/* A dead server's last words: what it said before it died, for our own
 * log and the leases' instance_down, and its log kept (a bounded number
 * of them) where the next start, which reuses its dir, cannot remove it. */
#ifndef DBL_RT_LOGS_H
#define DBL_RT_LOGS_H

#include <stddef.h>

/* The lines that matter (PostgreSQL's PANIC and FATAL, Redis's crash
 * report, a failed allocation or assertion; a full disk) from the end of
 * dir/server.log into out, "" when there are none; a full disk says
 * ENOSPC first. dir is the instance's dir (run_as's: read without
 * following a link, at most the last 16 KiB). */
void rt_log_evidence(const char *dir, char *out, size_t len);

/* The name a dead server's log is kept under: "<unix time>-<server>.log". */
void rt_log_name(char *out, size_t len, const char *server);

/* Move dir/server.log to logs/name (logs: a dir of ours, made 0700 if
 * missing; across file systems, copy its last MiB), then remove the oldest *.log in logs beyond
 * keep. 0 or -errno. Blocks: for the thread pool. */
int rt_keep_log(const char *dir, const char *logs, const char *name, int keep);

#endif
