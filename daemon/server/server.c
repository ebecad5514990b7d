#include "server.h"

#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "log.h"
#include "safefs.h"
#include "session.h"
#include "util.h"

static void on_connection(uv_stream_t *listener, int status)
{
    dbld_t *d = listener->data;
    if (status < 0) {
        log_warn("server", "accept failed: %s", uv_strerror(status));
        return;
    }
    sess_accept(d, listener);
}

/* Is a live daemon answering on path? */
static bool someone_listens(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    bool live = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return live;
}

/* Socket activation: systemd (or systemd-socket-activate) passes the
 * listening socket; its mode and group are the .socket unit's business. */
static int take_activated(dbld_t *d, char *err, size_t errlen)
{
    int n = sd_listen_fds(1);
    if (n <= 0)
        return 0;
    int fd = SD_LISTEN_FDS_START;
    if (n > 1 || sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
        snprintf(err, errlen,
                 "systemd passed %d sockets; dbleased takes exactly one listening Unix stream "
                 "socket (ListenStream=/path in the .socket unit)",
                 n);
        return -1;
    }
    uv_pipe_init(d->loop, &d->listener, 0);
    d->listener.data = d;
    int rc = uv_pipe_open(&d->listener, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&d->listener, 512, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "cannot use the socket systemd passed: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&d->listener, NULL);
        return -1;
    }
    struct sockaddr_un sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0 && sa.sun_path[0])
        snprintf(d->cfg.socket, sizeof d->cfg.socket, "%s", sa.sun_path);
    d->activated = true;
    d->listening = true;
    log_info("server", "listening on %s (passed by systemd)", d->cfg.socket);
    return 1;
}

int server_listen(dbld_t *d, char *err, size_t errlen)
{
    int taken = take_activated(d, err, errlen);
    if (taken != 0)
        return taken < 0 ? -1 : 0;
    const char *path = d->cfg.socket;
    char dir[sizeof d->cfg.socket];
    snprintf(dir, sizeof dir, "%s", path);
    struct group *sg = d->cfg.socket_group[0] ? getgrnam(d->cfg.socket_group) : NULL;
    /* 0755: servers running as run_as must traverse it when the state dir
     * sits below (the default). Ours alone, or another user could have
     * made it to serve in our place or move our socket (safefs.h). */
    if (safefs_own_dir(dirname(dir), 0755, sg ? sg->gr_gid : (gid_t)-1, "socket directory",
                       "--socket", err, errlen) < 0)
        return -1;
    int rc;
    if (someone_listens(path)) {
        snprintf(err, errlen,
                 "another dbleased is already serving %s; stop it, or give this one another "
                 "--socket",
                 path);
        return -1;
    }
    unlink(path); /* a stale socket from a daemon that died */

    uv_pipe_init(d->loop, &d->listener, 0);
    d->listener.data = d;
    mode_t old = umask(0777 & ~(mode_t)d->cfg.socket_mode);
    rc = uv_pipe_bind(&d->listener, path);
    umask(old);
    if (rc == 0 && chmod(path, (mode_t)d->cfg.socket_mode) < 0)
        rc = -errno;
    if (rc == 0 && d->cfg.socket_group[0]) {
        struct group *g = getgrnam(d->cfg.socket_group);
        if (!g) {
            snprintf(err, errlen, "socket_group %s does not exist; create it or unset the key",
                     d->cfg.socket_group);
            uv_close((uv_handle_t *)&d->listener, NULL);
            return -1;
        }
        if (chown(path, (uid_t)-1, g->gr_gid) < 0)
            rc = -errno;
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&d->listener, 512, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, uv_strerror(rc));
        uv_close((uv_handle_t *)&d->listener, NULL);
        return -1;
    }
    d->listening = true;
    log_info("server", "listening on %s (mode %04o)", path, d->cfg.socket_mode);
    return 0;
}

void server_close(dbld_t *d)
{
    if (!d->listening)
        return;
    d->listening = false;
    uv_close((uv_handle_t *)&d->listener, NULL);
    if (!d->activated) /* systemd owns a socket it passed us */
        unlink(d->cfg.socket);
}
