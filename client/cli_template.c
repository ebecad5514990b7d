/* dblease template migrate | ensure | drop: client-driven template migrations.
 *
 * `migrate` asks the daemon to ensure a template at a hash. When it is ready
 * there is nothing to do. Otherwise this process holds the claim to build it:
 * it runs the migration command against the template database, keeping its
 * connection (and with it the claim) open, then finalizes the template or,
 * if the command failed, abandons it. If dblease dies meanwhile, the daemon
 * sees the connection close and abandons the claim itself, and the command
 * gets SIGTERM (cli_child.c), so nothing depends on our cleanup running.
 *
 * `ensure` only reports the state ("ready", or "missing", exit 1): it asks
 * the daemon read-only (claim: false), so it never claims anything.
 *
 * `drop` retires a template (template.drop): its creator's, or any as the
 * daemon's user or root. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"

/* PROTOCOL.md, template.ensure. */
#define NAME_MAX_LEN 63
#define HASH_MAX_LEN 64

enum { OPT_HASH = 0x101, OPT_WAIT, OPT_JSON };

typedef struct tmpl_args {
    const char *name;
    const char *hash;
    int wait_ms; /* -1: the daemon's default */
    bool json;
} tmpl_args_t;

static bool valid_word(const char *s, size_t max)
{
    size_t n = strlen(s);

    return n >= 1 && n <= max &&
           strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789_.-") == n;
}

static int tmpl_opt(cli_global_t *g, int c, char **argv, tmpl_args_t *a)
{
    switch (c) {
    case OPT_HASH:
        if (!valid_word(optarg, HASH_MAX_LEN))
            return cli_usage_error("--hash must be 1 to %d characters of A-Z a-z 0-9 _ . -, "
                                   "e.g. a hex SHA-256 of the migrations, not '%s'",
                                   HASH_MAX_LEN, optarg);
        a->hash = optarg;
        return -1;
    case OPT_WAIT:
        return cli_parse_int("--wait", optarg, 0, CLI_MAX_WAIT_MS, &a->wait_ms) ? CLI_USAGE : -1;
    case OPT_JSON:
        a->json = true;
        return -1;
    default:
        return cli_common_opt(g, c, argv);
    }
}

/* Options, then NAME and nothing after it (ensure, drop). -1: go on;
 * else the exit status. */
static int read_name_args(cli_global_t *g, int argc, char **argv, const struct option *opts,
                          tmpl_args_t *a)
{
    int c, rc;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1)
        if ((rc = tmpl_opt(g, c, argv, a)) >= 0)
            return rc;
    if (optind < argc)
        a->name = argv[optind++];
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    return -1;
}

static int check_name(const char *sub, const tmpl_args_t *a)
{
    if (!a->name)
        return cli_usage_error("template %s needs a template NAME", sub);
    if (!valid_word(a->name, NAME_MAX_LEN))
        return cli_usage_error("a template name is 1 to %d characters of A-Z a-z 0-9 _ . -, "
                               "not '%s'",
                               NAME_MAX_LEN, a->name);
    return 0;
}

/* Checks what every template subcommand needs once the options are read. */
static int check_args(const char *sub, const tmpl_args_t *a)
{
    int rc = check_name(sub, a);

    if (rc != 0)
        return rc;
    if (!a->hash)
        return cli_usage_error("template %s needs --hash HASH, e.g. "
                               "--hash \"$(cat migrations/*.sql | sha256sum | cut -d' ' -f1)\"",
                               sub);
    return 0;
}

/* Runs the migration command against the template database, then ends the
 * claim: finalized if the command succeeded, abandoned otherwise. */
static int run_migration(dbl_ctx_t *ctx, const tmpl_args_t *a, const dbl_template_t *t, char **cmd)
{
    cli_pg_env_t e = {.url = t->url,
                      .host = t->host,
                      .port = t->port,
                      .dbname = t->dbname,
                      .user = t->user,
                      .password = t->password};
    cli_child_t child;
    bool ok;
    int rc;

    cli_export_postgres(&e);
    rc = cli_child_start(&child, cmd);
    if (rc == CLI_OK)
        rc = cli_child_wait(&child, NULL);
    ok = rc == 0 && child.pid > 0;
    /* Our signal handlers stay until cli_child_end(), so a late Ctrl-C
     * cannot kill us before the claim is ended. */
    if (dbl_template_finalize(ctx, a->name, a->hash, ok, NULL) < 0) {
        if (ok) {
            fprintf(stderr,
                    "dblease: the migration succeeded, but template %s (%s) could not be "
                    "finalized: %s\n",
                    a->name, a->hash, ctx->errstr);
            rc = cli_exit_code(ctx);
        } else if (ctx->err != DBL_ERR_IO) { /* a closed connection abandons it anyway */
            fprintf(stderr, "dblease: warning: could not abandon template %s (%s): %s\n", a->name,
                    a->hash, ctx->errstr);
        }
    } else if (ok) {
        fprintf(stderr, "dblease: template %s (%s) is ready\n", a->name, a->hash);
    } else if (child.pid > 0) {
        fprintf(stderr,
                "dblease: the migration failed (%s %d); template %s (%s) was abandoned, "
                "the next `template migrate` retries it\n",
                rc > 128 ? "killed by signal" : "exit status", rc > 128 ? rc - 128 : rc, a->name,
                a->hash);
    }
    cli_child_end(&child);
    return rc;
}

static int migrate(cli_global_t *g, const tmpl_args_t *a, char **cmd)
{
    dbl_template_t *t;
    char client[128];
    dbl_ctx_t *ctx;
    int rc;

    snprintf(client, sizeof(client), "dblease template migrate %s", a->name);
    if (!(ctx = cli_connect(g, client, &rc)))
        return rc;
    if (dbl_template_ensure(ctx, a->name, a->hash, a->wait_ms, &t) < 0) {
        rc = cli_fail(ctx);
    } else {
        if (strcmp(t->state, "ready") == 0) {
            fprintf(stderr, "dblease: template %s (%s) is ready\n", a->name, a->hash);
            rc = CLI_OK;
        } else if (strcmp(t->state, "migrate") == 0) {
            rc = run_migration(ctx, a, t, cmd);
        } else {
            fprintf(stderr,
                    "dblease: dbleased says template %s is '%s', which this dblease "
                    "does not know; upgrade dblease\n",
                    a->name, t->state);
            rc = CLI_FAILED;
        }
        dbl_template_free(t);
    }
    dbl_free(ctx);
    return rc;
}

static int cmd_migrate(cli_global_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"hash", required_argument, NULL, OPT_HASH},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"socket", required_argument, NULL, CLI_OPT_SOCKET},
        {"help", no_argument, NULL, CLI_OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    /* Parallel workers wait for one migrator; a migration takes far longer
     * than preparing a lease, so they wait up to the protocol's maximum
     * (10 min) unless told otherwise. */
    tmpl_args_t a = {.wait_ms = CLI_MAX_WAIT_MS};
    int c, rc, before, skip;

    /* Options, NAME, more options, then the command, after '--' or not.
     * '+' stops getopt at the first word that is not an option, so the
     * command's own options stay its own. */
    for (;;) {
        before = optind ? optind : 1;
        if ((c = getopt_long(argc, argv, "+:h", opts, NULL)) == -1)
            break;
        if ((rc = tmpl_opt(g, c, argv, &a)) >= 0)
            return rc;
    }
    if (optind < argc) {
        bool dashes = optind > before; /* getopt stepped over a "--" */

        a.name = argv[optind++];
        /* More options after NAME: scan from it as if it were argv[0]. */
        if (!dashes && optind < argc) {
            skip = optind - 1;
            optind = 0;
            while ((c = getopt_long(argc - skip, argv + skip, "+:h", opts, NULL)) != -1)
                if ((rc = tmpl_opt(g, c, argv + skip, &a)) >= 0)
                    return rc;
            optind += skip;
        }
    }
    if ((rc = check_args("migrate", &a)) != 0)
        return rc;
    if (optind >= argc)
        return cli_usage_error("template migrate needs a command to run, e.g. "
                               "template migrate %s --hash HASH -- ./migrate.sh",
                               a.name);
    return migrate(g, &a, argv + optind);
}

static void print_state(const tmpl_args_t *a, const dbl_template_t *t)
{
    json_object *o;

    if (!a->json) {
        printf("%s\n", t->state);
        return;
    }
    o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(t->name));
    json_object_object_add(o, "hash", json_object_new_string(t->hash));
    json_object_object_add(o, "state", json_object_new_string(t->state));
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

static int cmd_ensure(cli_global_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"hash", required_argument, NULL, OPT_HASH},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"json", no_argument, NULL, OPT_JSON},
        {"socket", required_argument, NULL, CLI_OPT_SOCKET},
        {"help", no_argument, NULL, CLI_OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    tmpl_args_t a = {.wait_ms = -1};
    dbl_template_t *t;
    dbl_ctx_t *ctx;
    int rc;

    if ((rc = read_name_args(g, argc, argv, opts, &a)) >= 0)
        return rc;
    if ((rc = check_args("ensure", &a)) != 0)
        return rc;
    if (!(ctx = cli_connect(g, "dblease template ensure", &rc)))
        return rc;
    /* A read-only query: it never takes the claim, so it can neither
     * block a migrator nor leave a half-made version behind. */
    if (dbl_template_query(ctx, a.name, a.hash, a.wait_ms, &t) < 0) {
        rc = cli_fail(ctx);
    } else {
        print_state(&a, t);
        rc = CLI_OK;
        if (strcmp(t->state, "ready") != 0) {
            fprintf(stderr,
                    "dblease: template %s (%s) is not built; build it with "
                    "`dblease template migrate %s --hash %s -- CMD`\n",
                    a.name, a.hash, a.name, a.hash);
            rc = CLI_FAILED;
        }
        dbl_template_free(t);
    }
    dbl_free(ctx);
    return rc;
}

static int cmd_drop(cli_global_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, CLI_OPT_SOCKET},
        {"help", no_argument, NULL, CLI_OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    tmpl_args_t a = {.wait_ms = -1};
    dbl_ctx_t *ctx;
    int rc;

    if ((rc = read_name_args(g, argc, argv, opts, &a)) >= 0)
        return rc;
    if ((rc = check_name("drop", &a)) != 0)
        return rc;
    if (!(ctx = cli_connect(g, "dblease template drop", &rc)))
        return rc;
    if (dbl_template_drop(ctx, a.name) < 0) {
        rc = cli_fail(ctx);
    } else {
        fprintf(stderr,
                "dblease: template %s is dropped: no new leases from it; its databases go "
                "when their leases end\n",
                a.name);
        rc = CLI_OK;
    }
    dbl_free(ctx);
    return rc;
}

int cli_cmd_template(cli_global_t *g, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("template needs a subcommand: migrate, ensure or drop");
    if (strcmp(argv[1], "migrate") == 0)
        return cmd_migrate(g, argc - 1, argv + 1);
    if (strcmp(argv[1], "ensure") == 0)
        return cmd_ensure(g, argc - 1, argv + 1);
    if (strcmp(argv[1], "drop") == 0)
        return cmd_drop(g, argc - 1, argv + 1);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
        return cli_common_opt(g, CLI_OPT_HELP, argv);
    return cli_usage_error("unknown template subcommand '%s': migrate, ensure or drop", argv[1]);
}
