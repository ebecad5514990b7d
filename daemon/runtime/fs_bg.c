#include "fs_bg.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

typedef struct rm_job {
    uv_work_t req;
    int err;
    char path[];
} rm_job_t;

static void rm_work(uv_work_t *req)
{
    rm_job_t *j = req->data;
    j->err = util_rm_rf(j->path);
}

static void rm_after(uv_work_t *req, int status)
{
    rm_job_t *j = req->data;
    if (j->err < 0)
        log_warn("fs", "cannot remove %s: %s", j->path, strerror(-j->err));
    (void)status;
    free(j);
}

void fs_bg_rm_rf(uv_loop_t *loop, const char *path)
{
    size_t len = strlen(path) + 1;
    rm_job_t *j = malloc(sizeof *j + len);
    if (!j) {
        log_error("fs", "out of memory; %s is left behind", path);
        return;
    }
    memcpy(j->path, path, len);
    j->err = 0;
    j->req.data = j;
    if (uv_queue_work(loop, &j->req, rm_work, rm_after) < 0) {
        log_error("fs", "cannot queue the removal of %s", path);
        free(j);
    }
}
