#include "rt_process.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"
#include "rt_logs.h"
#include "safefs.h"
#include "util.h"


/* ---- finding the binaries -------------------------------------------- */

static bool has_pg_bins(const char *dir)
{
    char p[CFG_PATH];
    if (util_path(p, sizeof p, "%s/initdb", dir) < 0 || access(p, X_OK) < 0)
        return false;
    return util_path(p, sizeof p, "%s/postgres", dir) == 0 && access(p, X_OK) == 0;
}

static int read_major(const char *dir)
{
    char cmd[CFG_PATH + 32];
    if (util_path(cmd, sizeof cmd, "'%s/postgres' --version", dir) < 0)
        return -1;
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char line[256] = "";
    char *got = fgets(line, sizeof line, f);
    pclose(f);
    char *v = got ? strstr(line, ") ") : NULL; /* "postgres (PostgreSQL) 15.20" */
    return v ? atoi(v + 2) : -1;
}

static bool from_pg_config(char *out, size_t len)
{
    FILE *f = popen("pg_config --bindir 2>/dev/null", "r");
    if (!f)
        return false;
    char line[CFG_PATH] = "";
    char *got = fgets(line, sizeof line, f);
    pclose(f);
    if (!got)
        return false;
    line[strcspn(line, "\n")] = '\0';
    if (!has_pg_bins(line))
        return false;
    return util_path(out, len, "%s", line) == 0;
}

static bool from_usr_lib(char *out, size_t len)
{
    DIR *dir = opendir("/usr/lib/postgresql");
    if (!dir)
        return false;
    int best = -1;
    struct dirent *e;
    while ((e = readdir(dir))) {
        int v = atoi(e->d_name);
        char p[CFG_PATH];
        if (v > best && util_path(p, sizeof p, "/usr/lib/postgresql/%s/bin", e->d_name) == 0 &&
            has_pg_bins(p)) {
            best = v;
            util_path(out, len, "%s", p);
        }
    }
    closedir(dir);
    return best >= 0;
}

static bool from_path(char *out, size_t len)
{
    const char *path = getenv("PATH");
    char buf[CFG_PATH];
    if (!path || util_path(buf, sizeof buf, "%s", path) < 0)
        return false;
    for (char *save, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        if (has_pg_bins(d))
            return util_path(out, len, "%s", d) == 0;
    }
    return false;
}

int rt_pg_find_bins(const char *configured, char *out, size_t outlen, int *major, char *err,
                    size_t errlen)
{
    if (configured && *configured) {
        if (!has_pg_bins(configured)) {
            snprintf(err, errlen,
                     "[postgres] bin_dir = %s has no initdb and postgres; point it at the "
                     "server's bin directory (e.g. /usr/lib/postgresql/15/bin)",
                     configured);
            return -1;
        }
        util_path(out, outlen, "%s", configured);
    } else if (!from_pg_config(out, outlen) && !from_usr_lib(out, outlen) &&
               !from_path(out, outlen)) {
        snprintf(err, errlen,
                 "no PostgreSQL server binaries found (looked at pg_config --bindir, "
                 "/usr/lib/postgresql/*/bin, PATH); install them (apt-get install postgresql) "
                 "or set [postgres] bin_dir");
        return -1;
    }
    *major = read_major(out);
    if (*major <= 0) {
        snprintf(err, errlen, "cannot tell the version of %s/postgres; is it a PostgreSQL server?",
                 out);
        return -1;
    }
    return 0;
}

/* ---- work off the loop ------------------------------------------------- *
 * Removing a data dir (thousands of files), scanning /proc and waiting for
 * killed processes take long enough to stall every client: they run on
 * libuv's thread pool, and their result comes back on the loop. */

typedef struct rt_job {
    uv_work_t req;
    inst_t *i;
    void (*after)(struct rt_job *j);
    /* Copied on the loop: the worker reads nothing a reload may change. */
    char dir[CFG_PATH], tmp[CFG_PATH], dst[CFG_PATH], parent[CFG_PATH], cache[CFG_PATH];
    char logs[CFG_PATH], kept[128]; /* cleaning: keep server.log as logs/kept */
    int keep_n, keep_err;
    uid_t uid;
    gid_t gid;
    bool remove; /* cleaning: remove dir too */
    bool cached; /* preparing: the cache has a data dir */
    int killed;  /* cleaning: processes left in dir */
    int err;     /* -errno */
    char what[CFG_PATH + 32];
} rt_job_t;

static void job_after(uv_work_t *req, int status)
{
    rt_job_t *j = req->data;
    (void)status; /* nothing cancels our work */
    j->after(j);
    free(j);
}

static void job_queue(inst_t *i, rt_job_t *j, uv_work_cb work, void (*after)(rt_job_t *))
{
    j->i = i;
    j->after = after;
    j->req.data = j;
    uv_queue_work(i->d->loop, &j->req, work, job_after);
}

static rt_job_t *job_new(inst_t *i)
{
    rt_job_t *j = calloc(1, sizeof *j);
    if (!j)
        log_error("process", "%s: out of memory", i->name);
    return j;
}

static int kill_procs_in(const char *dir, uid_t uid);

/* After a server or helper exited: kill what it left running in its dir,
 * and wait for that to be gone before the dir is reused or removed. */
static void clean_work(uv_work_t *req)
{
    rt_job_t *j = req->data;
    j->killed = kill_procs_in(j->dir, j->uid);
    if (j->kept[0])
        j->keep_err = rt_keep_log(j->dir, j->logs, j->kept, j->keep_n);
    if (j->remove && (j->err = util_rm_rf(j->dir)) < 0)
        snprintf(j->what, sizeof j->what, "cannot remove %s", j->dir);
}

static void clean_after(rt_job_t *j)
{
    inst_t *i = j->i;
    i->kept_log[0] = '\0';
    if (j->keep_err)
        log_warn("process", "%s: cannot keep its server.log in %s: %s", i->name, j->logs,
                 strerror(-j->keep_err));
    if (j->killed)
        log_warn("process", "%s: killed %d processes its server left running", i->name, j->killed);
    if (j->err)
        log_warn("process", "%s: %s: %s", i->name, j->what, strerror(-j->err));
    inst_rt_set(i, RT_IDLE);
    inst_settle(i); /* last: may free i */
}

/* The runtime is done with this start: clean up, then settle. The data dir
 * stays after a failure (its server.log says why), goes after a stop. */
static void name_kept_log(inst_t *i);

static void clean_up(inst_t *i)
{
    inst_rt_set(i, RT_CLEANING);
    if (!i->kept_log[0])
        name_kept_log(i);
    rt_job_t *j = job_new(i);
    if (!j) {
        inst_rt_set(i, RT_IDLE);
        inst_settle(i);
        return;
    }
    snprintf(j->dir, sizeof j->dir, "%s", i->dir);
    j->uid = i->d->run_uid;
    j->remove = i->state == INST_STOPPING;
    /* A server that died, or a start that failed: its log is the evidence,
     * and the next start reuses (and so removes) the dir. */
    if (!j->remove && i->d->cfg.dead_logs_kept > 0) {
        util_path(j->logs, sizeof j->logs, "%s/logs", i->d->cfg.state_dir);
        snprintf(j->kept, sizeof j->kept, "%s", i->kept_log);
        j->keep_n = i->d->cfg.dead_logs_kept;
    }
    job_queue(i, j, clean_work, clean_after);
}

/* ---- spawning -------------------------------------------------------- */

static void handle_closed(void *data)
{
    inst_t *i = data;
    if (--i->open_handles == 0 && i->state == INST_CLOSED)
        free(i);
}

/* Spawn with output to the instance's log; the instance counts the handle. */
static int spawn(inst_t *i, uv_process_t **out, char **args, uv_exit_cb cb)
{
    char log_path[CFG_PATH];
    util_path(log_path, sizeof log_path, "%s/server.log", i->dir);
    proc_opts_t o = {.cwd = i->dir, .log_path = log_path, .exit_cb = cb, .data = i};
    int rc = proc_spawn(i->d, &o, args, out);
    if (rc == 0)
        i->open_handles++;
    return rc;
}

static void start_server(inst_t *i);

/* The name the log of this start keeps if it ends badly (rt_keep_log). */
static void name_kept_log(inst_t *i)
{
    rt_log_name(i->kept_log, sizeof i->kept_log, i->name);
}
static void copy_cache(inst_t *i);

/* Named for the user that owns it too: the copy runs as that user, who
 * must be able to read it (a cache made for another run_as is not ours). */
static void cache_path(const inst_t *i, char *out, size_t len, const char *suffix)
{
    util_path(out, len, "%s/pg%d-%u%s", i->d->cfg.cache_dir, i->major, (unsigned)i->d->run_uid,
              suffix);
}

/* Several daemons may share a cache dir: each builds in its own temp dir. */
static void cache_tmp_path(const inst_t *i, char *out, size_t len)
{
    char suffix[32];
    snprintf(suffix, sizeof suffix, ".tmp.%d", (int)getpid());
    cache_path(i, out, len, suffix);
}

/* Publish initdb's result for every later start. */
static void publish_work(uv_work_t *req)
{
    rt_job_t *j = req->data;
    if (rename(j->tmp, j->dst) == 0)
        return;
    int e = errno;
    if (e != EEXIST && e != ENOTEMPTY) {
        j->err = -e;
        snprintf(j->what, sizeof j->what, "cannot publish %s", j->dst);
        return;
    }
    util_rm_rf(j->tmp); /* another daemon published first; theirs is as good */
}

/* A start step's work came back: true if the start is over (stopped
 * meanwhile, or the work failed), and the runtime is cleaning up. */
static bool start_over(rt_job_t *j)
{
    inst_t *i = j->i;
    if (i->state == INST_STARTING && !j->err)
        return false;
    clean_up(i);
    if (j->err)
        inst_start_failed(i, "%s: %s", j->what, strerror(-j->err));
    return true;
}

static void publish_after(rt_job_t *j)
{
    if (!start_over(j))
        copy_cache(j->i);
}

static void on_helper_exit(uv_process_t *p, int64_t status, int sig)
{
    inst_t *i = p->data;
    bool initdb = i->rt == RT_INITDB;
    i->helper = NULL;
    proc_close(p, handle_closed);
    if (i->state != INST_STARTING) {
        clean_up(i);
        return;
    }
    if (status != 0 || sig != 0) {
        clean_up(i);
        inst_start_failed(i, "%s failed (exit %lld, signal %d); see %s/server.log",
                          initdb ? "initdb" : "copying the data dir", (long long)status, sig,
                          i->dir);
        return;
    }
    if (!initdb) {
        start_server(i);
        return;
    }
    inst_rt_set(i, RT_PREPARING);
    rt_job_t *j = job_new(i);
    if (!j) {
        clean_up(i);
        inst_start_failed(i, "out of memory");
        return;
    }
    cache_tmp_path(i, j->tmp, sizeof j->tmp);
    cache_path(i, j->dst, sizeof j->dst, "");
    job_queue(i, j, publish_work, publish_after);
}

static void run_initdb(inst_t *i)
{
    char tmp[CFG_PATH], initdb[CFG_PATH];
    cache_tmp_path(i, tmp, sizeof tmp);
    util_path(initdb, sizeof initdb, "%s/initdb", i->bindir);
    char *args[] = {initdb, "-D", tmp, "-U", "dblease", "--auth-local=peer",
                    "--auth-host=reject", "-E", "UTF8",
                    "--locale=C", "--no-sync", NULL};
    log_info("process", "initialising a PostgreSQL %d data dir once (cached in %s)", i->major,
             i->d->cfg.cache_dir);
    int rc = spawn(i, &i->helper, args, on_helper_exit);
    if (rc < 0) {
        clean_up(i);
        inst_start_failed(i, "cannot run %s: %s", initdb, uv_strerror(rc));
        return;
    }
    inst_rt_set(i, RT_INITDB);
}

static void copy_cache(inst_t *i)
{
    char src[CFG_PATH];
    cache_path(i, src, sizeof src, "");
    /* As run_as, like everything in the instance's dir: the cache's data
     * dir is that user's, and so is what it may have planted in it. */
    char *args[] = {"/bin/cp", "-a", src, i->datadir, NULL};
    int rc = spawn(i, &i->helper, args, on_helper_exit);
    if (rc < 0) {
        clean_up(i);
        inst_start_failed(i, "cannot run cp: %s", uv_strerror(rc));
        return;
    }
    inst_rt_set(i, RT_COPYING);
}

/* pg_hba.conf: the superuser only for the daemon's own OS user (peer, with
 * the "daemon" map of pg_ident.conf), whoever else reaches the socket (the
 * server user owns its directory); every role else by password, each to
 * the one database it may open. */
static void write_hba(char *out, size_t len, const char *p)
{
    snprintf(out, len,
             "# Written by dbleased. The superuser role logs in only over the Unix\n"
             "# socket and only as the daemon's own OS user (map \"daemon\" in\n"
             "# pg_ident.conf); leases come over loopback TCP with a password.\n"
             "local all dblease peer map=daemon\n"
             "local all all scram-sha-256\n"
             "# A role opens only the database of its name: lease roles, and template\n"
             "# owners while they migrate (named like their template database).\n"
             "host sameuser all 127.0.0.1/32 scram-sha-256\n"
             "host sameuser all ::1/128 scram-sha-256\n"
             "# Schema-isolated leases: only their template's shared database, which\n"
             "# is named like a group role each of them is a member of.\n"
             "host samerole +%sschema_users 127.0.0.1/32 scram-sha-256\n"
             "host samerole +%sschema_users ::1/128 scram-sha-256\n",
             p, p);
}

/* pg_ident.conf: who the daemon is. The daemon runs as root or as the
 * server user itself (runas.c), whose name we know. */
static void write_ident(char *out, size_t len, const dbld_t *d)
{
    snprintf(out, len, "# Written by dbleased: the daemon's OS user may be the superuser.\n"
             "daemon %s dblease\n", d->uid == 0 ? "root" : d->run_user);
}

static void on_server_exit(uv_process_t *p, int64_t status, int sig)
{
    inst_t *i = p->data;
    i->proc = NULL;
    i->pid = 0;
    proc_close(p, handle_closed);
    /* What it said last, for our log and the leases' instance_down: a
     * small bounded read of what it just wrote (the page cache), here so
     * the evidence goes out with the news. */
    if (i->state == INST_STARTING || i->state == INST_RUNNING)
        rt_log_evidence(i->dir, i->evidence, sizeof i->evidence);
    name_kept_log(i);
    clean_up(i); /* before inst_exited, so it waits for the clean-up to settle */
    inst_exited(i, status, sig);
}

/* Write a file of ours into the instance's data dir, which run_as owns
 * (and may have filled with links): reached without following a link
 * from the root-owned instances dir, written fresh and renamed into place
 * (safefs.h). 0 or -errno. */
static int write_datadir_file(const inst_t *i, const char *name, const char *content)
{
    char parent[CFG_PATH], rel[CFG_PATH];
    util_path(parent, sizeof parent, "%s/instances", i->d->server_root);
    util_path(rel, sizeof rel, "%s/data", i->name);
    int dirfd = safefs_open_dir(parent, rel);
    if (dirfd < 0)
        return dirfd;
    int rc = safefs_write_at(dirfd, name, content, 0600, i->d->run_uid, i->d->run_gid);
    close(dirfd);
    return rc;
}

static void start_server(inst_t *i)
{
    char hba[1024], ident[256];
    write_hba(hba, sizeof hba, i->d->cfg.postgres.name_prefix);
    int rc = write_datadir_file(i, "pg_hba.conf", hba);
    write_ident(ident, sizeof ident, i->d);
    if (rc == 0)
        rc = write_datadir_file(i, "pg_ident.conf", ident);
    if (rc < 0) {
        clean_up(i);
        inst_start_failed(i, "cannot prepare %s: %s", i->dir, strerror(-rc));
        return;
    }
    int port = util_free_port();
    if (port < 0) {
        clean_up(i);
        inst_start_failed(i, "no free TCP port on 127.0.0.1: %s", strerror(-port));
        return;
    }
    i->port = port;
    snprintf(i->host, sizeof i->host, "127.0.0.1");

    char postgres[CFG_PATH], portstr[16];
    util_path(postgres, sizeof postgres, "%s/postgres", i->bindir);
    snprintf(portstr, sizeof portstr, "%d", port);
    pg_settings_t set;
    pg_settings_for(&i->d->cfg, &set);
    char *args[16 + 2 * PG_SETTINGS_MAX] = {
        postgres, "-D", i->datadir, "-k", i->sockdir, "-p", portstr,
        "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_permissions=0700",
        /* shared memory in files inside the data dir, so a killed server
         * leaves nothing in /dev/shm */
        "-c", "dynamic_shared_memory_type=mmap"};
    int n = 0;
    while (args[n]) /* after the fixed part; the rest of args is NULL */
        n++;
    for (int k = 0; k < set.n; k++) {
        args[n++] = "-c";
        args[n++] = (char *)set.v[k];
    }
    args[n] = NULL;
    rc = spawn(i, &i->proc, args, on_server_exit);
    if (rc < 0) {
        clean_up(i);
        inst_start_failed(i, "cannot start %s: %s", postgres, uv_strerror(rc));
        return;
    }
    inst_rt_set(i, RT_SERVING);
    i->pid = i->proc->pid;
    log_info("process", "started postgres %d (pid %d) on 127.0.0.1:%d", i->major, i->pid, port);
    inst_spawned(i);
}


/* The instance's dir, made in the root-owned instances dir with its
 * socket dir inside, and only then handed to run_as: nothing that user
 * plants can be in it while we work in it. */
static int make_inst_dir(const rt_job_t *j, const char *name)
{
    int parent = safefs_open_dir(j->parent, "");
    if (parent < 0)
        return parent;
    int rc = safefs_mkdir_at(parent, name, 0700, (uid_t)-1, (gid_t)-1);
    int fd = rc < 0 ? rc : openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rc == 0 && fd < 0)
        rc = -errno;
    if (rc == 0)
        rc = safefs_mkdir_at(fd, "sock", 0700, j->uid, j->gid);
    if (rc == 0 && fchown(fd, j->uid, j->gid) < 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    close(parent);
    return rc;
}

/* initdb's dir in the cache (ours alone: nobody else can swap the name),
 * handed to run_as, who runs initdb. */
static int make_tmp_dir(const rt_job_t *j)
{
    int cache = safefs_open_dir(j->cache, "");
    if (cache < 0)
        return cache;
    const char *name = strrchr(j->tmp, '/') + 1;
    int rc = safefs_rm_rf_at(cache, name);
    if (rc == 0)
        rc = safefs_mkdir_at(cache, name, 0700, j->uid, j->gid);
    close(cache);
    return rc;
}

/* A fresh dir for this start (the last start's, if any, goes first), and
 * for initdb when nothing is cached yet. */
static void prepare_work(uv_work_t *req)
{
    rt_job_t *j = req->data;
    kill_procs_in(j->dir, j->uid);
    util_rm_rf(j->dir);
    snprintf(j->what, sizeof j->what, "cannot create %s", j->dir);
    if (util_mkdir_p(j->parent, 0711) < 0 || util_mkdir_p(j->cache, 0711) < 0) {
        j->err = -errno;
        return;
    }
    if ((j->err = make_inst_dir(j, strrchr(j->dir, '/') + 1)) < 0)
        return;
    if ((j->cached = access(j->dst, F_OK) == 0))
        return;
    snprintf(j->what, sizeof j->what, "cannot create %s", j->tmp);
    j->err = make_tmp_dir(j);
}

static void prepare_after(rt_job_t *j)
{
    if (!start_over(j))
        (j->cached ? copy_cache : run_initdb)(j->i);
}

void rt_pg_start(inst_t *i)
{
    dbld_t *d = i->d;
    util_path(i->dir, sizeof i->dir, "%s/instances/%s", d->server_root, i->name);
    util_path(i->datadir, sizeof i->datadir, "%s/data", i->dir);
    util_path(i->sockdir, sizeof i->sockdir, "%s/sock", i->dir);
    inst_rt_set(i, RT_PREPARING);
    rt_job_t *j = job_new(i);
    if (!j) {
        inst_rt_set(i, RT_IDLE);
        inst_start_failed(i, "out of memory");
        return;
    }
    snprintf(j->dir, sizeof j->dir, "%s", i->dir);
    util_path(j->parent, sizeof j->parent, "%s/instances", d->server_root);
    snprintf(j->cache, sizeof j->cache, "%s", d->cfg.cache_dir);
    cache_path(i, j->dst, sizeof j->dst, "/PG_VERSION"); /* the marker of a cached dir */
    cache_tmp_path(i, j->tmp, sizeof j->tmp);
    j->uid = d->run_uid;
    j->gid = d->run_gid;
    job_queue(i, j, prepare_work, prepare_after);
}

void rt_pg_stop(inst_t *i, bool force)
{
    if (i->helper)
        uv_process_kill(i->helper, SIGKILL);
    if (i->rt == RT_IDLE && i->state == INST_STOPPING) {
        clean_up(i); /* stopped while down: what the last server left goes now */
        return;
    }
    if (i->rt != RT_SERVING)
        return;
    if (!force) {
        uv_process_kill(i->proc, SIGINT); /* PostgreSQL's fast shutdown */
        return;
    }
    /* Backends sit in sessions of their own and may be stopped or stuck:
     * the postmaster now; the rest once it exited (clean_up), off the loop. */
    kill(i->pid, SIGKILL);
}

/* ---- leftovers of a crashed daemon ----------------------------------- */

static void wait_gone(pid_t pid)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        poll(&pfd, 1, 10000); /* readable once the process has exited */
        close(fd);
        return;
    }
    for (int n = 0; n < 1000 && kill(pid, 0) == 0; n++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Kill every process of uid running inside dir (a postmaster's and its
 * backends' cwd is their data dir), wait until they are gone; how many
 * there were. Backends can outlive their postmaster for a moment, still
 * attached to its shared memory. Matching on cwd, not on a pid from a
 * file, never hits a recycled pid. Only dir's parent is resolved: dir
 * itself may be run_as's to replace with a link (to "/", say). Blocks: at
 * start-up, or on the thread pool. */
static int kill_procs_in(const char *dir, uid_t uid)
{
    char parent[CFG_PATH], real[PATH_MAX + 256];
    const char *slash = strrchr(dir, '/');
    if (!slash || util_path(parent, sizeof parent, "%.*s", (int)(slash - dir), dir) < 0 ||
        !realpath(parent[0] ? parent : "/", real))
        return 0;
    size_t rlen = strlen(real);
    snprintf(real + rlen, sizeof real - rlen, "/%s", slash + 1);
    rlen = strlen(real);
    DIR *proc = opendir("/proc");
    if (!proc)
        return 0;
    pid_t victims[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(proc)) && n < (int)(sizeof victims / sizeof victims[0])) {
        pid_t pid = (pid_t)atoi(e->d_name);
        char link[64], cwd[PATH_MAX];
        struct stat st;
        if (pid <= 1)
            continue;
        snprintf(link, sizeof link, "/proc/%d", (int)pid);
        if (stat(link, &st) < 0 || st.st_uid != uid)
            continue;
        snprintf(link, sizeof link, "/proc/%d/cwd", (int)pid);
        ssize_t len = readlink(link, cwd, sizeof cwd - 1);
        if (len <= 0)
            continue;
        cwd[len] = '\0';
        bool inside = strncmp(cwd, real, rlen) == 0 && (cwd[rlen] == '\0' || cwd[rlen] == '/');
        if (inside && kill(pid, SIGKILL) == 0)
            victims[n++] = pid;
    }
    closedir(proc);
    for (int k = 0; k < n; k++)
        wait_gone(victims[k]);
    return n;
}

/* A killed postmaster leaves its (tiny) SysV segment behind; remove it if it
 * is still the one its pid file names and nobody is attached. */
static void remove_segment(long key, long id, uid_t uid)
{
    struct shmid_ds ds;
    if (id < 0 || shmctl((int)id, IPC_STAT, &ds) < 0)
        return;
    /* The file is run_as's to write: only a segment of that user's goes. */
    if ((long)ds.shm_perm.__key == key && ds.shm_nattch == 0 && ds.shm_perm.cuid == uid)
        shmctl((int)id, IPC_RMID, NULL);
}

static void kill_leftover(const char *dir, const char *name, uid_t uid)
{
    char instdir[CFG_PATH], rel[CFG_PATH];
    util_path(instdir, sizeof instdir, "%s/%s", dir, name);
    int killed = kill_procs_in(instdir, uid);
    if (killed)
        log_warn("process", "killed %d server processes left by a previous dbleased in %s",
                 killed, instdir);
    util_path(rel, sizeof rel, "%s/data", name);
    int dirfd = safefs_open_dir(dir, rel);
    int fd = dirfd < 0 ? -1 : safefs_open_regular_at(dirfd, "postmaster.pid");
    if (dirfd >= 0)
        close(dirfd);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return;
    }
    /* postmaster.pid, line 7: the SysV segment as "key id". */
    long shm_key = 0, shm_id = -1;
    char line[256];
    for (int n = 1; fgets(line, sizeof line, f); n++) {
        if (n == 7 && sscanf(line, "%ld %ld", &shm_key, &shm_id) != 2)
            shm_id = -1;
    }
    fclose(f);
    remove_segment(shm_key, shm_id, uid);
}

void rt_pg_cleanup_leftovers(const char *server_root, uid_t uid)
{
    char dir[CFG_PATH];
    util_path(dir, sizeof dir, "%s/instances", server_root);
    DIR *dh = opendir(dir);
    if (!dh)
        return;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (e->d_name[0] == '.')
            continue;
        kill_leftover(dir, e->d_name, uid);
    }
    closedir(dh);
    int rc = util_rm_rf(dir);
    if (rc < 0)
        log_warn("process", "cannot remove %s: %s", dir, strerror(-rc));
}

int rt_exec_child(int argc, char **argv)
{
    if (argc < 7)
        return 2;
    pid_t parent = (pid_t)atoi(argv[2]);
    uid_t uid = (uid_t)strtoul(argv[3], NULL, 10);
    gid_t gid = (gid_t)strtoul(argv[4], NULL, 10);
    /* Drop privileges here rather than in libuv: we are still root while
     * the kernel loads us, so our own binary may sit anywhere. */
    if (uid != getuid() && (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)) {
        fprintf(stderr, "dbleased: cannot switch to uid %u: %s\n", (unsigned)uid,
                strerror(errno));
        return 1;
    }
    /* After the uid change, which would clear it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        return 1;
    if (getppid() != parent) /* the daemon died before we got here */
        return 1;
    /* As run_as: the log is in a dir that user owns, so whatever is there
     * is theirs already. Still no link: it would only ever be a trap. */
    int log = open(argv[5], O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
    if (log < 0) {
        fprintf(stderr, "dbleased: cannot open %s as uid %u: %s\n", argv[5], (unsigned)uid,
                strerror(errno));
        return 1;
    }
    if (dup2(log, 1) < 0 || dup2(log, 2) < 0)
        return 1;
    execv(argv[6], argv + 6);
    fprintf(stderr, "dbleased: cannot exec %s: %s\n", argv[6], strerror(errno));
    return 127;
}
