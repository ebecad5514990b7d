/* dbleased: command line, start-up checks, and the event loop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "config.h"
#include "dbl_proto.h"
#include "dbl_version.h"
#include "dk_client.h"
#include "dbld.h"
#include "inst.h"
#include "lease.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "pg_engine.h"
#include "rd_server.h"
#include "reload.h"
#include "rt_process.h"
#include "runas.h"
#include "safefs.h"
#include "server.h"
#include "tpl.h"
#include "util.h"

#define EX_USAGE 64
#define EX_CONFIG 78
#define JANITOR_MS 100

typedef struct args {
    const char *config, *socket, *state_dir;
    bool foreground, check_config;
} args_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dbleased [--config FILE] [--socket PATH] [--state-dir DIR] [--foreground]\n"
            "                [--check-config] [--help] [--version]\n"
            "\n"
            "Keeps a warm pool of PostgreSQL databases and leases them over a Unix socket.\n"
            "  --config FILE     INI configuration (every key has a built-in default)\n"
            "  --socket PATH     listen here (default $DBLEASE_SOCKET, $XDG_RUNTIME_DIR/dblease/\n"
            "                    dblease.sock, /run/dblease/dblease.sock as root, else\n"
            "                    /tmp/dblease-$UID/dblease.sock)\n"
            "  --state-dir DIR   data dirs, caches and locks (default: <socket dir>/state;\n"
            "                    /dev/shm/dblease-$UID/state beside /tmp/dblease-$UID)\n"
            "  --foreground      stay attached and log to stderr; without it dbleased\n"
            "                    returns once the first database is ready\n"
            "  --check-config    validate the configuration, print it, and exit\n");
}

static int parse_args(int argc, char **argv, args_t *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"socket", required_argument, NULL, 's'},
        {"state-dir", required_argument, NULL, 'd'}, {"foreground", no_argument, NULL, 'f'},
        {"check-config", no_argument, NULL, 'C'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:s:d:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a->config = optarg; break;
        case 's': a->socket = optarg; break;
        case 'd': a->state_dir = optarg; break;
        case 'f': a->foreground = true; break;
        case 'C': a->check_config = true; break;
        case 'h': usage(stdout); exit(0);
        case 'V': printf("dbleased %s (protocol %d)\n", DBL_VERSION, DBL_PROTO_VERSION); exit(0);
        default:
            fprintf(stderr, "%sdbleased: try 'dbleased --help'\n", log_journal_prefix(LOG_ERROR));
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%sdbleased: unexpected argument '%s'; try 'dbleased --help'\n",
                log_journal_prefix(LOG_ERROR), argv[optind]);
        return -1;
    }
    return 0;
}

/* /dev/shm for the default state dir of a user without $XDG_RUNTIME_DIR,
 * when it is a tmpfs we may write with room for a few servers (a
 * container's is often 64 MiB); NULL otherwise. */
static const char *roomy_tmpfs(void)
{
    struct statfs st;
    if (statfs("/dev/shm", &st) < 0 || st.f_type != TMPFS_MAGIC || access("/dev/shm", W_OK) < 0)
        return NULL;
    return (uint64_t)st.f_bavail * (uint64_t)st.f_bsize >= (1ull << 30) ? "/dev/shm" : NULL;
}

/* Defaults that depend on the environment, then the command line. */
static int resolve_config(dbld_t *d, const args_t *a, char *err, size_t errlen)
{
    config_t *cfg = &d->cfg;
    config_defaults(cfg);
    if (a->config && config_load(cfg, a->config, err, errlen) < 0)
        return -1;
    if (a->config && !realpath(a->config, d->config_path))
        snprintf(d->config_path, sizeof d->config_path, "%s", a->config);
    if (a->socket)
        snprintf(cfg->socket, sizeof cfg->socket, "%s", a->socket);
    if (a->state_dir)
        snprintf(cfg->state_dir, sizeof cfg->state_dir, "%s", a->state_dir);
    if (!cfg->socket[0] && !dbl_default_socket_path(cfg->socket, sizeof cfg->socket, getuid())) {
        snprintf(err, errlen, "the default socket path is too long; pass --socket");
        return -1;
    }
    if (!cfg->state_dir[0] && !dbl_default_state_dir(cfg->state_dir, sizeof cfg->state_dir,
                                                      cfg->socket, getuid(), roomy_tmpfs())) {
        snprintf(err, errlen, "the default state dir path is too long; pass --state-dir");
        return -1;
    }
    if (cfg->state_dir[0] != '/') {
        char cwd[CFG_PATH], rel[CFG_PATH];
        snprintf(rel, sizeof rel, "%s", cfg->state_dir);
        if (!getcwd(cwd, sizeof cwd) ||
            util_path(cfg->state_dir, sizeof cfg->state_dir, "%s/%s", cwd, rel) < 0) {
            snprintf(err, errlen, "cannot make --state-dir absolute; pass an absolute path");
            return -1;
        }
    }
    return config_validate(cfg, err, errlen);
}

/* The state dir holds our lock, our log and the servers' dirs: used only
 * when it is a directory of ours that nobody else could have made or can
 * write (a squatted /tmp/dblease-$UID or /dev/shm/dblease-$UID is refused,
 * safefs.h), then 0711 so that run_as traverses it. */
static int lock_state_dir(dbld_t *d, char *err, size_t errlen)
{
    if (safefs_own_dir(d->cfg.state_dir, 0711, (gid_t)-1, "state directory", "--state-dir", err,
                       errlen) < 0)
        return -1;
    if (chmod(d->cfg.state_dir, 0711) < 0) {
        snprintf(err, errlen, "cannot chmod 0711 the state dir %s: %s", d->cfg.state_dir,
                 strerror(errno));
        return -1;
    }
    char path[CFG_PATH];
    util_path(path, sizeof path, "%s/dbleased.lock", d->cfg.state_dir);
    d->lock_fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (d->lock_fd < 0 || flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen,
                 "state dir %s is in use by another dbleased (%s); stop it or pass another "
                 "--state-dir",
                 d->cfg.state_dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* After daemonising: the pid that holds the lock is the one to signal. */
static void record_pid(dbld_t *d)
{
    char pid[32];
    snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(d->lock_fd, 0) < 0 || pwrite(d->lock_fd, pid, strlen(pid), 0) < 0)
        log_warn("daemon", "cannot record our pid in the state dir's lock file");
}

/* Redis is optional, and a Redis problem never keeps PostgreSQL from
 * serving: without redis-server (none installed, or a [redis] bin_dir
 * without it) the Redis kind is failed, redis leases and status say why. */
static void find_redis(dbld_t *d)
{
    char why[sizeof d->redis_error - CFG_PATH - 32], where[CFG_PATH + 32];
    d->redis_error[0] = '\0';
    if (strcmp(d->cfg.redis.runtime, "docker") == 0) { /* the image has it */
        snprintf(d->redis_bin, sizeof d->redis_bin, "redis-server");
        return;
    }
    if (rsrv_find_binary(d->cfg.redis.bin_dir, d->redis_bin, sizeof d->redis_bin, why,
                         sizeof why) == 0)
        return;
    d->redis_bin[0] = '\0';
    snprintf(d->redis_error, sizeof d->redis_error, "%s%s",
             config_where(&d->cfg, "redis", "bin_dir", where, sizeof where), why);
}

/* What start-up checks beyond the file, run by --check-config too so that
 * ExecStartPre fails where start-up would: the user servers run as, the
 * PostgreSQL binaries, the server and cache dirs. Errors name the key's
 * FILE:LINE. */
static int startup_checks(dbld_t *d, char *bindir, size_t len, int *major, char *err,
                          size_t errlen)
{
    char why[2 * CFG_PATH], where[CFG_PATH + 32];
    const char *section = "daemon", *key = "run_as";
    int rc = runas_resolve(d, why, sizeof why);
    if (rc == 0) {
        section = "postgres";
        key = "bin_dir";
        rc = rt_pg_find_bins(d->cfg.postgres.bin_dir, bindir, len, major, why, sizeof why);
    }
    if (rc == 0) {
        /* With a state dir run_as cannot reach, this makes the (empty)
         * fallback dir; --check-config leaves it, as a running daemon of the
         * same state dir (systemctl reload checks first) may be using it. */
        section = "daemon";
        key = "cache_dir";
        rc = runas_pick_server_root(d, why, sizeof why);
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s%s", config_where(&d->cfg, section, key, where, sizeof where),
                 why);
        return -1;
    }
    find_redis(d);
    return 0;
}

/* --check-config: the configuration as the daemon will run it (resolved
 * user, binaries and dirs), and warnings for what start-up only reports. */
static int check_config(dbld_t *d, const char *bindir)
{
    static config_t shown;
    char err[3 * CFG_PATH];
    shown = d->cfg;
    snprintf(shown.run_as, sizeof shown.run_as, "%s", d->run_user); /* ourselves unless root */
    snprintf(shown.postgres.bin_dir, sizeof shown.postgres.bin_dir, "%s", bindir);
    if (d->redis_bin[0] && d->redis_bin[0] == '/') {
        const char *slash = strrchr(d->redis_bin, '/');
        snprintf(shown.redis.bin_dir, sizeof shown.redis.bin_dir, "%.*s",
                 (int)(slash - d->redis_bin), d->redis_bin);
    }
    config_dump(&shown, stdout);
    /* What start-up reads besides the file: a template's sql_dir. */
    if (config_check_paths(&d->cfg, err, sizeof err) < 0 ||
        tpl_check_sql_dirs(&d->cfg, err, sizeof err) < 0) {
        fprintf(stderr, "%sdbleased: %s\n", log_journal_prefix(LOG_ERROR), err);
        return EX_CONFIG;
    }
    if (d->redis_error[0])
        fprintf(stderr, "%sdbleased: warning: %s; PostgreSQL is served, redis leases fail\n",
                log_journal_prefix(LOG_WARN), d->redis_error);
    fprintf(stderr, "dbleased: configuration is valid\n");
    return 0;
}

/* ---- daemonising: the parent returns once the first lease can be served */

static int ready_fd = -1;

static void tell_parent(const char *msg)
{
    if (ready_fd < 0)
        return;
    ssize_t w = write(ready_fd, msg, strlen(msg));
    (void)w;
    close(ready_fd);
    ready_fd = -1;
}

static int daemonize(const char *state_dir)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(p[1]);
        char buf[1024];
        ssize_t n, len = 0;
        while (len < (ssize_t)sizeof buf - 1 &&
               ((n = read(p[0], buf + len, sizeof buf - 1 - (size_t)len)) > 0 ||
                (n < 0 && errno == EINTR)))
            len += n > 0 ? n : 0;
        buf[len] = '\0';
        if (strcmp(buf, "ok") == 0)
            _exit(0);
        fprintf(stderr, "%sdbleased: %s\n", log_journal_prefix(LOG_ERROR),
                len ? buf
                    : "exited during start-up; run it with "
                      "--foreground to see why");
        _exit(1);
    }
    close(p[0]);
    ready_fd = p[1];
    setsid();
    char log[CFG_PATH];
    util_path(log, sizeof log, "%s/dbleased.log", state_dir);
    int null = open("/dev/null", O_RDWR);
    int lf = open(log, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (null >= 0)
        dup2(null, 0);
    if (lf >= 0) {
        dup2(lf, 1);
        dup2(lf, 2);
        close(lf);
    }
    if (null > 2)
        close(null);
    return 0;
}

/* ---- the loop -------------------------------------------------------- */

static void on_signal(uv_signal_t *h, int signum)
{
    dbld_t *d = h->data;
    if (signum == SIGHUP) {
        log_info("daemon", "SIGHUP: reloading the configuration");
        reload_config(d);
        return;
    }
    if (signum == SIGTERM)
        dbld_drain(d, "SIGTERM");
    else
        dbld_shutdown(d, "SIGINT");
}

static void on_janitor(uv_timer_t *t)
{
    dbld_t *d = t->data;
    if (dbld_stopping(d)) {
        dbld_shutdown_progress(d);
        return;
    }
    dbld_drain_progress(d);
    notify_tick(d);
    lease_reap_expired(d, util_unix_now());
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
        pool_refill(list_entry(it, tpl_t, node)->pool, util_now_ms());
    tpl_janitor(d);
    tpl_t *def = tpl_current(d, "postgres", "default");
    if (ready_fd >= 0 && def && pool_count(def->pool, SLOT_READY) > 0)
        tell_parent("ok");
    /* A first failure may be a port taken between our check and the bind:
     * the restart gets another. Report when retrying does not help. */
    if (ready_fd >= 0 && d->pg->state == INST_FAILED && d->pg->restarts >= 2) {
        char msg[900];
        snprintf(msg, sizeof msg, "PostgreSQL did not start: %s", d->pg->last_error);
        tell_parent(msg);
        /* The parent reported failure and exited: nobody expects us now. */
        d->exit_code = 1;
        dbld_shutdown(d, "start-up failed");
    }
}

static void on_rescan(uv_timer_t *t)
{
    tpl_rescan(t->data);
}

static void on_sql_dir_event(uv_fs_event_t *h, const char *file, int events, int status)
{
    dbld_t *d = h->data;
    /* Editors write in bursts (temp file, rename): re-hash once it settles. */
    uv_timer_start(&d->rescan, on_rescan, 200, 0);
}

/* A changed migration is noticed without a SIGHUP (inotify on sql_dir). */
static void watch_sql_dirs(dbld_t *d)
{
    uv_timer_init(d->loop, &d->rescan);
    d->rescan.data = d;
    for (int k = 0; k < d->cfg.n_templates; k++) {
        const char *dir = d->cfg.templates[k].sql_dir;
        if (!dir[0])
            continue;
        uv_fs_event_t *h = &d->sql_watch[d->n_watch];
        uv_fs_event_init(d->loop, h);
        h->data = d;
        d->n_watch++;
        int rc = uv_fs_event_start(h, on_sql_dir_event, dir, 0);
        if (rc < 0)
            log_warn("tpl", "cannot watch %s (%s): send SIGHUP after changing it", dir,
                     uv_strerror(rc));
    }
}

/* The instance reports through these (it never calls the daemon itself). */
static void on_pg_running(void *ud, inst_t *i)
{
    dbld_inst_running(ud, i);
}

static void on_pg_down(void *ud, inst_t *i)
{
    dbld_inst_down(ud, i);
}

static void on_pg_stopped(void *ud, inst_t *i)
{
    dbld_inst_stopped(ud, i);
}

static int run(dbld_t *d, const char *bindir, int major, char *err, size_t errlen)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    d->loop = &loop;
    list_init(&d->sessions);
    list_init(&d->leases);
    list_init(&d->dead_leases);
    pool_limits_init(&d->limits, d->cfg.max_databases);
    d->started_at = util_unix_now();
    if (server_listen(d, err, errlen) < 0) {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return -1;
    }
    bool pg_dk = strcmp(d->cfg.postgres.runtime, "docker") == 0;
    bool rd_dk = strcmp(d->cfg.redis.runtime, "docker") == 0;
    if (pg_dk || rd_dk) {
        /* One engine for both: the section that names it, else [postgres]. */
        const kind_cfg_t *k = pg_dk && (d->cfg.postgres.docker_host[0] || !rd_dk)
                                  ? &d->cfg.postgres
                                  : &d->cfg.redis;
        const char *why = NULL;
        dk_endpoint_t ep;
        if (dk_endpoint_resolve(&ep, k->docker_host, k->docker_tls_verify, k->docker_cert_path,
                                &why) == 0)
            d->dk = dk_new(&loop, &ep, &why);
        snprintf(d->docker_host, sizeof d->docker_host, "%s", ep.host);
        if (!d->dk) {
            snprintf(err, errlen, "docker_host %s: %s", d->docker_host, why);
            server_close(d);
            uv_run(&loop, UV_RUN_DEFAULT);
            uv_loop_close(&loop);
            return -1;
        }
        log_info("daemon", "containers through %s", d->docker_host);
        /* nothing outlives a dead daemon (dk_reaper.h, dk_beacon.h) */
        dk_reap_start(d->dk, pg_dk ? d->cfg.postgres.image : d->cfg.redis.image,
                      k->docker_heartbeat_s);
    }
    if (metrics_start(d, err, errlen) < 0) {
        server_close(d);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return -1;
    }
    inst_events_t pg_events = {on_pg_running, on_pg_down, on_pg_stopped, d};
    d->pg = inst_new(d, bindir, major, &pg_events);
    list_init(&d->templates);
    if (tpl_setup(d, err, errlen) < 0)
        return -1;
    if (dbld_redis_setup(d) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    watch_sql_dirs(d);
    dbld_reaper_start(d);
    uv_signal_init(&loop, &d->sig_term);
    uv_signal_init(&loop, &d->sig_int);
    uv_signal_init(&loop, &d->sig_hup);
    d->sig_term.data = d->sig_int.data = d->sig_hup.data = d;
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_signal, SIGINT);
    uv_signal_start(&d->sig_hup, on_signal, SIGHUP);
    uv_timer_init(&loop, &d->janitor);
    d->janitor.data = d;
    uv_timer_start(&d->janitor, on_janitor, JANITOR_MS, JANITOR_MS);
    inst_start(d->pg);
    uv_run(&loop, UV_RUN_DEFAULT);
    lease_reap_dead(d); /* any a last close callback ended */
    int rc = uv_loop_close(&loop);
    if (rc != 0)
        log_warn("daemon", "event loop closed with handles open: %s", uv_strerror(rc));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--exec-child") == 0)
        return rt_exec_child(argc, argv);

    args_t a = {0};
    log_detect_journal(); /* under systemd, stderr is the journal */
    if (parse_args(argc, argv, &a) < 0)
        return EX_USAGE;
    static dbld_t d; /* large (paths); lives for the whole run */
    d.uid = getuid();
    d.lock_fd = -1;
    char err[3 * CFG_PATH];
    if (resolve_config(&d, &a, err, sizeof err) < 0) {
        fprintf(stderr, "%sdbleased: %s\n", log_journal_prefix(LOG_ERROR), err);
        return EX_CONFIG;
    }
    log_level_t level = LOG_INFO;
    log_level_parse(d.cfg.log_level, &level);
    log_set_level(level);
    /* The state dir first: nothing is made in it (the servers' fallback
     * root is picked below) before it is known ours. --check-config takes
     * no lock: the daemon it checks for may be running. */
    if (!a.check_config && lock_state_dir(&d, err, sizeof err) < 0) {
        fprintf(stderr, "%sdbleased: %s\n", log_journal_prefix(LOG_ERROR), err);
        return 1;
    }
    char bindir[CFG_PATH];
    int major = 0;
    if (startup_checks(&d, bindir, sizeof bindir, &major, err, sizeof err) < 0) {
        fprintf(stderr, "%sdbleased: %s\n", log_journal_prefix(LOG_ERROR), err);
        return EX_CONFIG;
    }
    if (a.check_config)
        return check_config(&d, bindir);
    signal(SIGPIPE, SIG_IGN);

    ssize_t n = readlink("/proc/self/exe", d.self_exe, sizeof d.self_exe - 1);
    if (n <= 0) {
        fprintf(stderr, "%sdbleased: cannot find our own executable: %s\n",
                log_journal_prefix(LOG_ERROR), strerror(errno));
        return 1;
    }
    d.self_exe[n] = '\0';
    if (!a.foreground && daemonize(d.cfg.state_dir) < 0) {
        fprintf(stderr, "%sdbleased: cannot daemonise: %s\n", log_journal_prefix(LOG_ERROR),
                strerror(errno));
        return 1;
    }
    log_detect_journal(); /* daemonising sent stderr to our log file */
    record_pid(&d);
    log_info("daemon",
             "dbleased %s starting: socket %s, state %s, servers as %s, postgres %d "
             "from %s",
             DBL_VERSION, d.cfg.socket, d.cfg.state_dir, d.run_user, major, bindir);
    if (strcmp(d.server_root, d.cfg.state_dir) != 0)
        log_info("daemon", "user %s cannot reach the state dir, so server data lives in %s",
                 d.run_user, d.server_root);
    if (d.redis_error[0])
        log_error("daemon", "redis leases fail until this is fixed: %s", d.redis_error);
    rt_pg_cleanup_leftovers(d.server_root, d.run_uid);
    int rc = run(&d, bindir, major, err, sizeof err);
    if (strcmp(d.server_root, d.cfg.state_dir) != 0)
        util_rm_rf(d.server_root); /* a fallback dir of ours: nothing in it outlives us */
    if (rc < 0) {
        log_error("daemon", "%s", err);
        tell_parent(err);
    }
    tell_parent("stopped before the first database was ready; see the log");
    close(d.lock_fd);
    return rc < 0 ? 1 : d.exit_code;
}
