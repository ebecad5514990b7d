/* Spawning the processes the runtimes run (servers, initdb, cp): each as
 * the unprivileged run_as user, in its own process group, tied to our life
 * (a parent-death signal), output appended to a log file that the child
 * opens after it switched user, all through our --exec-child wrapper. */
#ifndef DBL_PROC_H
#define DBL_PROC_H

#include <stdbool.h>
#include <uv.h>

#include "dbld.h"

typedef struct proc_opts {
    const char *cwd;
    const char *log_path; /* stdout and stderr, appended */
    uv_exit_cb exit_cb;
    void *data; /* the handle's data */
} proc_opts_t;

/* Spawn args (NULL-terminated). The handle is allocated here; close it with
 * proc_close() (from the exit callback), which frees it. 0 or -errno. */
int proc_spawn(dbld_t *d, const proc_opts_t *o, char **args, uv_process_t **out);
/* Close and free a process handle; then cb(data) if cb is set. */
void proc_close(uv_process_t *p, void (*cb)(void *data));

#endif
