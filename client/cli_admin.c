/* dblease stop | drain | reload: the daemon's admin ops (PROTOCOL.md,
 * "Admin ops"), for its own user and root. They act on the one daemon at
 * the socket, where `pkill dbleased` would end every user's.
 *
 * `stop` returns only once the daemon process has exited, so that a script
 * can start another one or remove its state dir next. The daemon's pid
 * comes from hello; a pidfd taken before asking it to stop cannot be
 * fooled by the pid being reused. */
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cli.h"
#include "client_priv.h"

/* A stop waits for the drain (the daemon's drain_timeout_s, 30 s unless
 * configured) and then for its servers to shut down. */
#define STOP_DEFAULT_TIMEOUT_S 120

enum { OPT_NOW = 0x101, OPT_TIMEOUT };

/* Sends an admin op; CLI_OK, or prints why not and returns the exit code.
 * A daemon told to stop may close the connection before its reply reaches
 * us: for stop that is success (*closed tells the caller). */
static int admin_op(dbl_ctx_t *ctx, const char *op, const char *verb, bool *closed)
{
    dbl_reply_t reply;
    json_object *req;
    int64_t id;

    *closed = false;
    if (!(req = dbl__request(ctx, op, &id)))
        return cli_fail(ctx);
    if (dbl__call(ctx, req, id, 0, &reply) == 0) {
        dbl_reply_free(&reply);
        return CLI_OK;
    }
    if (ctx->err == DBL_ERR_IO && strcmp(op, "reload") != 0) {
        *closed = true;
        return CLI_OK;
    }
    if (ctx->err == DBL_ERR_REMOTE && strcmp(ctx->code, "forbidden") == 0) {
        struct passwd *pw = getpwuid((uid_t)ctx->priv->daemon_uid);

        fprintf(stderr,
                "dblease: only the daemon's own user (%s, uid %lld) and root may %s dbleased; "
                "ask one of them (forbidden)\n",
                pw ? pw->pw_name : "?", (long long)ctx->priv->daemon_uid, verb);
        return CLI_FAILED;
    }
    if (ctx->err == DBL_ERR_REMOTE && strcmp(ctx->code, "unknown_op") == 0) {
        fprintf(stderr, "dblease: this dbleased (%s) is older than `dblease %s`; %s\n",
                dbl_daemon_version(ctx), verb,
                strcmp(op, "stop") == 0 ? "use `dblease stop` without --now"
                                        : "send it a signal instead (see dbleased(8))");
        return CLI_FAILED;
    }
    return cli_fail(ctx);
}

/* The daemon's process, when it is in our pid namespace; -1 otherwise. */
static int open_daemon_pidfd(const dbl_ctx_t *ctx)
{
    if (ctx->priv->peer_pid == 0 || ctx->priv->daemon_pid <= 0)
        return -1;
    return (int)syscall(SYS_pidfd_open, (pid_t)ctx->priv->daemon_pid, 0);
}

/* Waits for the process behind pidfd to exit; false at the deadline. */
static bool wait_exit(int pidfd, pid_t pid, int64_t deadline)
{
    for (;;) {
        struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
        int64_t left = deadline - dbl__now_ms();

        if (pidfd < 0 ? kill(pid, 0) < 0 && errno == ESRCH : poll(&pfd, 1, 0) > 0)
            return true;
        if (left <= 0)
            return false;
        /* Without a pidfd (an old kernel) there is nothing to wait on. */
        if (pidfd < 0)
            poll(NULL, 0, left < 20 ? (int)left : 20);
        else
            poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
    }
}

static int stop_timed_out(bool now, int timeout_s)
{
    fprintf(stderr, "dblease: dbleased has not exited after %d s; %s\n", timeout_s,
            now ? "it is still stopping its servers: see its log"
                : "it is still draining (it stops when its attached leases end or its "
                  "drain_timeout_s runs out); `dblease stop --now` ends them at once");
    return CLI_TEMPFAIL;
}

/* The daemon takes a second drain as "stop now" (as a second SIGTERM): a
 * stop that finds it draining already only waits. */
static bool draining(dbl_ctx_t *ctx)
{
    json_object *req, *daemon, *v;
    dbl_reply_t reply;
    int64_t id;
    bool yes;

    if (!(req = dbl__request(ctx, "status", &id)) || dbl__call(ctx, req, id, 0, &reply) < 0)
        return false; /* the drain that follows reports what is wrong */
    yes = json_object_object_get_ex(reply.root, "daemon", &daemon) &&
          json_object_object_get_ex(daemon, "draining", &v) && json_object_get_boolean(v);
    dbl_reply_free(&reply);
    return yes;
}

static int stop(dbl_ctx_t *ctx, bool now, int timeout_s)
{
    int64_t deadline = dbl__now_ms() + (int64_t)timeout_s * 1000;
    int pidfd = open_daemon_pidfd(ctx), rc;
    pid_t pid = (pid_t)ctx->priv->daemon_pid;
    bool closed, known = pidfd >= 0 || (ctx->priv->peer_pid != 0 && pid > 0);

    /* Others are told they may not, draining or not. */
    bool admin = geteuid() == 0 || (int64_t)geteuid() == ctx->priv->daemon_uid;

    closed = false;
    if (!now && admin && draining(ctx))
        rc = CLI_OK;
    else
        rc = admin_op(ctx, now ? "stop" : "drain", "stop", &closed);
    if (rc == CLI_OK && !now && isatty(STDERR_FILENO))
        fprintf(stderr,
                "dblease: dbleased takes no new leases and stops when its attached "
                "leases end; waiting up to %d s\n",
                timeout_s);
    /* It closes every connection when it starts to stop, then stops its
     * servers and exits. */
    if (rc == CLI_OK && !closed && dbl__wait_closed(ctx, deadline) < 0)
        rc = stop_timed_out(now, timeout_s);
    if (rc == CLI_OK && known && !wait_exit(pidfd, pid, deadline))
        rc = stop_timed_out(true, timeout_s);
    if (pidfd >= 0)
        close(pidfd);
    return rc;
}

/* Options of a command that takes no operand besides them. */
static int parse(cli_global_t *g, int argc, char **argv, bool *now, int *timeout_s)
{
    static const struct option opts[] = {
        {"now", no_argument, NULL, OPT_NOW},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"socket", required_argument, NULL, CLI_OPT_SOCKET},
        {"help", no_argument, NULL, CLI_OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    bool is_stop = strcmp(argv[0], "stop") == 0;
    int c, rc;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (is_stop && c == OPT_NOW) {
            *now = true;
            continue;
        }
        if (is_stop && c == OPT_TIMEOUT)
            rc = cli_parse_int("--timeout", optarg, 1, 86400, timeout_s) ? CLI_USAGE : -1;
        else /* drain and reload take neither */
            rc = cli_common_opt(g, c == OPT_NOW || c == OPT_TIMEOUT ? '?' : c, argv);
        if (rc >= 0)
            return rc;
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    return -1;
}

int cli_cmd_admin(cli_global_t *g, int argc, char **argv)
{
    const char *cmd = argv[0];
    int timeout_s = STOP_DEFAULT_TIMEOUT_S, rc;
    bool now = false, closed;
    char name[32];
    dbl_ctx_t *ctx;

    if ((rc = parse(g, argc, argv, &now, &timeout_s)) >= 0)
        return rc;
    snprintf(name, sizeof(name), "dblease %s", cmd);
    if (!(ctx = cli_connect(g, name, &rc)))
        return rc;
    if (strcmp(cmd, "stop") == 0) {
        rc = stop(ctx, now, timeout_s);
    } else if (strcmp(cmd, "drain") == 0) {
        rc = admin_op(ctx, "drain", "drain", &closed);
        if (rc == CLI_OK && isatty(STDERR_FILENO))
            fputs("dblease: dbleased takes no new leases and stops when its attached leases "
                  "end; `dblease stop` waits for that\n",
                  stderr);
    } else {
        rc = admin_op(ctx, "reload", "reload", &closed);
        /* The daemon keeps its running configuration when the file is bad,
         * and still says ok: only its log tells. */
        if (rc == CLI_OK)
            fputs("dblease: dbleased re-read its configuration; its log says what changed, "
                  "or why the file was not applied\n",
                  stderr);
    }
    dbl_free(ctx);
    return rc;
}
