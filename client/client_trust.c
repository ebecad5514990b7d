/* libdblease: may we believe the process at the other end of the socket?
 *
 * A lease URL is a secret the client hands to its tests, and a daemon is
 * trusted to give out databases nobody else can read. Another local user
 * who got to the socket path first (say by creating /tmp/dblease-$UID before
 * our daemon did) could serve fake leases or collect what we write. So,
 * before hello, the client checks who it is talking to:
 *
 * 1. The daemon (SO_PEERCRED) runs as us or as root: trusted, wherever
 *    the socket is, since nobody else can run a process as either.
 * 2. Otherwise (a team's daemon running as its own user) only at a socket
 *    the caller named (--socket, DBLEASE_SOCKET), and only when nobody but
 *    that user or root could have put the socket there: its directory
 *    belongs to root or to the daemon's user and is not writable by group
 *    or others, and the socket file belongs to root or to the daemon's user.
 * 3. At a default path (ours by convention, not by choice), the socket's
 *    directory must also belong to us or root and be writable by nobody
 *    else, even when the daemon is ours: whoever owns that directory can
 *    swap the socket at any time, so we say so now rather than trust it
 *    later. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_priv.h"

static bool writable_by_others(const struct stat *st)
{
    return (st->st_mode & (S_IWGRP | S_IWOTH)) != 0;
}

/* The directory the socket is really in (symlinks resolved: that is the
 * one connect() used) and the stat of it and of the socket. */
static int stat_socket(dbl_ctx_t *ctx, const char *path, char *dir, size_t dirlen,
                       struct stat *dir_st, struct stat *sock_st)
{
    char real[PATH_MAX];

    if (!realpath(path, real) || stat(real, sock_st) < 0) {
        dbl__set_err(ctx, DBL_ERR_UNTRUSTED, "cannot check who owns %s: %s; check DBLEASE_SOCKET",
                     path, strerror(errno));
        return -1;
    }
    snprintf(dir, dirlen, "%s", dirname(real));
    if (stat(dir, dir_st) < 0) {
        dbl__set_err(ctx, DBL_ERR_UNTRUSTED, "cannot check who owns %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Rule 3: the default path's directory is ours or root's alone. */
static int check_default_dir(dbl_ctx_t *ctx, const char *path, const char *dir,
                             const struct stat *st, uid_t me)
{
    if (st->st_uid != me && st->st_uid != 0) {
        dbl__set_err(
            ctx, DBL_ERR_UNTRUSTED,
            "refusing the daemon at %s: its directory %s belongs to uid %u, not to you or "
            "root, so another user may be posing as dbleased; remove the directory (or ask "
            "root to) and start dbleased again, or set DBLEASE_SOCKET",
            path, dir, (unsigned)st->st_uid);
        return -1;
    }
    if (writable_by_others(st)) {
        dbl__set_err(ctx, DBL_ERR_UNTRUSTED,
                     "refusing the daemon at %s: its directory %s is writable by group or others "
                     "(mode %04o), so another user could replace the socket; chmod go-w %s",
                     path, dir, (unsigned)(st->st_mode & 07777), dir);
        return -1;
    }
    return 0;
}

/* Rule 2: a daemon of another user, at a socket the caller chose. */
static int check_shared(dbl_ctx_t *ctx, const char *path, const char *dir,
                        const struct stat *dir_st, const struct stat *sock_st, uid_t peer)
{
    if (dir_st->st_uid != peer && dir_st->st_uid != 0) {
        dbl__set_err(ctx, DBL_ERR_UNTRUSTED,
                     "refusing the daemon at %s: it runs as uid %u, but its directory %s belongs "
                     "to uid %u; a shared dbleased must listen in a directory of its own user or "
                     "root",
                     path, (unsigned)peer, dir, (unsigned)dir_st->st_uid);
        return -1;
    }
    if (writable_by_others(dir_st)) {
        dbl__set_err(ctx, DBL_ERR_UNTRUSTED,
                     "refusing the daemon at %s: it runs as uid %u and its directory %s is "
                     "writable by group or others (mode %04o), so anyone could have put the socket "
                     "there; give it a directory only its user can write",
                     path, (unsigned)peer, dir, (unsigned)(dir_st->st_mode & 07777));
        return -1;
    }
    if (sock_st->st_uid != peer && sock_st->st_uid != 0) {
        dbl__set_err(
            ctx, DBL_ERR_UNTRUSTED,
            "refusing the daemon at %s: it runs as uid %u but the socket belongs to uid %u", path,
            (unsigned)peer, (unsigned)sock_st->st_uid);
        return -1;
    }
    return 0;
}

int dbl__check_peer(dbl_ctx_t *ctx, const char *path, bool chosen)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    struct stat dir_st, sock_st;
    char dir[PATH_MAX];
    uid_t me = geteuid(); /* what the daemon sees of us, and what it trusts */

    if (getsockopt(ctx->priv->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        dbl__set_err(ctx, DBL_ERR_UNTRUSTED, "cannot tell who serves %s: %s", path,
                     strerror(errno));
        return -1;
    }
    ctx->priv->peer_pid = cred.pid;
    ctx->priv->peer_uid = cred.uid;
    /* Rule 1 at a socket the caller named needs nothing from the disk (which
     * may change meanwhile: a daemon restarting). */
    if (chosen && (cred.uid == me || cred.uid == 0))
        return 0;
    if (stat_socket(ctx, path, dir, sizeof(dir), &dir_st, &sock_st) < 0)
        return -1;
    if (!chosen && check_default_dir(ctx, path, dir, &dir_st, me) < 0)
        return -1;
    if (cred.uid == me || cred.uid == 0)
        return 0;
    if (!chosen) {
        dbl__set_err(ctx, DBL_ERR_UNTRUSTED,
                     "refusing the daemon at %s: it runs as uid %u, not as you or root; if you "
                     "mean to use that user's dbleased, name its socket with DBLEASE_SOCKET",
                     path, (unsigned)cred.uid);
        return -1;
    }
    return check_shared(ctx, path, dir, &dir_st, &sock_st, cred.uid);
}
