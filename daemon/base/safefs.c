#include "safefs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

int safefs_open_dir(const char *base, const char *rel)
{
    int fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", rel) >= (int)sizeof buf) {
        close(fd);
        return -ENAMETOOLONG;
    }
    for (char *save, *part = strtok_r(buf, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0)
            continue;
        if (strcmp(part, "..") == 0) { /* never climb out of base */
            close(fd);
            return -EINVAL;
        }
        int next = openat(fd, part, DIR_FLAGS);
        int e = errno;
        close(fd);
        if (next < 0)
            return -e;
        fd = next;
    }
    return fd;
}

int safefs_mkdir_at(int dirfd, const char *name, mode_t mode, uid_t uid, gid_t gid)
{
    if (mkdirat(dirfd, name, mode) < 0)
        return -errno;
    int fd = openat(dirfd, name, DIR_FLAGS);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0)
        rc = -errno;
    if (rc == 0 && fchmod(fd, mode) < 0) /* past the umask */
        rc = -errno;
    close(fd);
    return rc;
}

static int write_all(int fd, const char *data)
{
    size_t len = strlen(data), off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        off += (size_t)w;
    }
    return 0;
}

int safefs_write_at(int dirfd, const char *name, const char *data, mode_t mode, uid_t uid,
                    gid_t gid)
{
    char rnd[17], tmp[NAME_MAX + 1];
    int rc = util_random_hex(rnd, 8);
    if (rc < 0)
        return rc;
    if (snprintf(tmp, sizeof tmp, ".%.200s.%s", name, rnd) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    rc = write_all(fd, data);
    if (rc == 0 && (uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0)
        rc = -errno;
    if (rc == 0 && fchmod(fd, mode) < 0)
        rc = -errno;
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    /* rename replaces the entry name, whatever it is; it never opens it */
    if (rc == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
        rc = -errno;
    if (rc < 0)
        unlinkat(dirfd, tmp, 0);
    return rc;
}

static int rm_at(int dirfd, const char *name, int depth)
{
    if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return -errno;
    if (depth > 128)
        return -ELOOP;
    int fd = openat(dirfd, name, DIR_FLAGS);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    DIR *dh = fdopendir(fd);
    if (!dh) {
        int e = -errno;
        close(fd);
        return e;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        int r = rm_at(fd, e->d_name, depth + 1);
        if (r < 0 && rc == 0)
            rc = r;
    }
    closedir(dh);
    if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && rc == 0)
        rc = -errno;
    return rc;
}

int safefs_rm_rf_at(int dirfd, const char *name)
{
    if (!name[0] || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return -EINVAL;
    return rm_at(dirfd, name, 0);
}

int safefs_open_regular_at(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    return fd;
}

/* ---- directories of our own ------------------------------------------ */

static const char *user_name(uid_t uid, char *buf, size_t len)
{
    struct passwd *pw = getpwuid(uid);
    snprintf(buf, len, "%s", pw ? pw->pw_name : "?");
    return buf;
}

/* A parent of our directory: whoever may replace entries in it could
 * swap our directory for theirs. */
static int check_parent(const char *p, const char *path, const char *what, const char *how,
                        char *err, size_t errlen)
{
    uid_t me = geteuid();
    struct stat lst, st;
    char who[64];
    if (lstat(p, &lst) < 0 || stat(p, &st) < 0) {
        snprintf(err, errlen, "cannot check %s (above the %s %s): %s", p, what, path,
                 strerror(errno));
        return -1;
    }
    if (S_ISLNK(lst.st_mode) && lst.st_uid != 0 && lst.st_uid != me) {
        snprintf(err, errlen,
                 "refusing the %s %s: %s is a symbolic link made by uid %u (%s), not by root "
                 "or us; remove it, or choose another place with %s",
                 what, path, p, (unsigned)lst.st_uid, user_name(lst.st_uid, who, sizeof who), how);
        return -1;
    }
    if (st.st_uid != 0 && st.st_uid != me) {
        snprintf(err, errlen,
                 "refusing the %s %s: %s belongs to uid %u (%s), not to root or us, so that "
                 "user could replace what is below it; remove it (rm -rf %s) or choose another "
                 "place with %s",
                 what, path, p, (unsigned)st.st_uid, user_name(st.st_uid, who, sizeof who), p,
                 how);
        return -1;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
        snprintf(err, errlen,
                 "refusing the %s %s: %s is writable by group or others (mode %04o) and not "
                 "sticky, so another user could replace what is below it; chmod go-w %s, or "
                 "choose another place with %s",
                 what, path, p, (unsigned)(st.st_mode & 07777), p, how);
        return -1;
    }
    return 0;
}

/* The directory itself, through an fd that cannot be a link. */
static int check_self(const char *path, gid_t group_ok, const char *what, const char *how,
                      char *err, size_t errlen)
{
    struct stat st;
    char who[64];
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        snprintf(err, errlen,
                 "refusing the %s %s: it is a symbolic link (made by uid %u), and dbleased uses "
                 "only a real directory of its own; remove it (rm %s) or choose another place "
                 "with %s",
                 what, path, (unsigned)st.st_uid, path, how);
        return -1;
    }
    int fd = open(path, DIR_FLAGS);
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "cannot open the %s %s: %s; choose another place with %s", what,
                 path, strerror(errno), how);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    uid_t me = geteuid();
    if (st.st_uid != me) {
        snprintf(err, errlen,
                 "refusing the %s %s: it belongs to uid %u (%s), not to us (uid %u), so that "
                 "user may have made it to read or replace what we put there; remove it (as "
                 "root: rm -rf %s) or choose another place with %s",
                 what, path, (unsigned)st.st_uid, user_name(st.st_uid, who, sizeof who),
                 (unsigned)me, path, how);
        return -1;
    }
    if (st.st_mode & S_IWOTH) {
        snprintf(err, errlen, "refusing the %s %s: it is writable by everyone (mode %04o); chmod o-w %s",
                 what, path, (unsigned)(st.st_mode & 07777), path);
        return -1;
    }
    if ((st.st_mode & S_IWGRP) && (group_ok == (gid_t)-1 || st.st_gid != group_ok)) {
        struct group *g = getgrgid(st.st_gid);
        snprintf(err, errlen,
                 "refusing the %s %s: it is writable by group %s (mode %04o), which "
                 "socket_group does not name; chmod g-w %s",
                 what, path, g ? g->gr_name : "?", (unsigned)(st.st_mode & 07777), path);
        return -1;
    }
    return 0;
}

int safefs_own_dir(const char *path, mode_t mode, gid_t group_ok, const char *what,
                   const char *how, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        snprintf(err, errlen, "the %s path is too long; choose a shorter one with %s", what, how);
        return -1;
    }
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    /* Parents first, top down: each is checked before we create in it. */
    if (buf[0] != '/' && check_parent(".", path, what, how, err, errlen) < 0)
        return -1;
    for (size_t k = 1; k < len; k++) {
        if (buf[k] != '/')
            continue;
        buf[k] = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s (for the %s %s): %s", buf, what, path,
                     strerror(errno));
            return -1;
        }
        int rc = check_parent(buf, path, what, how, err, errlen);
        buf[k] = '/';
        if (rc < 0)
            return -1;
    }
    if (mkdir(buf, mode) == 0) {
        /* ours, fresh: the mode past the umask */
        int fd = open(buf, DIR_FLAGS);
        if (fd >= 0) {
            if (fchmod(fd, mode) < 0) { /* ignore: checked below */
            }
            close(fd);
        }
    } else if (errno != EEXIST) {
        snprintf(err, errlen, "cannot create the %s %s: %s; choose another place with %s", what,
                 path, strerror(errno), how);
        return -1;
    }
    return check_self(buf, group_ok, what, how, err, errlen);
}
