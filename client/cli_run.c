/* dblease run: lease databases, run a command with them, give them back.
 *
 * The leases are attached (not detached) to one connection that this
 * process holds open until the command ends. If dblease itself is killed,
 * even by SIGKILL, the kernel closes the connection and the daemon takes the
 * leases back: nothing depends on our cleanup code running.
 *
 * TTL: attached leases still expire, and a test suite can run longer than
 * any TTL. We lease with a modest TTL and renew it every third of that
 * while we wait, rather than asking for one huge TTL: the daemon may cap
 * ttl_s, and a renewal that fails once (a busy daemon) still leaves two more
 * chances before anything expires. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "client_priv.h"

#ifndef RUN_TTL_S /* overridable so a test build can watch renewals happen */
#define RUN_TTL_S 900
#endif
#define RUN_RENEW_EVERY_MS (RUN_TTL_S * 1000 / 3)

enum { OPT_POSTGRES = 0x101, OPT_REDIS };

typedef struct run_lease {
    dbl_lease_t *lease;
    bool gone; /* the daemon no longer has it: do not renew or release */
} run_lease_t;

typedef struct run {
    bool postgres, redis;
    const char *pg_template;
    run_lease_t leases[2];
    size_t n;
} run_t;

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define N_FORWARDED (sizeof(forwarded) / sizeof(forwarded[0]))

static volatile sig_atomic_t child_pid;
static int wake_fd = -1; /* write end of the self-pipe SIGCHLD pokes */
static struct sigaction saved[N_FORWARDED + 1];

static void on_signal(int sig, siginfo_t *si, void *uctx)
{
    int saved_errno = errno;
    pid_t pid = child_pid;

    /* A signal from the terminal (Ctrl-C, hangup: SI_KERNEL) went to the
     * whole foreground process group, command included. Forward only those
     * a process sent with kill(), which may have reached us alone, so the
     * command never gets the same Ctrl-C twice. */
    if (pid > 0 && si->si_code != SI_KERNEL)
        kill(pid, sig);
    errno = saved_errno;
}

static void on_sigchld(int sig)
{
    int saved_errno = errno;

    if (write(wake_fd, "", 1) < 0) {
        /* full pipe: a wake-up is already pending */
    }
    errno = saved_errno;
}

/* Signals that were ignored when we started (nohup, a non-interactive
 * shell's background job) stay ignored, for us and for the command. */
static int install_handlers(void)
{
    struct sigaction sa = {.sa_sigaction = on_signal, .sa_flags = SA_SIGINFO | SA_RESTART};
    struct sigaction chld = {.sa_handler = on_sigchld, .sa_flags = SA_RESTART | SA_NOCLDSTOP};

    sigemptyset(&sa.sa_mask);
    sigemptyset(&chld.sa_mask);
    for (size_t i = 0; i < N_FORWARDED; i++) {
        if (sigaction(forwarded[i], NULL, &saved[i]) < 0)
            return -1;
        if (saved[i].sa_handler != SIG_IGN && sigaction(forwarded[i], &sa, NULL) < 0)
            return -1;
    }
    return sigaction(SIGCHLD, &chld, &saved[N_FORWARDED]);
}

static void restore_handlers(void)
{
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaction(forwarded[i], &saved[i], NULL);
    sigaction(SIGCHLD, &saved[N_FORWARDED], NULL);
}

static int run_opt(run_t *r, cli_global_t *g, int c, char **argv)
{
    switch (c) {
    case OPT_POSTGRES:
        if (optarg && !*optarg)
            return cli_usage_error("--postgres= needs a template name");
        r->postgres = true;
        r->pg_template = optarg;
        return -1;
    case OPT_REDIS:
        r->redis = true;
        return -1;
    default:
        return cli_common_opt(g, c, argv);
    }
}

static int take_lease(dbl_ctx_t *ctx, run_t *r, const char *kind, const char *tmpl)
{
    dbl_lease_opts_t lo = {
        .kind = kind, .template_name = tmpl, .ttl_s = RUN_TTL_S, .wait_ms = -1, .detach = false};

    if (dbl_lease(ctx, &lo, &r->leases[r->n].lease) < 0)
        return cli_fail(ctx);
    r->n++;
    return CLI_OK;
}

static void release_all(dbl_ctx_t *ctx, run_t *r, bool clean)
{
    for (size_t i = 0; i < r->n; i++) {
        dbl_lease_t *l = r->leases[i].lease;

        /* Once the connection is gone the daemon has reclaimed them all. */
        if (!r->leases[i].gone && dbl_release(ctx, l->id, clean) < 0 && ctx->err != DBL_ERR_IO)
            fprintf(stderr, "dblease: warning: could not release %s: %s\n", l->id, ctx->errstr);
        dbl_lease_free(l);
    }
    r->n = 0;
}

/* Sets name to value, or removes it so that an inherited value (say a
 * PGHOST pointing elsewhere) cannot mix with the lease's. */
static void put_env(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

static void export_postgres(const dbl_lease_t *l)
{
    char port[16], host[4096];
    const char *h = l->host;

    /* libpq wants the socket's directory, not the .s.PGSQL.N file. */
    if (!h && l->socket) {
        const char *file = strstr(l->socket, "/.s.PGSQL.");

        snprintf(host, sizeof(host), "%.*s",
                 file ? (int)(file - l->socket) : (int)strlen(l->socket), l->socket);
        h = host;
    }
    snprintf(port, sizeof(port), "%d", l->port);
    put_env("DATABASE_URL", l->url);
    put_env("PGHOST", h);
    put_env("PGPORT", l->port > 0 ? port : NULL);
    put_env("PGDATABASE", l->dbname);
    put_env("PGUSER", l->user);
    put_env("PGPASSWORD", l->password);
}

static void export_all(const run_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const dbl_lease_t *l = r->leases[i].lease;

        if (l->kind && strcmp(l->kind, "redis") == 0)
            put_env("REDIS_URL", l->url);
        else
            export_postgres(l);
    }
}

/* In the child: back to the signal state we were started with, then exec.
 * Exit codes for a failed exec are the shell's: 127 not found, 126 not
 * runnable. */
static void exec_child(char **cmd, const sigset_t *mask, pid_t parent)
{
    int e;

    restore_handlers();
    sigprocmask(SIG_SETMASK, mask, NULL);
    /* If dblease dies, the daemon reclaims and resets the leases: the
     * command must not carry on against databases about to vanish. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) == 0 && getppid() != parent)
        _exit(128 + SIGTERM);
    execvp(cmd[0], cmd);
    e = errno;
    if (e == ENOENT && !strchr(cmd[0], '/'))
        fprintf(stderr, "dblease: %s: command not found; check the name and PATH\n", cmd[0]);
    else
        fprintf(stderr, "dblease: cannot run %s: %s\n", cmd[0], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
}

/* Forks the command with our signals blocked, so that child_pid is set
 * before any handler can want it. */
static pid_t spawn(char **cmd)
{
    sigset_t block, old;
    pid_t parent = getpid(), pid;

    sigemptyset(&block);
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaddset(&block, forwarded[i]);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &old);
    fflush(NULL); /* or buffered output would be written twice */
    pid = fork();
    if (pid == 0)
        exec_child(cmd, &old, parent);
    if (pid > 0)
        child_pid = pid;
    sigprocmask(SIG_SETMASK, &old, NULL);
    return pid;
}

/* Renews every live lease; false once the connection is lost, after
 * which there is nothing left to renew. */
static bool renew_all(dbl_ctx_t *ctx, run_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        run_lease_t *rl = &r->leases[i];

        if (rl->gone || dbl_renew(ctx, rl->lease->id, RUN_TTL_S, NULL) == 0)
            continue;
        if (ctx->err == DBL_ERR_IO) {
            fputs("dblease: warning: lost the connection to dbleased (did it restart?), so the "
                  "command's leases have ended\n", stderr);
            return false;
        }
        fprintf(stderr, "dblease: warning: cannot renew lease %s: %s\n", rl->lease->id,
                ctx->errstr);
        if (ctx->err == DBL_ERR_REMOTE && (!strcmp(ctx->code, "not_found") ||
                                           !strcmp(ctx->code, "not_owner")))
            rl->gone = true;
    }
    return true;
}

static int exit_status(int status)
{
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* Waits for the command, renewing the leases on the way. The self-pipe
 * turns SIGCHLD into something poll() can wait on beside the timer. */
static int wait_child(dbl_ctx_t *ctx, run_t *r, pid_t pid, int wake_rd)
{
    int64_t next_renew = dbl__now_ms() + RUN_RENEW_EVERY_MS;
    bool renewing = true;

    for (;;) {
        struct pollfd pfd = {.fd = wake_rd, .events = POLLIN};
        char drain[64];
        int status;
        pid_t w = waitpid(pid, &status, WNOHANG);
        int64_t left = next_renew - dbl__now_ms();

        if (w == pid) {
            child_pid = 0; /* its pid may be reused: forward nothing more */
            return exit_status(status);
        }
        if (w < 0 && errno != EINTR) {
            fprintf(stderr, "dblease: lost track of the command: %s\n", strerror(errno));
            return CLI_FAILED;
        }
        if (left <= 0) {
            renewing = renewing && renew_all(ctx, r);
            next_renew = dbl__now_ms() + RUN_RENEW_EVERY_MS;
            continue;
        }
        if (poll(&pfd, 1, renewing ? (int)left : -1) > 0)
            while (read(wake_rd, drain, sizeof(drain)) > 0)
                ;
    }
}

static int run_command(dbl_ctx_t *ctx, run_t *r, char **cmd)
{
    int pipefd[2], rc;
    pid_t pid;

    if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "dblease: cannot set up signal handling: %s\n", strerror(errno));
        return CLI_FAILED;
    }
    wake_fd = pipefd[1];
    if (install_handlers() < 0) {
        fprintf(stderr, "dblease: cannot set up signal handling: %s\n", strerror(errno));
        return CLI_FAILED;
    }
    export_all(r);
    pid = spawn(cmd);
    if (pid < 0) {
        fprintf(stderr, "dblease: cannot start %s: %s\n", cmd[0], strerror(errno));
        rc = CLI_FAILED;
    } else {
        rc = wait_child(ctx, r, pid, pipefd[0]);
    }
    /* Handlers stay in place until here, so a late Ctrl-C cannot cut the
     * release short. */
    release_all(ctx, r, false);
    restore_handlers();
    close(pipefd[0]);
    close(pipefd[1]);
    return rc;
}

int cli_cmd_run(cli_global_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"postgres", optional_argument, NULL, OPT_POSTGRES},
        {"redis", no_argument, NULL, OPT_REDIS},
        {"socket", required_argument, NULL, CLI_OPT_SOCKET},
        {"help", no_argument, NULL, CLI_OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    run_t r = {0};
    char name[64];
    dbl_ctx_t *ctx;
    int c, rc;

    /* '+': stop at the command, whose own options are not ours. */
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1)
        if ((rc = run_opt(&r, g, c, argv)) >= 0)
            return rc;
    if (optind >= argc)
        return cli_usage_error("run needs a command to run");
    if (!r.postgres && !r.redis)
        r.postgres = true;
    snprintf(name, sizeof(name), "dblease run %s", argv[optind]);
    if (!(ctx = cli_connect(g, name, &rc)))
        return rc;
    rc = CLI_OK;
    if (r.postgres)
        rc = take_lease(ctx, &r, "postgres", r.pg_template);
    if (rc == CLI_OK && r.redis)
        rc = take_lease(ctx, &r, "redis", NULL);
    if (rc == CLI_OK)
        rc = run_command(ctx, &r, argv + optind);
    else
        release_all(ctx, &r, true); /* never handed out: nothing to reset */
    dbl_free(ctx);
    return rc;
}
