#include "rt_logs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "safefs.h"
#include "util.h"

#define TAIL_BYTES 16384
#define KEEP_BYTES (1 << 20)
#define ENOSPC_TEXT "No space left on device"

/* The instance's dir (run_as's), reached from its root-owned parent
 * without following a link. fd or -errno. */
static int open_inst_dir(const char *dir)
{
    char parent[CFG_PATH];
    const char *slash = strrchr(dir, '/');
    if (!slash || util_path(parent, sizeof parent, "%.*s", (int)(slash - dir), dir) < 0)
        return -EINVAL;
    return safefs_open_dir(parent[0] ? parent : "/", slash + 1);
}

/* dir/server.log, opened without following a link. */
static int open_log(const char *dir)
{
    int dirfd = open_inst_dir(dir);
    if (dirfd < 0)
        return dirfd;
    int fd = safefs_open_regular_at(dirfd, "server.log");
    close(dirfd);
    return fd;
}

/* Redis's own account of its end, from a warning line ("PID:M date # …"):
 * the crash report's first line, an allocation that failed, a failed
 * assertion. The text after "# ", or NULL. */
static const char *redis_last_words(const char *line)
{
    static const char *const marks[] = {"crashed by signal", "Out Of Memory",
                                        "ASSERTION FAILED", "Guru Meditation"};
    const char *w = strstr(line, " # ");
    if (!w || line[strspn(line, "0123456789")] != ':')
        return NULL;
    for (size_t k = 0; k < sizeof marks / sizeof marks[0]; k++)
        if (strstr(w, marks[k]))
            return w + 3;
    return NULL;
}

/* The line from its severity on ("PANIC:  could not write…"), or NULL
 * when it is not one that explains a death. */
static const char *telling(const char *line)
{
    static const char *const marks[] = {"PANIC:", "FATAL:"};
    for (size_t k = 0; k < 2; k++) {
        const char *m = strstr(line, marks[k]);
        if (m && !strstr(m, "the database system is") && !strstr(m, "administrator command"))
            return m;
    }
    const char *r = redis_last_words(line);
    if (r)
        return r;
    const char *e = strstr(line, ENOSPC_TEXT);
    if (!e)
        return NULL;
    const char *sev = strstr(line, "ERROR:");
    return sev ? sev : line;
}

void rt_log_evidence(const char *dir, char *out, size_t len)
{
    out[0] = '\0';
    int fd = open_log(dir);
    if (fd < 0)
        return;
    struct stat st;
    char buf[TAIL_BYTES + 1];
    off_t from = fstat(fd, &st) == 0 && st.st_size > TAIL_BYTES ? st.st_size - TAIL_BYTES : 0;
    ssize_t n = pread(fd, buf, TAIL_BYTES, from);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    /* The last two telling lines, oldest first: the cause, then the end. */
    const char *picked[2] = {NULL, NULL};
    bool enospc = false;
    for (char *save, *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        const char *t = telling(line);
        if (!t)
            continue;
        enospc = enospc || strstr(t, ENOSPC_TEXT);
        picked[0] = picked[1];
        picked[1] = t;
    }
    if (!picked[1])
        return;
    snprintf(out, len, "%s%s%s%s", enospc ? "the disk is full (ENOSPC): " : "",
             picked[0] ? picked[0] : "", picked[0] ? " / " : "", picked[1]);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int is_log(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 4 && strcmp(e->d_name + n - 4, ".log") == 0;
}

/* Oldest first by name (they start with the time): all but keep go. */
static void prune(const char *logs, int dirfd, int keep)
{
    struct dirent **names;
    int n = scandir(logs, &names, is_log, by_name);
    for (int k = 0; k < n; k++) {
        if (k < n - keep)
            unlinkat(dirfd, names[k]->d_name, 0);
        free(names[k]);
    }
    if (n >= 0)
        free(names);
}

static int copy_tail(int src, int dst)
{
    struct stat st;
    if (fstat(src, &st) < 0)
        return -errno;
    off_t off = st.st_size > KEEP_BYTES ? st.st_size - KEEP_BYTES : 0, end = off + KEEP_BYTES;
    char buf[65536];
    while (off < end) {
        ssize_t r = pread(src, buf, sizeof buf, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : 0;
        if (write(dst, buf, (size_t)r) != r)
            return -EIO;
        off += r;
    }
    return 0;
}

/* Moved when it can be: a full disk (the usual reason to need the log)
 * has no room for a copy. */
static int move_log(const char *dir, int logs_fd, const char *name)
{
    int dirfd = open_inst_dir(dir);
    if (dirfd < 0)
        return dirfd;
    struct stat st;
    int rc = fstatat(dirfd, "server.log", &st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno
             : !S_ISREG(st.st_mode)                                   ? -EINVAL
             : renameat(dirfd, "server.log", logs_fd, name) < 0       ? -errno
                                                                       : 0;
    close(dirfd);
    return rc;
}

void rt_log_name(char *out, size_t len, const char *server)
{
    snprintf(out, len, "%010lld-%s.log", (long long)util_unix_now(), server);
}

int rt_keep_log(const char *dir, const char *logs, const char *name, int keep)
{
    if (mkdir(logs, 0700) < 0 && errno != EEXIST)
        return -errno;
    int dirfd = safefs_open_dir(logs, "");
    if (dirfd < 0)
        return dirfd;
    int rc = move_log(dir, dirfd, name);
    if (rc == -EXDEV) { /* the servers' dir is on another file system */
        int src = open_log(dir);
        int dst = src < 0 ? -1
                          : openat(dirfd, name,
                                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        rc = src < 0 ? src : dst < 0 ? -errno : copy_tail(src, dst);
        if (src >= 0)
            close(src);
        if (dst >= 0)
            close(dst);
    }
    prune(logs, dirfd, keep);
    close(dirfd);
    return rc == -ENOENT ? 0 : rc; /* ENOENT: died before it wrote anything */
}
