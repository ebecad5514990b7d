/* An asynchronous libpq connection driven by the libuv loop: nothing here
 * ever blocks. Statements queue and run one at a time, in order. Every
 * connect and every statement has a deadline: a connection that passes one
 * is failed (-ETIMEDOUT), its callbacks run once, with the error. */
#ifndef DBL_PG_CONN_H
#define DBL_PG_CONN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <uv.h>

typedef struct pgc pgc_t;

/* Connected (err 0) or failed/broken (err < 0, msg says why). Called once
 * for the connect outcome and once more if an open connection breaks. */
typedef void (*pgc_status_cb)(pgc_t *c, int err, const char *msg, void *ud);
/* A sequence finished: err 0, or < 0 with the server's message. res is the
 * last statement's result, or the failing one's (for its error fields), or
 * NULL when the connection failed; it is freed after the callback. */
typedef void (*pgc_done_cb)(void *ud, int err, const char *msg, const PGresult *res);

/* Defaults: a server that has not let us in within 10 s is not going to;
 * a statement of ours (DDL, a migration file) gets 5 minutes. */
#define PGC_CONNECT_TIMEOUT_MS 10000
#define PGC_STATEMENT_TIMEOUT_MS 300000

typedef struct pgc_opts {
    const char *conninfo; /* key=value string or postgresql:// URL */
    const char *dbname;   /* NULL, or the database instead of conninfo's */
    const char *application_name; /* NULL, or instead of conninfo's */
    const char *options;          /* NULL, or the server options instead of conninfo's */
    int connect_timeout_ms;   /* 0: PGC_CONNECT_TIMEOUT_MS */
    int statement_timeout_ms; /* each statement's own; 0: PGC_STATEMENT_TIMEOUT_MS */
} pgc_opts_t;

/* Start connecting. NULL with *err set if libpq could not even start (then
 * the callback is never called). */
pgc_t *pgc_open(uv_loop_t *loop, const pgc_opts_t *o, pgc_status_cb cb, void *ud,
                const char **err);
/* pgc_open with the default deadlines. */
pgc_t *pgc_connect(uv_loop_t *loop, const char *conninfo, pgc_status_cb cb, void *ud,
                   const char **err);
/* Queue statements to run in order, each on its own (so CREATE DATABASE,
 * which refuses multi-statement strings, works); stops at the first error.
 * The strings are copied. 0, or -ENOTCONN/-ENOMEM (callback not called). */
int pgc_exec(pgc_t *c, const char *const *sql, int n, pgc_done_cb cb, void *ud);
/* Fail queued work with -ECANCELED (callbacks run), close, free later. */
void pgc_close(pgc_t *c);

/* Hand the connection to a new owner (its breakage is reported there). */
void pgc_set_status_cb(pgc_t *c, pgc_status_cb cb, void *ud);
bool pgc_is_up(const pgc_t *c);

size_t pgc_queue_len(const pgc_t *c);
/* What the connection is doing, for a log line: state, queued jobs, the
 * running statement's first words (never its text: it may carry a
 * password) and for how long. */
void pgc_describe(const pgc_t *c, char *out, size_t len);
/* For libpq helpers that need a connection (escaping, password hashing). */
PGconn *pgc_raw(pgc_t *c);

#endif
