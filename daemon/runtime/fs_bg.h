/* File work that can take long (a directory tree of unknown size) done in
 * libuv's thread pool, so the loop keeps serving while it runs. */
#ifndef DBL_FS_BG_H
#define DBL_FS_BG_H

#include <uv.h>

/* Remove a directory tree in the background; failures are logged. The
 * path is copied. Callers must not reuse the path for something new
 * (server dirs carry a per-run serial, so none does). */
void fs_bg_rm_rf(uv_loop_t *loop, const char *path);
/* The same, after keeping path/server.log as logs/name (rt_keep_log: the
 * newest keep of them stay): a server that died leaves its evidence. */
void fs_bg_keep_log_rm_rf(uv_loop_t *loop, const char *path, const char *logs, const char *name,
                          int keep);

#endif
