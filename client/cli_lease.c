/* dblease lease | release | renew: one request each on a fresh connection. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "client_priv.h"

/* A detached lease outlives the CLI, so it must expire on its own if the
 * caller forgets it: 15 minutes, as the design says. */
#define LEASE_DEFAULT_TTL_S 900

enum { OPT_KIND = 0x101, OPT_TEMPLATE, OPT_TTL, OPT_WAIT, OPT_JSON, OPT_CLEAN };

#define COMMON_OPTS                                                                    \
    {"socket", required_argument, NULL, CLI_OPT_SOCKET},                               \
        {"help", no_argument, NULL, CLI_OPT_HELP}

#define LEASE_OPERAND "a LEASE_ID (see `dblease status`) or the URL `dblease lease` printed"

/* Checks that exactly `want` operands follow the options. */
static int operands(int argc, char **argv, int want, const char *what)
{
    int have = argc - optind;

    if (have < want)
        return cli_usage_error("%s needs %s", argv[0], what);
    if (have > want)
        return cli_usage_error("unexpected argument '%s'", argv[optind + want]);
    return 0;
}

/* Prints the lease; a lease whose URL never reached the caller is no use to
 * anyone, so it goes straight back. */
static int print_lease(dbl_ctx_t *ctx, const dbl_lease_t *l, json_object *raw, bool json)
{
    if (json)
        printf("%s\n", json_object_to_json_string_ext(
                           raw, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
    else
        printf("%s\n", l->url);
    if (fflush(stdout) != 0) {
        perror("dblease: cannot print the lease, so it was released");
        dbl_release(ctx, l->id, true);
        return CLI_FAILED;
    }
    if (!json && isatty(STDERR_FILENO)) {
        char when[32];

        fprintf(stderr, "dblease: lease %s until %s; end it with `dblease release %s`\n", l->id,
                cli_iso_time(l->expires_at, when, sizeof(when)), l->id);
    }
    return CLI_OK;
}

static int lease_opt(cli_global_t *g, int c, char **argv, dbl_lease_opts_t *lo, bool *json)
{
    switch (c) {
    case OPT_KIND:
        if (strcmp(optarg, "postgres") != 0 && strcmp(optarg, "redis") != 0)
            return cli_usage_error("--kind must be postgres or redis, not '%s'", optarg);
        lo->kind = optarg;
        return -1;
    case OPT_TEMPLATE:
        if (!*optarg)
            return cli_usage_error("--template needs a name");
        lo->template_name = optarg;
        return -1;
    case OPT_TTL:
        return cli_parse_int("--ttl", optarg, 1, INT_MAX, &lo->ttl_s) ? CLI_USAGE : -1;
    case OPT_WAIT:
        return cli_parse_int("--wait", optarg, 0, CLI_MAX_WAIT_MS, &lo->wait_ms) ? CLI_USAGE : -1;
    case OPT_JSON:
        *json = true;
        return -1;
    default:
        return cli_common_opt(g, c, argv);
    }
}

int cli_cmd_lease(cli_global_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"kind", required_argument, NULL, OPT_KIND},
        {"template", required_argument, NULL, OPT_TEMPLATE},
        {"ttl", required_argument, NULL, OPT_TTL},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"json", no_argument, NULL, OPT_JSON},
        COMMON_OPTS,
        {NULL, 0, NULL, 0},
    };
    dbl_lease_opts_t lo = {.wait_ms = -1, .detach = true};
    dbl_lease_t *lease;
    json_object *raw;
    dbl_ctx_t *ctx;
    bool json = false;
    int c, rc;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1)
        if ((rc = lease_opt(g, c, argv, &lo, &json)) >= 0)
            return rc;
    if ((rc = operands(argc, argv, 0, "")) != 0)
        return rc;
    if (!(ctx = cli_connect(g, "dblease lease", &rc)))
        return rc;
    rc = cli_check_ttl(ctx, "--ttl", &lo.ttl_s, LEASE_DEFAULT_TTL_S);
    if (rc == CLI_OK && dbl__lease_raw(ctx, &lo, &lease, &raw) < 0) {
        rc = cli_fail(ctx);
    } else if (rc == CLI_OK) {
        rc = print_lease(ctx, lease, raw, json);
        dbl_lease_free(lease);
        json_object_put(raw);
    }
    dbl_free(ctx);
    return rc;
}

/* Two refusals the daemon words for any client, said for this one: a
 * daemon older than release by URL asks for the lease id; and a lease of
 * the `dblease run` this command runs under belongs to that run's
 * connection. */
static int release_fail(const dbl_ctx_t *ctx, const char *lease)
{
    const char *pg = getenv("DBLEASE_LEASE_ID"), *rd = getenv("DBLEASE_REDIS_LEASE_ID");

    if (strstr(lease, "://") && strcmp(ctx->code, "bad_request") == 0) {
        fprintf(stderr,
                "dblease: this dbleased (%s) takes only lease ids, not URLs; `dblease "
                "status` lists your leases' ids (bad_request)\n",
                dbl_daemon_version(ctx));
        return CLI_FAILED;
    }
    if (strcmp(ctx->code, "not_owner") == 0 &&
        ((pg && strcmp(pg, lease) == 0) || (rd && strcmp(rd, lease) == 0))) {
        fprintf(stderr,
                "dblease: lease %s belongs to the `dblease run` this command runs under: it "
                "renews it, and ends it when the command ends (not_owner)\n",
                lease);
        return CLI_FAILED;
    }
    return cli_fail(ctx);
}

int cli_cmd_release(cli_global_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"clean", no_argument, NULL, OPT_CLEAN},
        COMMON_OPTS,
        {NULL, 0, NULL, 0},
    };
    bool clean = false;
    dbl_ctx_t *ctx;
    int c, rc;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_CLEAN)
            clean = true;
        else if ((rc = cli_common_opt(g, c, argv)) >= 0)
            return rc;
    }
    if ((rc = operands(argc, argv, 1, LEASE_OPERAND)) != 0)
        return rc;
    if (!(ctx = cli_connect(g, "dblease release", &rc)))
        return rc;
    rc = dbl_release(ctx, argv[optind], clean) < 0 ? release_fail(ctx, argv[optind]) : CLI_OK;
    dbl_free(ctx);
    return rc;
}

int cli_cmd_renew(cli_global_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"ttl", required_argument, NULL, OPT_TTL},
        COMMON_OPTS,
        {NULL, 0, NULL, 0},
    };
    int ttl_s = 0; /* 0: the daemon's default */
    int64_t expires_at;
    char when[32];
    dbl_ctx_t *ctx;
    int c, rc;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == OPT_TTL)
            rc = cli_parse_int("--ttl", optarg, 1, INT_MAX, &ttl_s) ? CLI_USAGE : -1;
        else
            rc = cli_common_opt(g, c, argv);
        if (rc >= 0)
            return rc;
    }
    if ((rc = operands(argc, argv, 1, LEASE_OPERAND)) != 0)
        return rc;
    if (!(ctx = cli_connect(g, "dblease renew", &rc)))
        return rc;
    rc = cli_check_ttl(ctx, "--ttl", &ttl_s, 0);
    if (rc == CLI_OK && dbl_renew(ctx, argv[optind], ttl_s, &expires_at) < 0)
        rc = release_fail(ctx, argv[optind]);
    else if (rc == CLI_OK)
        printf("%s\n", cli_iso_time(expires_at, when, sizeof(when)));
    dbl_free(ctx);
    return rc;
}
