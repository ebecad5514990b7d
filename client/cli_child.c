/* Running a command as dblease's child, for `run` and `template migrate`:
 * its environment, forwarding signals to it, and waiting for it while the
 * caller does periodic work (renewing leases) on its connection. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define N_FORWARDED (sizeof(forwarded) / sizeof(forwarded[0]))

static volatile sig_atomic_t child_pid;
static int wake_fd = -1; /* write end of the self-pipe SIGCHLD pokes */
static struct sigaction saved[N_FORWARDED + 1];
static bool installed;

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
    installed = true; /* what was not saved is restored as SIG_DFL */
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
    if (!installed)
        return;
    for (size_t i = 0; i < N_FORWARDED; i++)
        sigaction(forwarded[i], &saved[i], NULL);
    sigaction(SIGCHLD, &saved[N_FORWARDED], NULL);
    installed = false;
}

/* Sets name to value, or removes it so that an inherited value (say a
 * PGHOST pointing elsewhere) cannot mix with ours. */
static void put_env(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

/* PGOPTIONS is a space-separated list of server options: escape what would
 * split or end the value. Options the user had stay; ours comes last, and
 * for the server the last setting of an option wins. */
static void put_search_path(const char *schema)
{
    const char *old = getenv("PGOPTIONS");
    size_t n = (old ? strlen(old) + 1 : 0) + sizeof("-csearch_path=") + 2 * strlen(schema);
    char *v = malloc(n), *p;

    if (!v)
        return;
    p = v + (old && *old ? (size_t)sprintf(v, "%s ", old) : 0);
    p += sprintf(p, "-csearch_path=");
    for (const char *s = schema; *s; s++) {
        if (*s == ' ' || *s == '\\' || *s == '\t')
            *p++ = '\\';
        *p++ = *s;
    }
    *p = '\0';
    setenv("PGOPTIONS", v, 1);
    free(v);
}

/* Inherited libpq settings that would send the command to another server
 * than ours, or make libpq refuse ours (it speaks no TLS and authenticates
 * by password): PGHOSTADDR replaces PGHOST's address; a service's host,
 * port and dbname win over PG*; sslmode require or verify-*, requiressl,
 * sslnegotiation direct, sslcertmode require, gssencmode require and
 * channel_binding require need TLS or GSSAPI; require_auth and requirepeer
 * may name what ours does not do; target_session_attrs standby or
 * read-only refuse a primary. Session settings (PGOPTIONS, PGAPPNAME,
 * PGTZ...), timeouts (PGCONNECT_TIMEOUT), PGPASSFILE (PGPASSWORD wins over
 * it) and TLS file paths (unused without sslmode) stay, since the command
 * may also connect elsewhere with them. Keep dblease(1) in step. */
static const char *const pg_cleared[] = {
    "PGHOSTADDR",       "PGSERVICE",        "PGSERVICEFILE", "PGSSLMODE",
    "PGREQUIRESSL",     "PGSSLNEGOTIATION", "PGSSLCERTMODE", "PGGSSENCMODE",
    "PGCHANNELBINDING", "PGREQUIREAUTH",    "PGREQUIREPEER", "PGTARGETSESSIONATTRS",
};

void cli_export_postgres(const cli_pg_env_t *e)
{
    char port[16];

    for (size_t i = 0; i < sizeof(pg_cleared) / sizeof(pg_cleared[0]); i++)
        unsetenv(pg_cleared[i]);

    snprintf(port, sizeof(port), "%d", e->port);
    put_env("DATABASE_URL", e->url);
    put_env("PGHOST", e->host);
    put_env("PGPORT", e->port > 0 ? port : NULL);
    put_env("PGDATABASE", e->dbname);
    put_env("PGUSER", e->user);
    put_env("PGPASSWORD", e->password);
    if (e->schema)
        put_search_path(e->schema);
}

void cli_export(const char *name, const char *value)
{
    put_env(name, value);
}

/* In the child: back to the signal state we were started with, then exec.
 * Exit codes for a failed exec are the shell's: 127 not found, 126 not
 * runnable. */
static void exec_child(char **cmd, const sigset_t *mask, pid_t parent)
{
    int e;

    restore_handlers();
    sigprocmask(SIG_SETMASK, mask, NULL);
    /* If dblease dies, the daemon reclaims what the command was given
     * (leases, a migration claim): the command must not carry on against
     * databases about to vanish. */
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

int cli_child_start(cli_child_t *c, char **cmd)
{
    c->pid = -1;
    c->pipefd[0] = c->pipefd[1] = -1;
    if (pipe2(c->pipefd, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "dblease: cannot set up signal handling: %s\n", strerror(errno));
        return CLI_FAILED;
    }
    wake_fd = c->pipefd[1];
    if (install_handlers() < 0) {
        fprintf(stderr, "dblease: cannot set up signal handling: %s\n", strerror(errno));
        return CLI_FAILED;
    }
    c->pid = spawn(cmd);
    if (c->pid < 0) {
        fprintf(stderr, "dblease: cannot start %s: %s\n", cmd[0], strerror(errno));
        return CLI_FAILED;
    }
    return CLI_OK;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int exit_status(int status)
{
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/* The self-pipe turns SIGCHLD into something poll() can wait on beside the
 * timer and the daemon's connection. */
int cli_child_wait(cli_child_t *c, const cli_watch_t *w)
{
    static const cli_watch_t none = {.fd = -1};
    int64_t next_tick;
    bool ticking, watching;

    if (!w)
        w = &none;
    next_tick = now_ms() + w->tick_ms;
    ticking = w->tick != NULL;
    watching = w->fd >= 0 && w->readable != NULL;
    for (;;) {
        struct pollfd pfd[2] = {{.fd = c->pipefd[0], .events = POLLIN},
                                {.fd = w->fd, .events = POLLIN}};
        char drain[64];
        int status;
        pid_t pid = waitpid(c->pid, &status, WNOHANG);
        int64_t left = next_tick - now_ms();

        if (pid == c->pid) {
            child_pid = 0; /* its pid may be reused: forward nothing more */
            return exit_status(status);
        }
        if (pid < 0 && errno != EINTR) {
            fprintf(stderr, "dblease: lost track of the command: %s\n", strerror(errno));
            return CLI_FAILED;
        }
        if (ticking && left <= 0) {
            ticking = w->tick(w->arg);
            next_tick = now_ms() + w->tick_ms;
            continue;
        }
        if (poll(pfd, watching ? 2 : 1, ticking ? (int)left : -1) <= 0)
            continue;
        if (pfd[0].revents)
            while (read(c->pipefd[0], drain, sizeof(drain)) > 0)
                ;
        if (watching && pfd[1].revents)
            watching = w->readable(w->arg);
    }
}

void cli_child_end(cli_child_t *c)
{
    restore_handlers();
    for (int i = 0; i < 2; i++)
        if (c->pipefd[i] >= 0)
            close(c->pipefd[i]);
    c->pipefd[0] = c->pipefd[1] = -1;
    wake_fd = -1;
}
