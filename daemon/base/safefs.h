/* File work in directories someone else can write.
 *
 * Started as root, the daemon hands its servers' directories to an
 * unprivileged user, and anything that user (or SQL escaped into a shell
 * through a server) plants there must not steer root: no path is followed
 * through a link, every step below a trusted directory is an openat() with
 * O_NOFOLLOW, files are created fresh (O_EXCL) and renamed into place, and
 * ownership is changed only on what we just created, through its fd. */
#ifndef DBL_SAFEFS_H
#define DBL_SAFEFS_H

#include <stddef.h>
#include <sys/types.h>

/* Open the directory rel (a relative path, "" or "." for base itself)
 * below the trusted directory base (a path we chose, followed as given),
 * refusing a symbolic link at every step of rel. An O_DIRECTORY fd, or
 * -errno (-ENOTDIR or -ELOOP: a link was planted). */
int safefs_open_dir(const char *base, const char *rel);

/* Create the directory name in dirfd (which must be ours alone: nobody
 * else can swap name), mode, then hand it to uid/gid (-1: keep ours).
 * EEXIST is an error: it is always made fresh. 0 or -errno. */
int safefs_mkdir_at(int dirfd, const char *name, mode_t mode, uid_t uid, gid_t gid);

/* Write data as the file name in dirfd, replacing whatever name was (a
 * link is replaced, never followed): a fresh temporary file, owned by
 * uid/gid (-1: keep ours), renamed over name. 0 or -errno. */
int safefs_write_at(int dirfd, const char *name, const char *data, mode_t mode, uid_t uid,
                    gid_t gid);

/* rm -rf of name in dirfd, never leaving the tree through a link (links
 * are removed, not followed). 0 (also when name does not exist) or -errno. */
int safefs_rm_rf_at(int dirfd, const char *name);

/* Open the regular file name in dirfd for reading without following a
 * link or blocking on a FIFO. fd or -errno (-EINVAL: not a regular file). */
int safefs_open_regular_at(int dirfd, const char *name);

/* A directory of ours, made (mode, with any missing parents) or accepted
 * as it is only when nobody else could have made or changed it: not a
 * link (lstat, then an O_NOFOLLOW open and fstat of the fd), owned by our
 * euid, not writable by others, nor by its group unless that group is
 * group_ok (-1: none); each parent owned by root or us and, when others
 * may write it, sticky (/tmp). what names it in messages ("socket
 * directory"), how names the option that moves it ("--socket"). 0, or -1
 * with which check failed and what to do in err. */
int safefs_own_dir(const char *path, mode_t mode, gid_t group_ok, const char *what,
                   const char *how, char *err, size_t errlen);

#endif
