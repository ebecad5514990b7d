/* Small helpers with no state: randomness, clocks, files, ports. */
#ifndef DBL_UTIL_H
#define DBL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* n random bytes as 2n lowercase hex digits plus NUL into out (2n+1 bytes). */
int util_random_hex(char *out, size_t nbytes);
/* A password of len alphanumerics (URL-safe: no escaping anywhere). */
int util_random_password(char *out, size_t len);

uint64_t util_now_ms(void); /* monotonic */
int64_t util_unix_now(void);

/* mkdir -p with mode for each created component. 0 or -errno. */
int util_mkdir_p(const char *path, mode_t mode);
/* rm -rf; 0 or -errno. Refuses "" and "/". The parent of path is followed
 * as given; below it no link is followed (safefs.h), so a tree another
 * user can write cannot steer the removal elsewhere. Files go in
 * safefs.h's way (safefs_write_at): there is no path-based writer. */
int util_rm_rf(const char *path);

/* The whole of the regular file name (relative to the directory fd dirfd,
 * or AT_FDCWD), NUL-terminated, into *out (free it). Safe to call off the
 * loop thread. Never blocks on what is not a file: it opens with O_NOFOLLOW
 * and O_NONBLOCK and refuses a symbolic link, a FIFO, a device or socket, a
 * file over max bytes, and text with a NUL byte in it. 0, or -errno with
 * why in err ("is a FIFO; …"), ready to follow the file's name. */
int util_read_regular(int dirfd, const char *name, size_t max, char **out, size_t *len, char *err,
                      size_t errlen);

/* A TCP port on 127.0.0.1 free right now (bound then released). >0 or -errno. */
int util_free_port(void);

/* FNV-1a of a string: a short, stable name for it (state dir -> labels,
 * fallback dirs). Not for anything an attacker chooses. */
unsigned long long util_hash_str(const char *s);

/* snprintf that reports truncation as -ENAMETOOLONG. */
int util_path(char *out, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
