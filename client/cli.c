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
#include "client_priv.h"
#include "dbl_version.h"

static const char usage_text[] =
    "Usage:\n"
    "  dblease [--socket PATH] lease  [--kind postgres|redis] [--template NAME] [--ttl SEC]\n"
    "                                 [--wait MS] [--json]\n"
    "  dblease [--socket PATH] release LEASE_ID|URL [--clean]\n"
    "  dblease [--socket PATH] renew   LEASE_ID|URL [--ttl SEC]\n"
    "  dblease [--socket PATH] status  [--json]\n"
    "  dblease [--socket PATH] run [--postgres[=TEMPLATE]] [--redis] [--wait MS]\n"
    "                              [--ttl SEC] [--] CMD [ARGS...]\n"
    "  dblease [--socket PATH] template migrate NAME --hash HASH [--wait MS] [--] CMD [ARGS...]\n"
    "  dblease [--socket PATH] template ensure  NAME --hash HASH [--wait MS] [--json]\n"
    "  dblease [--socket PATH] template drop    NAME\n"
    "  dblease [--socket PATH] stop [--now] [--timeout SEC]\n"
    "  dblease [--socket PATH] drain | reload\n"
    "  dblease --help | --version\n"
    "\n"
    "Lease isolated PostgreSQL and Redis databases from dbleased.\n"
    "\n"
    "Commands:\n"
    "  lease    take a detached lease (TTL 900 s unless --ttl; at most the daemon's\n"
    "           max_ttl_s) and print its URL; --json prints the whole lease; --wait\n"
    "           queues up to MS ms (0 to 600000; default the daemon's, 10000) for one\n"
    "  release  end a lease, named by its id or by the URL `lease` printed; the\n"
    "           daemon checks what it changed and resets it (--clean: a hint that\n"
    "           nothing was, still checked)\n"
    "  renew    extend a lease (by SEC seconds, else the daemon's default) and print\n"
    "           the new expiry\n"
    "  status   show the daemon's pools, instances and leases (--json: as JSON)\n"
    "  run      lease a postgres database (the default, from TEMPLATE if given)\n"
    "           and/or a redis one, run CMD with DATABASE_URL, PGHOST, PGPORT,\n"
    "           PGDATABASE, PGUSER, PGPASSWORD, DBLEASE_LEASE_ID and/or REDIS_URL,\n"
    "           DBLEASE_REDIS_LEASE_ID set, release them when it ends, and exit with\n"
    "           its status. Inherited PGHOSTADDR, PGSERVICE, PGSERVICEFILE,\n"
    "           PGSSLMODE, PGREQUIRESSL, PGSSLNEGOTIATION, PGSSLCERTMODE,\n"
    "           PGGSSENCMODE, PGCHANNELBINDING, PGREQUIREAUTH, PGREQUIREPEER and\n"
    "           PGTARGETSESSIONATTRS are unset (they would redirect or break the\n"
    "           connection); with a schema-isolated template, PGOPTIONS also sets\n"
    "           the lease's search_path. The leases live as long as dblease: their\n"
    "           TTL (--ttl, default 900 s) is renewed every third of it. If one\n"
    "           ends early (its server went down), dblease says so on stderr\n"
    "           at once and CMD keeps running\n"
    "  template migrate\n"
    "           make sure template NAME is built at version HASH (say, a SHA-256 of\n"
    "           the migration files), for leases with --template NAME: if it is\n"
    "           ready, do nothing; else run CMD with DATABASE_URL and the PG*\n"
    "           variables set to the template database, then keep the result if\n"
    "           CMD exits 0 and drop it otherwise (exit status: CMD's). Parallel\n"
    "           callers with the same NAME and HASH wait while one of them\n"
    "           migrates: up to --wait MS, default 600000 (10 min, the most the\n"
    "           protocol allows), since a migration can take that long\n"
    "  template ensure\n"
    "           print the state of NAME at HASH: \"ready\", or \"missing\" (exit 1)\n"
    "           when nobody has built it (--json: as JSON). Read-only: it never\n"
    "           claims or builds it; use `template migrate`. While someone else\n"
    "           migrates it, waits up to --wait MS, default the daemon's (10000)\n"
    "  template drop\n"
    "           retire template NAME: no new leases from it, its databases dropped\n"
    "           when their leases end. For a template you created with `template\n"
    "           migrate` (each user may own max_templates_per_uid of them), or any\n"
    "           as the daemon's user or root\n"
    "  stop     stop the daemon at the socket (not other users'): it takes no new\n"
    "           leases, lets attached ones finish (up to its drain_timeout_s), stops\n"
    "           its servers and exits; returns once it has exited, or exits 75\n"
    "           after --timeout SEC (default 120). --now ends every lease at once\n"
    "  drain    as stop, but return at once\n"
    "  reload   make the daemon re-read its configuration file\n"
    "           stop, drain and reload are for the daemon's own user and root\n"
    "\n"
    "Options:\n"
    "  --socket PATH  dbleased's socket; default $DBLEASE_SOCKET, else\n"
    "                 $XDG_RUNTIME_DIR/dblease/dblease.sock, else\n"
    "                 /run/dblease/dblease.sock (root) or /tmp/dblease-$UID/dblease.sock.\n"
    "                 The daemon must run as you or root, or, at a socket you name\n"
    "                 here or in DBLEASE_SOCKET, as the owner of a directory nobody\n"
    "                 else can write (see dblease(1), SECURITY)\n"
    "  -h, --help     show this help\n"
    "  --version      show the version\n"
    "\n"
    "Exit status: 0 ok, 1 error, 2 bad usage (also a value out of the daemon's\n"
    "range), 69 dbleased unreachable or not trusted, 75 pool exhausted or timed out\n"
    "(retry later); run and template migrate exit with CMD's status (128+N if a\n"
    "signal N killed it).\n";

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

int cli_check_ttl(const dbl_ctx_t *ctx, const char *opt, int *ttl_s, int dflt)
{
    int max = ctx->priv->max_ttl_s;

    if (*ttl_s == 0)
        *ttl_s = max > 0 && dflt > max ? max : dflt;
    else if (max > 0 && *ttl_s > max)
        return cli_usage_error("%s must be from 1 to %d seconds here (dbleased's max_ttl_s), "
                               "not %d",
                               opt, max, *ttl_s);
    return CLI_OK;
}

/* A request the daemon found out of range can only hold a value the user
 * gave on the command line: a usage error, as if we had caught it. */
static bool bad_option_value(const dbl_ctx_t *ctx)
{
    return strcmp(ctx->code, "bad_request") == 0 &&
           (strstr(ctx->errstr, "ttl_s") || strstr(ctx->errstr, "wait_ms"));
}

int cli_exit_code(const dbl_ctx_t *ctx)
{
    switch (ctx->err) {
    case DBL_ERR_NONE:
        return CLI_OK;
    case DBL_ERR_UNAVAILABLE:
    case DBL_ERR_UNTRUSTED: /* our daemon is not the one there */
        return CLI_UNAVAILABLE;
    case DBL_ERR_TIMEOUT:
        return CLI_TEMPFAIL;
    case DBL_ERR_USAGE:
        return CLI_USAGE;
    case DBL_ERR_REMOTE:
        if (!strcmp(ctx->code, "pool_exhausted") || !strcmp(ctx->code, "timeout"))
            return CLI_TEMPFAIL;
        return bad_option_value(ctx) ? CLI_USAGE : CLI_FAILED;
    default:
        return CLI_FAILED;
    }
}

/* The daemon words its advice for any client, in the protocol's terms;
 * a person at this CLI knows its flags. Longer phrases come first. */
static const struct {
    const char *proto, *cli;
} cli_words[] = {
    {"create it with template.ensure", "build it with `dblease template migrate NAME --hash "
                                       "HASH -- CMD`"},
    {"run `dblease template migrate` or template.ensure first",
     "run `dblease template migrate` first"},
    {"call template.ensure again", "run `dblease template migrate` again"},
    {"call template.ensure first", "run `dblease template migrate` first"},
    {"template.ensure", "`dblease template migrate`"},
    {"template.drop", "`dblease template drop`"},
    {"raise wait_ms", "wait longer (--wait MS, up to 600000)"},
    {"pass wait_ms", "pass --wait MS"},
    {"omit template", "leave out --template"},
    {"wait_ms", "--wait MS"},
    {"ttl_s", "--ttl SEC"},
};

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Which entry of cli_words starts at msg[at] as a whole word; -1: none. */
static int word_at(const char *msg, size_t at)
{
    for (size_t i = 0; i < sizeof(cli_words) / sizeof(cli_words[0]); i++) {
        size_t n = strlen(cli_words[i].proto);

        if (strncmp(msg + at, cli_words[i].proto, n) == 0 && !word_char(msg[at + n]) &&
            (at == 0 || !word_char(msg[at - 1])))
            return (int)i;
    }
    return -1;
}

/* msg with the protocol's words replaced by the CLI's, into out. Whole
 * words only: the daemon's config keys (max_ttl_s) stay as they are. */
static void cli_wording(const char *msg, char *out, size_t len)
{
    size_t n = 0, at = 0;

    while (msg[at] && n + 1 < len) {
        int w = word_at(msg, at);

        if (w < 0) {
            out[n++] = msg[at++];
            continue;
        }
        n += (size_t)snprintf(out + n, len - n, "%s", cli_words[w].cli);
        n = n < len ? n : len - 1;
        at += strlen(cli_words[w].proto);
    }
    out[n] = '\0';
}

int cli_fail(const dbl_ctx_t *ctx)
{
    char msg[2 * DBL_ERRSTR_LEN];

    /* The code is there for scripts and bug reports; the message for people. */
    if (ctx->err == DBL_ERR_REMOTE) {
        cli_wording(ctx->errstr, msg, sizeof(msg));
        fprintf(stderr, "dblease: %s (%s)\n", msg, ctx->code);
    } else {
        fprintf(stderr, "dblease: %s\n", ctx->errstr);
    }
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
    {"stop", cli_cmd_admin},    {"drain", cli_cmd_admin},     {"reload", cli_cmd_admin},
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
        return cli_usage_error("missing command: lease, release, renew, status, run, template, "
                               "stop, drain or reload");
    rc = dispatch(&g, argc - optind, argv + optind);
    /* Output that never got out (a full disk, a closed pipe) is a failure. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "dblease: cannot write output: %s\n", strerror(errno));
        return rc ? rc : CLI_FAILED;
    }
    return rc;
}
