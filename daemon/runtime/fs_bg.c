#include "fs_bg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "rt_logs.h"
#include "util.h"

typedef struct rm_job {
    uv_work_t req;
    int err, keep_err;
    int keep;          /* logs kept in logs/, when logs[0] */
    char name[128];    /* what the log is kept as */
    char logs[CFG_PATH];
    char path[CFG_PATH];
} rm_job_t;

static void rm_work(uv_work_t *req)
{
    rm_job_t *j = req->data;
    if (j->logs[0])
        j->keep_err = rt_keep_log(j->path, j->logs, j->name, j->keep);
    j->err = util_rm_rf(j->path);
}

static void rm_after(uv_work_t *req, int status)
{
    rm_job_t *j = req->data;
    if (j->keep_err < 0)
        log_warn("fs", "cannot keep %s/server.log in %s: %s", j->path, j->logs,
                 strerror(-j->keep_err));
    if (j->err < 0)
        log_warn("fs", "cannot remove %s: %s", j->path, strerror(-j->err));
    (void)status;
    free(j);
}

static void queue(uv_loop_t *loop, const char *path, const char *logs, const char *name, int keep)
{
    rm_job_t *j = calloc(1, sizeof *j);
    if (!j) {
        log_error("fs", "out of memory; %s is left behind", path);
        return;
    }
    snprintf(j->path, sizeof j->path, "%s", path);
    snprintf(j->logs, sizeof j->logs, "%s", logs ? logs : "");
    snprintf(j->name, sizeof j->name, "%s", name ? name : "");
    j->keep = keep;
    j->req.data = j;
    if (uv_queue_work(loop, &j->req, rm_work, rm_after) < 0) {
        log_error("fs", "cannot queue the removal of %s", path);
        free(j);
    }
}

void fs_bg_rm_rf(uv_loop_t *loop, const char *path)
{
    queue(loop, path, NULL, NULL, 0);
}

void fs_bg_keep_log_rm_rf(uv_loop_t *loop, const char *path, const char *logs, const char *name,
                          int keep)
{
    queue(loop, path, logs, name, keep);
}
