#include "rd_server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dk_container.h"
#include "fsm.h"
#include "fs_bg.h"
#include "log.h"
#include "proc.h"
#include "rt_docker.h"
#include "rt_logs.h"
#include "safefs.h"
#include "util.h"

#define CONNECT_RETRY_MS 10 /* first retry; doubles up to: */
#define CONNECT_RETRY_MAX_MS 50
#define START_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS 5000
#define RD_PORT 6379 /* inside a container whose port is published */

static const char *const rsrv_state_names[] = {"starting", "running", "killing", "stopping",
                                               "exited"};
static const unsigned rsrv_allowed[RSRV__COUNT] = {
    [RSRV_STARTING] = FSM_TO(RSRV_RUNNING) | FSM_TO(RSRV_KILLING) | FSM_TO(RSRV_STOPPING) |
                      FSM_TO(RSRV_EXITED),
    [RSRV_RUNNING] = FSM_TO(RSRV_KILLING) | FSM_TO(RSRV_STOPPING) | FSM_TO(RSRV_EXITED),
    [RSRV_KILLING] = FSM_TO(RSRV_EXITED),
    [RSRV_STOPPING] = FSM_TO(RSRV_EXITED),
};
static const fsm_def_t rsrv_fsm = {"redis", RSRV__COUNT, rsrv_state_names, rsrv_allowed};

static void set_state(rsrv_t *r, rsrv_state_t to)
{
    r->state = fsm_step(&rsrv_fsm, (int)r->state, (int)to, r->name);
}

int rsrv_find_binary(const char *bin_dir, char *out, size_t len, char *err, size_t errlen)
{
    if (bin_dir && *bin_dir) {
        if (util_path(out, len, "%s/redis-server", bin_dir) == 0 && access(out, X_OK) == 0)
            return 0;
        snprintf(err, errlen, "[redis] bin_dir = %s has no redis-server", bin_dir);
        return -1;
    }
    const char *path = getenv("PATH");
    char buf[CFG_PATH];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    for (char *save, *dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        if (util_path(out, len, "%s/redis-server", dir) == 0 && access(out, X_OK) == 0)
            return 0;
    }
    snprintf(err, errlen,
             "redis-server not found in PATH; install it (apt-get install redis-server) or set "
             "[redis] bin_dir");
    return -1;
}

static void handle_closed(void *data)
{
    rsrv_t *r = data;
    if (--r->handles == 0)
        free(r);
}

static void timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

/* The end: tell the owner once, then let the handles go. */
static void gone(rsrv_t *r, rsrv_event_t ev, const char *msg)
{
    uv_timer_stop(&r->timer);
    set_state(r, RSRV_EXITED);
    rdc_t *admin = r->admin;
    r->admin = NULL;
    rdc_close(admin); /* pending commands fail now, before the owner hears */
    if (r->dir[0] && ev == RSRV_DIED && r->kept_log[0]) {
        char logs[CFG_PATH];
        util_path(logs, sizeof logs, "%s/logs", r->d->cfg.state_dir);
        fs_bg_keep_log_rm_rf(r->d->loop, r->dir, logs, r->kept_log, r->d->cfg.dead_logs_kept);
    } else if (r->dir[0]) {
        fs_bg_rm_rf(r->d->loop, r->dir);
    }
    rsrv_cb cb = r->cb;
    r->cb = NULL;
    if (cb)
        cb(r, ev, msg, r->ud);
    uv_close((uv_handle_t *)&r->timer, timer_closed);
}

/* The process or container is gone, asked to or not. Unasked, a process
 * server's last words (a small bounded read of what it just wrote, here
 * so they go out with the news) and where its log is kept go with it, as
 * a PostgreSQL server's do. */
static void exited(rsrv_t *r, int64_t status, int sig)
{
    char msg[1024], said[512] = "";
    bool asked = r->state == RSRV_STOPPING;
    bool keep = !asked && r->dir[0] && r->d->cfg.dead_logs_kept > 0;
    if (!asked && r->dir[0])
        rt_log_evidence(r->dir, said, sizeof said);
    if (keep)
        rt_log_name(r->kept_log, sizeof r->kept_log, r->name);
    snprintf(msg, sizeof msg, "redis-server %s exited (status %lld, signal %d)%s%.400s%s%.200s%s%s",
             r->name, (long long)status, sig, said[0] ? ": " : "", said,
             keep ? "; see " : "", keep ? r->d->cfg.state_dir : "", keep ? "/logs/" : "",
             keep ? r->kept_log : "");
    if (!asked)
        log_warn("redis", "%s", msg);
    gone(r, asked ? RSRV_GONE : RSRV_DIED, msg);
    handle_closed(r);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    rsrv_t *r = p->data;
    r->proc = NULL;
    r->pid = 0;
    proc_close(p, NULL);
    exited(r, status, sig);
}

static void kill_lost(rsrv_t *r);

/* Published on a bridge network: where the engine put the port. */
static void on_inspected(void *ud, long status, json_object *body, const char *err)
{
    rsrv_t *r = ud;
    /* Gone meanwhile (its removal reported), or the engine went away. */
    if (status != -ECANCELED && r->state == RSRV_STARTING && r->container) {
        char why[512];
        int port = rt_dk_published_port(status, body, err, RD_PORT, why, sizeof why);
        if (port < 0) {
            log_error("redis", "%s: %s", r->name, why);
            kill_lost(r);
        } else {
            rt_dk_reach_host(r->d, &r->d->cfg.redis, r->host, sizeof r->host);
            r->port = port; /* try_connect goes on from here */
        }
    }
    handle_closed(r); /* the request held r */
}

static void on_container_started(void *ud, int err, const char *msg)
{
    rsrv_t *r = ud;
    if (err) {
        log_error("redis", "%s: container from %s: %s", r->name, r->d->cfg.redis.image, msg);
        return; /* gone follows */
    }
    if (r->port != 0)
        return; /* host network: try_connect notices when it accepts */
    r->handles++; /* r outlives the request, whatever ends first */
    if (rt_dk_inspect(r->d, dkc_id(r->container), on_inspected, r) < 0) {
        r->handles--;
        log_error("redis", "%s: cannot reach the container engine", r->name);
        kill_lost(r);
    }
}

static void on_container_gone(void *ud, int64_t code)
{
    rsrv_t *r = ud;
    r->container = NULL;
    exited(r, code, 0);
}

static void kill_it(rsrv_t *r, int sig)
{
    if (r->proc)
        uv_process_kill(r->proc, sig);
    else if (r->container)
        dkc_remove(r->container); /* a container stops by going */
}

static void stop_deadline(uv_timer_t *t);

/* Not asked to stop, but beyond use (hung, unreachable, never up): its
 * exit then takes the usual path, and the pool replaces it. */
static void kill_lost(rsrv_t *r)
{
    set_state(r, RSRV_KILLING);
    kill_it(r, SIGKILL);
    uv_timer_start(&r->timer, stop_deadline, STOP_TIMEOUT_MS, 0);
    rdc_t *admin = r->admin;
    r->admin = NULL;
    rdc_close(admin); /* its commands fail: their owners find us going */
}

static void try_connect(uv_timer_t *t);

/* Soon, then less often: a container may take seconds to listen. */
static void retry_connect(rsrv_t *r)
{
    r->retry_ms = r->retry_ms ? r->retry_ms * 2 : CONNECT_RETRY_MS;
    if (r->retry_ms > CONNECT_RETRY_MAX_MS)
        r->retry_ms = CONNECT_RETRY_MAX_MS;
    uv_timer_start(&r->timer, try_connect, r->retry_ms, 0);
}

static void on_pong(void *ud, int err, const char *msg, const redisReply *reply)
{
    (void)err, (void)msg, (void)reply;
    rsrv_t *r = ud;
    r->pings--;
}

/* A server that hangs (SIGSTOP, a runaway script) does not answer the PING
 * within the command deadline: the admin connection reports it lost. */
static void on_health(uv_timer_t *t)
{
    rsrv_t *r = t->data;
    const char *ping[] = {"PING"};
    if (r->state == RSRV_RUNNING && r->pings == 0 && rsrv_command(r, 1, ping, on_pong, r) == 0)
        r->pings++;
}

static void on_admin(rdc_t *c, int err, const char *msg, void *ud)
{
    rsrv_t *r = ud;
    if (c != r->admin)
        return;
    if (err == 0) {
        set_state(r, RSRV_RUNNING);
        uint64_t every = (uint64_t)r->d->cfg.health_interval_ms;
        uv_timer_start(&r->timer, on_health, every, every);
        if (r->cb)
            r->cb(r, RSRV_UP, NULL, r->ud);
        return;
    }
    log_debug("redis", "%s: admin connection: %s", r->name, msg);
    if (r->state == RSRV_RUNNING) { /* hung or dying: the exit tells which */
        log_error("redis", "%s: admin connection lost (%s); killing it", r->name, msg);
        kill_lost(r);
        return;
    }
    r->admin = NULL;
    rdc_close(c);
    if (r->state != RSRV_STARTING)
        return;
    if (util_now_ms() > r->deadline_ms) {
        log_error("redis", "%s did not accept connections in time: %s; killing it", r->name, msg);
        kill_lost(r);
        return;
    }
    retry_connect(r);
}

/* A refused or unanswered connection is reported (rd_uv.h never drops a
 * socket error, and every attempt has a deadline): just try until it is
 * up or the start deadline passes. */
static void try_connect(uv_timer_t *t)
{
    rsrv_t *r = t->data;
    if (r->state != RSRV_STARTING)
        return;
    if (util_now_ms() > r->deadline_ms) {
        log_error("redis", "%s did not accept connections in time; killing it", r->name);
        kill_lost(r);
        return;
    }
    int deadline = r->d->cfg.health_timeout_ms;
    rdc_opts_t o = {.name = r->name,
                    .loop = r->d->loop,
                    .user = "dbladmin",
                    .password = r->admin_password,
                    .connect_timeout_ms = deadline,
                    .command_timeout_ms = deadline};
    if (r->container) {
        if (r->port == 0) { /* published: the engine has not said where yet */
            retry_connect(r);
            return;
        }
        o.host = r->host;
        o.port = r->port;
    } else {
        o.path = r->sock;
    }
    r->admin = rdc_connect(&o, on_admin, r);
    if (!r->admin)
        retry_connect(r);
}

/* What the "default" user (every lease) may not do, beyond @admin:
 * MIGRATE connects from the server to any host and port and keeps the
 * socket cached; SCRIPT DEBUG YES forks a copy of the server that serves
 * the debugging client outside maxmemory and after its lease. Everything
 * else it can change is connection state (ended with its connections),
 * keys, scripts, functions or statistics: the reset clears each. */
static const char *const lease_denied[] = {"-migrate", "-script|debug"};
/* On a server leases share (db isolation), libraries are one namespace for
 * all and no reset may flush them under another holder: none can be made. */
static const char *const shared_denied[] = {"-function|load", "-function|restore",
                                            "-function|delete", "-function|flush"};

/* The lease user's rules after its password, space-separated. */
static void lease_rules(const rsrv_conf_t *c, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "~* &* +@all -@admin");
    for (size_t k = 0; k < sizeof lease_denied / sizeof lease_denied[0] && n < len; k++)
        n += (size_t)snprintf(out + n, len - n, " %s", lease_denied[k]);
    for (size_t k = 0; c->shared && k < sizeof shared_denied / sizeof shared_denied[0] && n < len;
         k++)
        n += (size_t)snprintf(out + n, len - n, " %s", shared_denied[k]);
}

/* noeviction: a full server answers writes with an OOM error rather than
 * silently dropping a holder's keys. */
static int write_conf(rsrv_t *r, int dirfd, const rsrv_conf_t *c, char *path, size_t len)
{
    char conf[2 * CFG_PATH + 1024], rules[256];
    lease_rules(c, rules, sizeof rules);
    snprintf(conf, sizeof conf,
             "# Written by dbleased.\n"
             "port %d\nbind 127.0.0.1\nprotected-mode no\n"
             "unixsocket %s\nunixsocketperm 700\n"
             "dir %s\ndaemonize no\nlogfile \"\"\nloglevel warning\n"
             "save \"\"\nappendonly no\ndatabases %d\n"
             "maxmemory %lld\nmaxmemory-policy noeviction\n"
             "user default on >%s %s\n"
             "user dbladmin on >%s ~* &* +@all\n",
             r->port, r->sock, r->dir, c->databases, c->maxmemory, c->password, rules,
             r->admin_password);
    if (util_path(path, len, "%s/redis.conf", r->dir) < 0)
        return -ENAMETOOLONG;
    return safefs_write_at(dirfd, "redis.conf", conf, 0600, r->d->run_uid, r->d->run_gid);
}

/* The server's dir, made root-owned in the root-owned instances dir, its
 * config written, and only then handed to run_as: nothing that user
 * plants can be in it while we write (safefs.h). 0 or -errno. */
static int prepare_dir(rsrv_t *r, const char *parent, const rsrv_conf_t *c, char *conf,
                       size_t len)
{
    int pfd = safefs_open_dir(parent, "");
    if (pfd < 0)
        return pfd;
    int rc = safefs_mkdir_at(pfd, r->name, 0700, (uid_t)-1, (gid_t)-1);
    int fd = rc < 0 ? -1 : openat(pfd, r->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (rc == 0 && fd < 0)
        rc = -errno;
    if (rc == 0)
        rc = write_conf(r, fd, c, conf, len);
    if (rc == 0 && fchown(fd, r->d->run_uid, r->d->run_gid) < 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    close(pfd);
    return rc;
}

/* The same server in a container (runtime = docker), from an image with
 * the official redis image's interface: arguments go to redis-server. ACL
 * users are arguments here, seen only by whoever may inspect containers. */
static int start_container(rsrv_t *r, const rsrv_conf_t *c)
{
    dbld_t *d = r->d;
    char port[16], dbs[16], maxmem[24], deflt[64], admin[64], daemon_id[32], name[96];
    /* Published: the fixed port inside, on every address of the container
     * (its own network); the engine picks the host port. */
    bool publish = rt_dk_publishing(d, &d->cfg.redis);
    snprintf(port, sizeof port, "%d", publish ? RD_PORT : r->port);
    if (publish)
        r->port = 0;
    snprintf(dbs, sizeof dbs, "%d", c->databases);
    snprintf(maxmem, sizeof maxmem, "%lld", c->maxmemory);
    snprintf(deflt, sizeof deflt, ">%s", c->password);
    snprintf(admin, sizeof admin, ">%s", r->admin_password);
    const char *argv[] = {"redis-server", "--port", port, "--bind", publish ? "0.0.0.0" : "127.0.0.1",
                          "--protected-mode", "no", "--save", "", "--appendonly", "no",
                          "--databases", dbs, "--maxmemory", maxmem,
                          "--maxmemory-policy", "noeviction",
                          "--user", "dbladmin", "on", admin, "~*", "&*", "+@all",
                          "--user", "default", "on", deflt, "~*", "&*", "+@all", "-@admin"};
    json_object *cmd = json_object_new_array();
    for (size_t k = 0; k < sizeof argv / sizeof argv[0]; k++)
        json_object_array_add(cmd, json_object_new_string(argv[k]));
    for (size_t k = 0; k < sizeof lease_denied / sizeof lease_denied[0]; k++)
        json_object_array_add(cmd, json_object_new_string(lease_denied[k]));
    for (size_t k = 0; c->shared && k < sizeof shared_denied / sizeof shared_denied[0]; k++)
        json_object_array_add(cmd, json_object_new_string(shared_denied[k]));
    snprintf(daemon_id, sizeof daemon_id, "%s", dk_self(d->dk)->id);
    json_object *body = json_object_new_object();
    json_object *host = rt_dk_network(d, &d->cfg.redis, body, RD_PORT);
    json_object_object_add(body, "Image", json_object_new_string(d->cfg.redis.image));
    json_object_object_add(body, "Cmd", cmd);
    json_object_object_add(body, "Labels", dkc_labels(d->dk, "redis"));
    json_object_object_add(body, "HostConfig", host);
    snprintf(name, sizeof name, "dblease-%s-%s", daemon_id, r->name);
    static const dkc_cbs_t cbs = {.started = on_container_started, .gone = on_container_gone};
    r->container = dkc_run(d->dk, body, name, &cbs, r);
    json_object_put(body);
    return r->container ? 0 : -EIO;
}

/* Started (a process or a container): connect as soon as it accepts. */
static rsrv_t *arm(rsrv_t *r, rsrv_cb cb, void *ud)
{
    r->handles = 2; /* the timer, and the process or container */
    r->cb = cb;
    r->ud = ud;
    uv_timer_init(r->d->loop, &r->timer);
    r->timer.data = r;
    r->deadline_ms = util_now_ms() + START_TIMEOUT_MS;
    uv_timer_start(&r->timer, try_connect, 0, 0);
    return r;
}

rsrv_t *rsrv_start(dbld_t *d, const char *binary, const rsrv_conf_t *conf, rsrv_cb cb, void *ud)
{
    static int next_id = 1;
    rsrv_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->d = d;
    r->id = next_id++;
    snprintf(r->name, sizeof r->name, "rd-%d", r->id);
    snprintf(r->host, sizeof r->host, "127.0.0.1");
    if (strcmp(d->cfg.redis.runtime, "docker") == 0) {
        r->port = util_free_port();
        if (!d->dk || r->port < 0 || util_random_password(r->admin_password, 32) < 0 ||
            start_container(r, conf) < 0) {
            log_error("redis", "cannot start a redis container: is the engine at %s up?",
                      d->docker_host);
            free(r);
            return NULL;
        }
        return arm(r, cb, ud);
    }
    char parent[CFG_PATH], conf_path[CFG_PATH];
    util_path(parent, sizeof parent, "%s/instances", d->server_root);
    util_path(r->dir, sizeof r->dir, "%s/%s", parent, r->name);
    util_path(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
    util_rm_rf(r->dir);
    r->port = util_free_port();
    int rc = r->port < 0 ? r->port : util_random_password(r->admin_password, 32);
    if (rc == 0)
        rc = util_mkdir_p(parent, 0711);
    if (rc == 0)
        rc = prepare_dir(r, parent, conf, conf_path, sizeof conf_path);
    if (rc < 0) {
        log_error("redis", "cannot prepare %s: %s", r->dir, strerror(-rc));
        fs_bg_rm_rf(d->loop, r->dir);
        free(r);
        return NULL;
    }
    char log_path[CFG_PATH];
    util_path(log_path, sizeof log_path, "%s/server.log", r->dir);
    char *args[] = {(char *)binary, conf_path, NULL};
    proc_opts_t o = {.cwd = r->dir, .log_path = log_path, .exit_cb = on_exit_cb, .data = r};
    rc = proc_spawn(d, &o, args, &r->proc);
    if (rc < 0) {
        log_error("redis", "cannot start %s: %s", binary, uv_strerror(rc));
        fs_bg_rm_rf(d->loop, r->dir);
        free(r);
        return NULL;
    }
    r->pid = r->proc->pid;
    arm(r, cb, ud);
    log_debug("redis", "started %s (pid %d) on 127.0.0.1:%d", r->name, r->pid, r->port);
    return r;
}

static void stop_deadline(uv_timer_t *t)
{
    rsrv_t *r = t->data;
    log_warn("redis", "%s did not stop in time; killing it", r->name);
    kill_it(r, SIGKILL);
}

void rsrv_stop(rsrv_t *r)
{
    if (r->state == RSRV_KILLING || r->state == RSRV_STOPPING || r->state == RSRV_EXITED)
        return; /* going already */
    set_state(r, RSRV_STOPPING);
    rdc_t *admin = r->admin;
    r->admin = NULL;
    rdc_close(admin);
    kill_it(r, SIGTERM);
    uv_timer_start(&r->timer, stop_deadline, STOP_TIMEOUT_MS, 0);
}

void rsrv_abandon(rsrv_t *r)
{
    r->cb = NULL;
    rsrv_stop(r);
}

int rsrv_command(rsrv_t *r, int argc, const char **argv, rdc_reply_cb cb, void *ud)
{
    if (!r || r->state != RSRV_RUNNING || !r->admin)
        return -ENOTCONN;
    return rdc_command(r->admin, argc, argv, cb, ud);
}

json_object *rsrv_status_json(const rsrv_t *r)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(r->name));
    json_object_object_add(o, "kind", json_object_new_string("redis"));
    json_object_object_add(o, "runtime", json_object_new_string("process"));
    /* The protocol's three words: killing and exited are both on the way out. */
    const char *state = r->state == RSRV_STARTING  ? "starting"
                        : r->state == RSRV_RUNNING ? "running"
                                                   : "stopping";
    json_object_object_add(o, "state", json_object_new_string(state));
    json_object_object_add(o, "host", json_object_new_string(r->host));
    json_object_object_add(o, "port", json_object_new_int(r->port));
    json_object_object_add(o, "pid", json_object_new_int(r->pid));
    return o;
}
