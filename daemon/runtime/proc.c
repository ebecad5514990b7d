#include "proc.h"

#include <errno.h>
#include <fcntl.h>
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
    int fd = open(o->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0 || (fchown(fd, d->run_uid, d->run_gid) < 0 && errno != EPERM)) {
        int e = -errno;
        if (fd >= 0)
            close(fd);
        return e;
    }
    /* Servers go through our own binary (still as us, so it may sit
     * anywhere), which switches user, sets PR_SET_PDEATHSIG and execs. */
    char ppid[16], uid[16], gid[16];
    char *wrapped[64];
    char **argv = args;
    if (o->mode == PROC_SERVER) {
        snprintf(ppid, sizeof ppid, "%d", (int)getpid());
        snprintf(uid, sizeof uid, "%u", (unsigned)d->run_uid);
        snprintf(gid, sizeof gid, "%u", (unsigned)d->run_gid);
        char *head[] = {d->self_exe, "--exec-child", ppid, uid, gid};
        size_t n = 0;
        for (size_t k = 0; k < 5; k++)
            wrapped[n++] = head[k];
        for (char **a = args; *a && n < 63; a++)
            wrapped[n++] = *a;
        wrapped[n] = NULL;
        argv = wrapped;
    }
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = fd},
        {.flags = UV_INHERIT_FD, .data.fd = fd},
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
    if (o->mode == PROC_AS_SERVER && d->uid == 0) {
        po.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
        po.uid = d->run_uid;
        po.gid = d->run_gid;
    }
    proc_handle_t *ph = calloc(1, sizeof *ph);
    if (!ph) {
        close(fd);
        return -ENOMEM;
    }
    ph->p.data = o->data;
    int rc = uv_spawn(d->loop, &ph->p, &po);
    close(fd);
    if (rc < 0) {
        /* libuv leaves a failed handle initialised: it must be closed. */
        proc_close(&ph->p, NULL);
        return rc;
    }
    *out = &ph->p;
    return 0;
}
