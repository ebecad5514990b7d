/* Where the daemon listens when nobody says otherwise. Shared so that the
 * daemon, the library and the CLI can never disagree. Reads the environment
 * only; it neither creates nor checks anything on disk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbl_proto.h"

/* Unset and empty mean the same: `VAR= cmd` is how shells clear a variable. */
static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

const char *dbl_default_socket_path(char *buf, size_t len, unsigned uid)
{
    const char *explicit_path = env("DBLEASE_SOCKET");
    const char *xdg = env("XDG_RUNTIME_DIR");
    int n;

    if (!buf || len == 0)
        return NULL;
    /* The XDG spec says to ignore a relative XDG_RUNTIME_DIR. */
    if (xdg && xdg[0] != '/')
        xdg = NULL;

    if (explicit_path)
        n = snprintf(buf, len, "%s", explicit_path);
    else if (xdg)
        n = snprintf(buf, len, "%s/dblease/dblease.sock", xdg);
    else if (uid == 0)
        n = snprintf(buf, len, "/run/dblease/dblease.sock");
    else
        n = snprintf(buf, len, "/tmp/dblease-%u/dblease.sock", uid);

    if (n < 0 || (size_t)n >= len) {
        buf[0] = '\0'; /* a truncated path must not look usable */
        return NULL;
    }
    return buf;
}

const char *dbl_default_state_dir(char *buf, size_t len, const char *socket_path, unsigned uid,
                                  const char *tmpfs)
{
    char fallback[64];
    const char *slash = strrchr(socket_path, '/');
    int n;

    if (!buf || len == 0)
        return NULL;
    snprintf(fallback, sizeof(fallback), "/tmp/dblease-%u/dblease.sock", uid);
    /* The other defaults are tmpfs already ($XDG_RUNTIME_DIR, /run); one
     * named by the user is where the user wants it. */
    if (tmpfs && strcmp(socket_path, fallback) == 0)
        n = snprintf(buf, len, "%s/dblease-%u/state", tmpfs, uid);
    else if (slash)
        n = snprintf(buf, len, "%.*s/state", (int)(slash - socket_path), socket_path);
    else
        n = snprintf(buf, len, "./state");
    if (n < 0 || (size_t)n >= len) {
        buf[0] = '\0';
        return NULL;
    }
    return buf;
}
