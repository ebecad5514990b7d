#include "proc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct proc_handle {
    uv_process_t p; /* first: the uv handle is the allocation */
    void (*closed)(void *data);
    void *data;
} proc_handle_t;

static void on_closed(uv_handle_t *h)
{
    proc_handle_t *ph = (proc_handle_t *)h;
    void (*cb)(void *) = ph->closed;
    void *data = ph->data;
    free(ph);
    if (cb)
        cb(data);
}

void proc_close(uv_process_t *p, void (*cb)(void *data))
{
    proc_handle_t *ph = (proc_handle_t *)p;
    ph->closed = cb;
    ph->data = p->data;
    uv_close((uv_handle_t *)p, on_closed);
}

int proc_spawn(dbld_t *d, const proc_opts_t *o, char **args, uv_process_t **out)
{
    /* Everything goes through our own binary (still as us, so it may sit
     * anywhere), which switches to run_as, opens the log as that user (the
     * log sits in a directory that user owns: root never opens it), sets
     * PR_SET_PDEATHSIG and execs. */
    char ppid[16], uid[16], gid[16];
    char *argv[64];
    snprintf(ppid, sizeof ppid, "%d", (int)getpid());
    snprintf(uid, sizeof uid, "%u", (unsigned)d->run_uid);
    snprintf(gid, sizeof gid, "%u", (unsigned)d->run_gid);
    char *head[] = {d->self_exe, "--exec-child", ppid, uid, gid, (char *)o->log_path};
    size_t n = 0;
    for (size_t k = 0; k < sizeof head / sizeof head[0]; k++)
        argv[n++] = head[k];
    for (char **a = args; *a && n < 63; a++)
        argv[n++] = *a;
    argv[n] = NULL;
    /* stderr is ours until the wrapper has the log: its own errors land in
     * the daemon's log. */
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
    };
    char *env[] = {"LC_ALL=C", "PATH=/usr/local/bin:/usr/bin:/bin", NULL};
    uv_process_options_t po = {
        .exit_cb = o->exit_cb,
        .file = argv[0],
        .args = argv,
        .env = env,
        .cwd = o->cwd,
        .stdio_count = 3,
        .stdio = stdio,
        /* Own process group, so stopping it reaches its children too. */
        .flags = UV_PROCESS_DETACHED,
    };
    proc_handle_t *ph = calloc(1, sizeof *ph);
    if (!ph)
        return -ENOMEM;
    ph->p.data = o->data;
    int rc = uv_spawn(d->loop, &ph->p, &po);
    if (rc < 0) {
        /* libuv leaves a failed handle initialised: it must be closed. */
        proc_close(&ph->p, NULL);
        return rc;
    }
    *out = &ph->p;
    return 0;
}
