#include "util.h"

#include "safefs.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fill_random(void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom((char *)buf + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)r;
    }
    return 0;
}

int util_random_hex(char *out, size_t nbytes)
{
    unsigned char raw[64];
    if (nbytes > sizeof raw)
        return -EINVAL;
    int rc = fill_random(raw, nbytes);
    if (rc < 0)
        return rc;
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[2 * nbytes] = '\0';
    return 0;
}

int util_random_password(char *out, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char raw[128];
    if (len > sizeof raw)
        return -EINVAL;
    int rc = fill_random(raw, len);
    if (rc < 0)
        return rc;
    /* 62 symbols: the modulo bias (256 % 62) is irrelevant at 24+ chars. */
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[raw[i] % (sizeof alphabet - 1)];
    out[len] = '\0';
    return 0;
}

uint64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t util_unix_now(void)
{
    return (int64_t)time(NULL);
}

int util_mkdir_p(const char *path, mode_t mode)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int util_rm_rf(const char *path)
{
    if (!path || !*path || strcmp(path, "/") == 0)
        return -EINVAL;
    char parent[4096];
    if (snprintf(parent, sizeof parent, "%s", path) >= (int)sizeof parent)
        return -ENAMETOOLONG;
    size_t len = strlen(parent);
    while (len > 1 && parent[len - 1] == '/')
        parent[--len] = '\0';
    char *slash = strrchr(parent, '/');
    const char *name = slash ? slash + 1 : parent, *dir = ".";
    if (slash == parent)
        dir = "/";
    else if (slash) {
        *slash = '\0';
        dir = parent;
    }
    /* The parent is the caller's (trusted); below it nothing is followed. */
    int dirfd = safefs_open_dir(dir, "");
    if (dirfd < 0)
        return dirfd == -ENOENT ? 0 : dirfd;
    int rc = safefs_rm_rf_at(dirfd, name);
    close(dirfd);
    return rc;
}

int util_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

int util_path(char *out, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, len, fmt, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

unsigned long long util_hash_str(const char *s)
{
    unsigned long long h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static const char *file_type(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

static int read_fd(int fd, size_t max, char **out, size_t *len_out, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        char buf[128];
        snprintf(err, errlen, "%s", strerror_r(e, buf, sizeof buf));
        return -e;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "is %s; only regular files are read", file_type(st.st_mode));
        return -EINVAL;
    }
    size_t mib = max >> 20;
    if ((uintmax_t)st.st_size > max) {
        snprintf(err, errlen, "is %jd MiB, over the limit of %zu MiB; split it",
                 (intmax_t)(st.st_size >> 20), mib);
        return -EFBIG;
    }
    /* Read to the end, not to st_size: a file that grew meanwhile is caught
     * by the cap, never cut short silently. */
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (len == cap) {
            size_t next = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *grown = next > cap ? realloc(buf, next + 1) : NULL;
            if (!grown) {
                snprintf(err, errlen, "grew past %zu MiB while being read", mib);
                free(buf);
                return -EFBIG;
            }
            buf = grown;
            cap = next;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            char m[128];
            snprintf(err, errlen, "%s", strerror_r(e, m, sizeof m));
            free(buf);
            return -e;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (memchr(buf, '\0', len)) {
        snprintf(err, errlen, "holds a NUL byte; it is not SQL text");
        free(buf);
        return -EINVAL;
    }
    buf[len] = '\0';
    *out = buf;
    if (len_out)
        *len_out = len;
    return 0;
}

int util_read_regular(int dirfd, const char *name, size_t max, char **out, size_t *len, char *err,
                      size_t errlen)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        char m[128];
        if (e == ELOOP)
            snprintf(err, errlen,
                     "is a symbolic link; only regular files are read (copy the file "
                     "in, or link the directory instead)");
        else
            snprintf(err, errlen, "%s", strerror_r(e, m, sizeof m));
        return -e;
    }
    int rc = read_fd(fd, max, out, len, err, errlen);
    close(fd);
    return rc;
}
