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
 * chances before anything expires.
 *
 * Forking the command and forwarding signals to it is cli_child.c's. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "client_priv.h"

#ifndef RUN_TTL_S /* overridable so a test build can watch renewals happen */
#define RUN_TTL_S 900
#endif

enum { OPT_POSTGRES = 0x101, OPT_REDIS, OPT_WAIT, OPT_TTL };

typedef struct run_lease {
    dbl_lease_t *lease;
    bool gone; /* the daemon no longer has it: do not renew or release */
} run_lease_t;

typedef struct run {
    bool postgres, redis;
    const char *pg_template;
    int wait_ms; /* -1: the daemon's default */
    int ttl_s;   /* 0: RUN_TTL_S */
    run_lease_t leases[2];
    size_t n;
} run_t;

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
    case OPT_WAIT:
        return cli_parse_int("--wait", optarg, 0, CLI_MAX_WAIT_MS, &r->wait_ms) ? CLI_USAGE : -1;
    case OPT_TTL:
        return cli_parse_int("--ttl", optarg, 1, INT_MAX, &r->ttl_s) ? CLI_USAGE : -1;
    default:
        return cli_common_opt(g, c, argv);
    }
}

static int take_lease(dbl_ctx_t *ctx, run_t *r, const char *kind, const char *tmpl)
{
    dbl_lease_opts_t lo = {
        .kind = kind, .template_name = tmpl, .ttl_s = r->ttl_s, .wait_ms = r->wait_ms};

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
        if (r->leases[i].gone || dbl_release(ctx, l->id, clean) == 0 || ctx->err == DBL_ERR_IO)
            ;
        else if (ctx->err == DBL_ERR_REMOTE && strcmp(ctx->code, "not_found") == 0)
            fprintf(stderr, "dblease: lease %s had already ended before the command did\n", l->id);
        else
            fprintf(stderr, "dblease: warning: could not release %s: %s\n", l->id, ctx->errstr);
        dbl_lease_free(l);
    }
    r->n = 0;
}

static void export_postgres(const dbl_lease_t *l)
{
    cli_pg_env_t e = {.url = l->url, .host = l->host, .port = l->port, .dbname = l->dbname,
                      .user = l->user, .password = l->password, .schema = l->schema};
    char host[4096];

    /* libpq wants the socket's directory, not the .s.PGSQL.N file. */
    if (!e.host && l->socket) {
        const char *file = strstr(l->socket, "/.s.PGSQL.");

        snprintf(host, sizeof(host), "%.*s",
                 file ? (int)(file - l->socket) : (int)strlen(l->socket), l->socket);
        e.host = host;
    }
    cli_export_postgres(&e);
}

static bool is_redis(const dbl_lease_t *l)
{
    return l->kind && strcmp(l->kind, "redis") == 0;
}

/* The ids are for the command's logs and `dblease status`; an inherited
 * one (a run inside a run) must not stand for a lease this run has not. */
static void export_all(const run_t *r)
{
    cli_export("DBLEASE_LEASE_ID", NULL);
    cli_export("DBLEASE_REDIS_LEASE_ID", NULL);
    for (size_t i = 0; i < r->n; i++) {
        const dbl_lease_t *l = r->leases[i].lease;

        if (is_redis(l)) {
            cli_export("REDIS_URL", l->url);
            cli_export("DBLEASE_REDIS_LEASE_ID", l->id);
        } else {
            export_postgres(l);
            cli_export("DBLEASE_LEASE_ID", l->id);
        }
    }
}

/* Tells the user at once that a lease ended under the command (PROTOCOL.md
 * §7), and remembers not to renew or release it. */
static void report_events(dbl_ctx_t *ctx, run_t *r)
{
    dbl__event_t ev;

    while (dbl__next_event(ctx, &ev)) {
        const char *why = strcmp(ev.name, "instance_down") == 0   ? "its server went down"
                          : strcmp(ev.name, "lease_expired") == 0 ? "its TTL ran out"
                                                                  : NULL;

        for (size_t i = 0; why && i < r->n; i++) {
            run_lease_t *rl = &r->leases[i];

            if (rl->gone || strcmp(rl->lease->id, ev.lease) != 0)
                continue;
            rl->gone = true;
            fprintf(stderr,
                    "dblease: lease %s (%s) has ended: %s (%s); the command keeps running, "
                    "but that database is gone\n",
                    ev.lease, rl->lease->kind ? rl->lease->kind : "postgres", why, ev.name);
        }
    }
}

static void connection_lost(run_t *r)
{
    fputs("dblease: lost the connection to dbleased (did it restart?), so the command's leases "
          "have ended; the command keeps running\n",
          stderr);
    for (size_t i = 0; i < r->n; i++)
        r->leases[i].gone = true;
}

/* Renews every live lease; false once the connection is lost, after
 * which there is nothing left to renew. */
static bool renew_all(dbl_ctx_t *ctx, run_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        run_lease_t *rl = &r->leases[i];

        if (rl->gone || dbl_renew(ctx, rl->lease->id, r->ttl_s, NULL) == 0)
            continue;
        if (ctx->err == DBL_ERR_IO) {
            connection_lost(r);
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

typedef struct renew_arg {
    dbl_ctx_t *ctx;
    run_t *r;
} renew_arg_t;

static bool on_readable(void *arg);

static bool renew_tick(void *arg)
{
    renew_arg_t *ra = arg;

    /* Events may have come with the replies, and lines after them. */
    return renew_all(ra->ctx, ra->r) && on_readable(ra);
}

/* Takes in what the daemon sent, including what is already buffered
 * (an event may come in the same read as a reply). */
static bool on_readable(void *arg)
{
    renew_arg_t *ra = arg;

    if (dbl__fd(ra->ctx) < 0) /* lost already, and said so */
        return false;
    if (dbl__poll_events(ra->ctx) < 0) {
        connection_lost(ra->r);
        return false;
    }
    report_events(ra->ctx, ra->r);
    return true;
}

static int run_command(dbl_ctx_t *ctx, run_t *r, char **cmd)
{
    renew_arg_t ra = {ctx, r};
    cli_watch_t w = {.tick_ms = r->ttl_s * 1000 / 3,
                     .tick = renew_tick,
                     .fd = dbl__fd(ctx),
                     .readable = on_readable,
                     .arg = &ra};
    cli_child_t child;
    int rc;

    export_all(r);
    rc = cli_child_start(&child, cmd);
    if (rc == CLI_OK && !on_readable(&ra))
        w.fd = -1;
    if (rc == CLI_OK)
        rc = cli_child_wait(&child, &w);
    /* Our signal handlers stay in place until here, so a late Ctrl-C cannot
     * cut the release short. */
    release_all(ctx, r, false);
    cli_child_end(&child);
    return rc;
}

int cli_cmd_run(cli_global_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"postgres", optional_argument, NULL, OPT_POSTGRES},
        {"redis", no_argument, NULL, OPT_REDIS},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"socket", required_argument, NULL, CLI_OPT_SOCKET},
        {"help", no_argument, NULL, CLI_OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    run_t r = {.wait_ms = -1};
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
    rc = cli_check_ttl(ctx, "--ttl", &r.ttl_s, RUN_TTL_S);
    if (rc == CLI_OK && r.postgres)
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
