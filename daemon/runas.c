#include "runas.h"

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
    const char *name = d->cfg.run_as;
    struct passwd *pw = NULL;
    if (name[0]) {
        pw = getpwnam(name);
        if (!pw) {
            snprintf(err, errlen,
                     "run_as user '%s' does not exist; create it (useradd --system %s) or set "
                     "[daemon] run_as to an existing unprivileged user",
                     name, name);
            return -1;
        }
    } else if (!(pw = getpwnam("dblease"))) {
        pw = getpwnam("nobody");
    }
    if (!pw) {
        snprintf(err, errlen, "no unprivileged user to run servers as; set [daemon] run_as");
        return -1;
    }
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
