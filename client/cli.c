/* dblease: command-line client for dbleased. This file holds main(), the
 * usage text and what every subcommand shares; each subcommand lives in the
 * cli_*.c file named after it. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "dbl_version.h"

static const char usage_text[] =
    "Usage:\n"
    "  dblease [--socket PATH] lease  [--kind postgres|redis] [--template NAME] [--ttl SEC]\n"
    "                                 [--wait MS] [--json]\n"
    "  dblease [--socket PATH] release LEASE_ID [--clean]\n"
    "  dblease [--socket PATH] renew   LEASE_ID [--ttl SEC]\n"
    "  dblease [--socket PATH] status  [--json]\n"
    "  dblease [--socket PATH] run [--postgres[=TEMPLATE]] [--redis] [--] CMD [ARGS...]\n"
    "  dblease [--socket PATH] template migrate NAME --hash HASH [--wait MS] [--] CMD [ARGS...]\n"
    "  dblease [--socket PATH] template ensure  NAME --hash HASH [--wait MS] [--json]\n"
    "  dblease --help | --version\n"
    "\n"
    "Lease isolated PostgreSQL and Redis databases from dbleased.\n"
    "\n"
    "Commands:\n"
    "  lease    take a detached lease (TTL 900 s unless --ttl) and print its URL;\n"
    "           --json prints the whole lease; --wait queues up to MS ms for one\n"
    "  release  end a lease; the daemon checks what it changed and resets it\n"
    "           (--clean: a hint that nothing was, still checked)\n"
    "  renew    extend a lease (by SEC seconds, else the daemon's default) and print\n"
    "           the new expiry\n"
    "  status   show the daemon's pools, instances and leases (--json: as JSON)\n"
    "  run      lease a postgres database (the default, from TEMPLATE if given)\n"
    "           and/or a redis one, run CMD with DATABASE_URL, PGHOST, PGPORT,\n"
    "           PGDATABASE, PGUSER, PGPASSWORD and/or REDIS_URL set, release them\n"
    "           when it ends, and exit with its status; with a schema-isolated\n"
    "           template, PGOPTIONS also sets the lease's search_path\n"
    "  template migrate\n"
    "           make sure template NAME is built at version HASH (say, a SHA-256 of\n"
    "           the migration files), for leases with --template NAME: if it is\n"
    "           ready, do nothing; else run CMD with DATABASE_URL and the PG*\n"
    "           variables set to the template database, then keep the result if\n"
    "           CMD exits 0 and drop it otherwise (exit status: CMD's). Parallel\n"
    "           callers with the same NAME and HASH wait (up to --wait MS, default\n"
    "           the daemon's) while one of them migrates\n"
    "  template ensure\n"
    "           print the state of NAME at HASH: \"ready\", or \"migrate\" when it\n"
    "           still has to be built (--json: as JSON). It never builds it: the\n"
    "           claim to migrate ends with this command, so use `template migrate`\n"
    "\n"
    "Options:\n"
    "  --socket PATH  dbleased's socket; default $DBLEASE_SOCKET, else\n"
    "                 $XDG_RUNTIME_DIR/dblease/dblease.sock, else\n"
    "                 /run/dblease/dblease.sock (root) or /tmp/dblease-$UID/dblease.sock\n"
    "  -h, --help     show this help\n"
    "  --version      show the version\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 bad usage, 69 dbleased unreachable,\n"
    "75 pool exhausted or timed out (retry later); run and template migrate exit\n"
    "with CMD's status (128+N if a signal N killed it).\n";

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("dblease: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("; try 'dblease --help'\n", stderr);
    return CLI_USAGE;
}

/* Which option getopt_long() complained about. Long options are shown as
 * typed; short ones by letter, since argv may hold a cluster like -xy. */
static int bad_option(char **argv, const char *what)
{
    const char *arg = argv[optind - 1];

    if (optopt > 0 && optopt < 0x100 && strncmp(arg, "--", 2) != 0)
        return cli_usage_error("%s '-%c'", what, optopt);
    return cli_usage_error("%s '%s'", what, arg);
}

int cli_common_opt(cli_global_t *g, int c, char **argv)
{
    switch (c) {
    case CLI_OPT_SOCKET:
        if (!*optarg)
            return cli_usage_error("--socket needs a path");
        g->socket_path = optarg;
        return -1;
    case CLI_OPT_HELP:
        fputs(usage_text, stdout);
        return CLI_OK;
    case ':':
        return bad_option(argv, "missing argument for");
    default:
        return bad_option(argv, "unknown option");
    }
}

int cli_parse_int(const char *opt, const char *arg, long min, long max, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > max)
        return cli_usage_error("%s needs a whole number from %ld to %ld, not '%s'", opt, min,
                               max, arg);
    *out = (int)v;
    return 0;
}

int cli_exit_code(const dbl_ctx_t *ctx)
{
    switch (ctx->err) {
    case DBL_ERR_NONE:
        return CLI_OK;
    case DBL_ERR_UNAVAILABLE:
        return CLI_UNAVAILABLE;
    case DBL_ERR_TIMEOUT:
        return CLI_TEMPFAIL;
    case DBL_ERR_USAGE:
        return CLI_USAGE;
    case DBL_ERR_REMOTE:
        if (!strcmp(ctx->code, "pool_exhausted") || !strcmp(ctx->code, "timeout"))
            return CLI_TEMPFAIL;
        return CLI_FAILED;
    default:
        return CLI_FAILED;
    }
}

int cli_fail(const dbl_ctx_t *ctx)
{
    /* The code is there for scripts and bug reports; the message for people. */
    if (ctx->err == DBL_ERR_REMOTE)
        fprintf(stderr, "dblease: %s (%s)\n", ctx->errstr, ctx->code);
    else
        fprintf(stderr, "dblease: %s\n", ctx->errstr);
    return cli_exit_code(ctx);
}

dbl_ctx_t *cli_connect(const cli_global_t *g, const char *client_name, int *rc)
{
    dbl_options_t opts = {.socket_path = g->socket_path, .client_name = client_name};
    dbl_ctx_t *ctx = dbl_connect(&opts);

    if (!ctx) {
        fputs("dblease: out of memory\n", stderr);
        *rc = CLI_FAILED;
        return NULL;
    }
    if (ctx->err) {
        *rc = cli_fail(ctx);
        dbl_free(ctx);
        return NULL;
    }
    *rc = CLI_OK;
    return ctx;
}

const char *cli_iso_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "%lld", (long long)t);
    return buf;
}

static const struct {
    const char *name;
    int (*fn)(cli_global_t *g, int argc, char **argv);
} commands[] = {
    {"lease", cli_cmd_lease},   {"release", cli_cmd_release}, {"renew", cli_cmd_renew},
    {"status", cli_cmd_status}, {"run", cli_cmd_run},         {"template", cli_cmd_template},
};

static int dispatch(cli_global_t *g, int argc, char **argv)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[0], commands[i].name) == 0) {
            optind = 0; /* glibc: restart getopt, argv[0] being the command */
            return commands[i].fn(g, argc, argv);
        }
    }
    return cli_usage_error("unknown command '%s'", argv[0]);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, CLI_OPT_SOCKET},
        {"help", no_argument, NULL, CLI_OPT_HELP},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    cli_global_t g = {0};
    int c, rc;

    opterr = 0; /* we print our own one-line errors */
    /* '+': options after the command belong to the command. */
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        if (c == 'V') {
            printf("dblease %s\n", DBL_VERSION);
            return CLI_OK;
        }
        rc = cli_common_opt(&g, c, argv);
        if (rc >= 0)
            return rc;
    }
    if (optind >= argc)
        return cli_usage_error("missing command: lease, release, renew, status, run or template");
    rc = dispatch(&g, argc - optind, argv + optind);
    /* Output that never got out (a full disk, a closed pipe) is a failure. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "dblease: cannot write output: %s\n", strerror(errno));
        return rc ? rc : CLI_FAILED;
    }
    return rc;
}
