#include "runas.h"

#include "log.h"
#include "safefs.h"
#include "util.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int runas_resolve(dbld_t *d, char *err, size_t errlen)
{
    if (d->uid != 0) {
        struct passwd *pw = getpwuid(d->uid);
        d->run_uid = d->uid;
        d->run_gid = getgid();
        snprintf(d->run_user, sizeof d->run_user, "%s", pw ? pw->pw_name : "self");
        return 0;
    }
    /* A user of their own: whatever else runs as a shared user (nobody
     * runs dozens of things) could reach the servers' files and sockets.
     * So no fallback: nobody only when the configuration names it. */
    const char *name = d->cfg.run_as[0] ? d->cfg.run_as : "dblease";
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        snprintf(err, errlen,
                 "started as root, dbleased runs its database servers as the dedicated user "
                 "'%s' (run_as), which does not exist; create it (systemd-sysusers, with "
                 "systemd/dblease.sysusers installed as /usr/lib/sysusers.d/dblease.conf; or "
                 "useradd --system --user-group --no-create-home --shell /usr/sbin/nologin %s)%s",
                 name, name,
                 d->cfg.run_as[0] ? "" : ", or set [daemon] run_as to another dedicated user");
        return -1;
    }
    if (strcmp(pw->pw_name, "nobody") == 0)
        log_warn("daemon",
                 "run_as = nobody: every process running as nobody can reach the database "
                 "servers' files; a dedicated user (dblease) is safer");
    if (pw->pw_uid == 0) {
        snprintf(err, errlen,
                 "run_as = %s is root, and PostgreSQL refuses to run as root; pick an "
                 "unprivileged user",
                 pw->pw_name);
        return -1;
    }
    d->run_uid = pw->pw_uid;
    d->run_gid = pw->pw_gid;
    snprintf(d->run_user, sizeof d->run_user, "%s", pw->pw_name);
    return 0;
}

static bool may(const dbld_t *d, const struct stat *st, mode_t u, mode_t g, mode_t o)
{
    if (st->st_uid == d->run_uid)
        return st->st_mode & u;
    if (st->st_gid == d->run_gid)
        return st->st_mode & g;
    return st->st_mode & o;
}

int runas_check_dir(const dbld_t *d, const char *path, char *err, size_t errlen)
{
    if (d->run_uid == d->uid)
        return 0;
    char buf[CFG_PATH];
    snprintf(buf, sizeof buf, "%s", path);
    size_t len = strlen(buf);
    for (size_t k = 1; k <= len; k++) {
        if (buf[k] != '/' && buf[k] != '\0')
            continue;
        char saved = buf[k];
        buf[k] = '\0';
        struct stat st;
        if (stat(buf, &st) == 0) {
            if (!may(d, &st, S_IXUSR, S_IXGRP, S_IXOTH)) {
                snprintf(err, errlen,
                         "user %s (run_as) cannot reach %s: %s is mode %04o owned by uid %d; "
                         "make it reachable (chmod o+x %s) or choose another location",
                         d->run_user, path, buf, st.st_mode & 07777, (int)st.st_uid, buf);
                return -1;
            }
        } else {
            break; /* the rest does not exist yet: we create it, reachable */
        }
        buf[k] = saved;
    }
    return 0;
}

/* Create (or reuse) dir as ours: a real directory, owned by us, that
 * nobody else can write (safefs.h), not a link someone planted in a
 * shared /tmp; then traversable by run_as. */
static int own_dir(const char *dir, const char *what, const char *how, char *err, size_t errlen)
{
    if (safefs_own_dir(dir, 0711, (gid_t)-1, what, how, err, errlen) < 0)
        return -1;
    if (chmod(dir, 0711) < 0) {
        snprintf(err, errlen, "cannot chmod 0711 %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

int runas_pick_server_root(dbld_t *d, char *err, size_t errlen)
{
    char why[CFG_PATH * 2], cache[CFG_PATH];
    int rc;
    if (runas_check_dir(d, d->cfg.state_dir, why, sizeof why) == 0) {
        snprintf(d->server_root, sizeof d->server_root, "%s", d->cfg.state_dir);
        rc = util_path(cache, sizeof cache, "%s/cache", d->server_root);
    } else {
        /* A root-only state dir (mktemp -d) is fine for us but not for the
         * servers: their data goes to a private dir they can reach, named
         * after the state dir so a restart finds what a crash left, and the
         * cache is shared by every such daemon of ours. */
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(d->server_root, sizeof d->server_root, "%s/dblease-%016llx", base,
                 util_hash_str(d->cfg.state_dir));
        if (own_dir(d->server_root, "servers' directory", "--state-dir", err, errlen) < 0)
            return -1;
        rc = util_path(cache, sizeof cache, "%s/dblease-cache-%u", base, (unsigned)d->uid);
    }
    if (!d->cfg.cache_dir[0]) {
        if (rc < 0) {
            snprintf(err, errlen, "the cache dir path is too long; set [daemon] cache_dir");
            return -1;
        }
        snprintf(d->cfg.cache_dir, sizeof d->cfg.cache_dir, "%s", cache);
    }
    /* Root makes, renames and removes run_as's data dirs in the cache: it
     * must be a dir only we can write, or run_as could swap names in it. */
    if (d->run_uid != d->uid && safefs_own_dir(d->cfg.cache_dir, 0711, (gid_t)-1, "cache directory",
                                                "[daemon] cache_dir", err, errlen) < 0)
        return -1;
    return runas_check_dir(d, d->cfg.cache_dir, err, errlen);
}
