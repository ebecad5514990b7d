/* dblease CLI: what the subcommand files share. */
#ifndef DBL_CLI_H
#define DBL_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <sys/types.h>

#include "dblease.h"

/* Exit codes (sysexits.h values where one fits). */
enum {
    CLI_OK = 0,
    CLI_FAILED = 1,
    CLI_USAGE = 2,
    CLI_UNAVAILABLE = 69, /* EX_UNAVAILABLE: daemon not reachable */
    CLI_TEMPFAIL = 75,    /* EX_TEMPFAIL: pool exhausted or timed out */
};

/* The longest --wait the protocol allows (PROTOCOL.md, `lease`): 10 min. */
#define CLI_MAX_WAIT_MS 600000

/* Options given before the subcommand. */
typedef struct cli_global {
    const char *socket_path; /* NULL: the library's default */
} cli_global_t;

/* Option value shared by every subcommand's option table: --socket is also
 * accepted after the subcommand, where people tend to type it. */
#define CLI_OPT_SOCKET 0x100
#define CLI_OPT_HELP 'h'

/* Prints "dblease: <message>; try 'dblease --help'" and returns CLI_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Handles what getopt_long() returned that the subcommand did not:
 * --socket, --help, unknown options, missing arguments. Returns -1 to go
 * on parsing, or an exit code. */
int cli_common_opt(cli_global_t *g, int c, char **argv);
/* Parses a decimal integer in [min, max] for option opt; 0 or CLI_USAGE. */
int cli_parse_int(const char *opt, const char *arg, long min, long max, int *out);

/* Checks --ttl (opt) against the longest TTL the daemon accepts, as it
 * said in hello: CLI_OK, or CLI_USAGE after saying so. A *ttl_s of 0
 * becomes dflt, cut to that longest TTL (0 stays 0: the daemon's default). */
int cli_check_ttl(const dbl_ctx_t *ctx, const char *opt, int *ttl_s, int dflt);

/* Connects and says hello; on failure prints why and returns NULL with
 * *rc set to the exit code. */
dbl_ctx_t *cli_connect(const cli_global_t *g, const char *client_name, int *rc);
/* Prints ctx's error as one line and returns the exit code it maps to. */
int cli_fail(const dbl_ctx_t *ctx);
int cli_exit_code(const dbl_ctx_t *ctx);

/* "2024-05-01T12:00:00Z" into buf (at least 21 bytes). */
const char *cli_iso_time(int64_t t, char *buf, size_t len);

/* cli_child.c: running a command as our child (run, template migrate). */

/* Where a command finds a postgres database: DATABASE_URL and libpq's
 * PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD (a NULL field unsets the
 * variable, so an inherited one cannot mix in), plus PGOPTIONS with a
 * search_path when there is a schema. Inherited libpq variables that would
 * redirect or break that connection (PGHOSTADDR, PGSERVICE, PGSSLMODE...)
 * are unset. */
typedef struct cli_pg_env {
    const char *url, *host;
    int port;
    const char *dbname, *user, *password, *schema;
} cli_pg_env_t;

void cli_export_postgres(const cli_pg_env_t *e);
/* Sets name to value for the command; NULL unsets it. */
void cli_export(const char *name, const char *value);

typedef struct cli_child {
    pid_t pid;
    int pipefd[2];
} cli_child_t;

/* Starts cmd with the current environment, forwarding SIGINT, SIGTERM,
 * SIGHUP and SIGQUIT to it from now until cli_child_end() (so that the
 * caller's cleanup after the command cannot be cut short). CLI_OK, or
 * CLI_FAILED after printing why; call cli_child_end() either way. */
int cli_child_start(cli_child_t *c, char **cmd);
/* What to do while the command runs: call tick(arg) every tick_ms until it
 * returns false, and readable(arg) whenever fd can be read until it returns
 * false. Either may be NULL; fd -1 watches nothing. */
typedef struct cli_watch {
    int tick_ms;
    bool (*tick)(void *arg);
    int fd;
    bool (*readable)(void *arg);
    void *arg;
} cli_watch_t;

/* Waits for the command and returns its exit status (128 + N when killed
 * by signal N), doing what w says meanwhile (w may be NULL). */
int cli_child_wait(cli_child_t *c, const cli_watch_t *w);
void cli_child_end(cli_child_t *c);

int cli_cmd_lease(cli_global_t *g, int argc, char **argv);
int cli_cmd_release(cli_global_t *g, int argc, char **argv);
int cli_cmd_renew(cli_global_t *g, int argc, char **argv);
int cli_cmd_status(cli_global_t *g, int argc, char **argv);
int cli_cmd_run(cli_global_t *g, int argc, char **argv);
int cli_cmd_template(cli_global_t *g, int argc, char **argv);
/* stop, drain and reload: argv[0] says which. */
int cli_cmd_admin(cli_global_t *g, int argc, char **argv);

#endif
