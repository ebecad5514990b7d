/* libdblease — lease isolated databases from a dbleased daemon.
 *
 * A blocking client: one context is one connection to the daemon. Leases
 * taken without `detach` end when the context is freed or the process dies.
 * Every call returns 0 on success and -1 on failure, with ctx->err and
 * ctx->errstr set (and ctx->code for errors the daemon reported).
 * Not thread-safe: use one context per thread. */
#ifndef DBLEASE_H
#define DBLEASE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Room for a daemon's message in full (a failed migration names the file,
 * the line and PostgreSQL's error) and for our advice on what to do. */
#define DBL_ERRSTR_LEN 512

typedef enum dbl_err {
    DBL_ERR_NONE = 0,
    DBL_ERR_UNAVAILABLE, /* cannot reach the daemon (no socket, refused) */
    DBL_ERR_IO,          /* the connection failed or closed mid-request */
    DBL_ERR_TIMEOUT,     /* no reply within timeout_ms */
    DBL_ERR_PROTOCOL,    /* the daemon sent something we cannot parse */
    DBL_ERR_REMOTE,      /* the daemon refused: see ctx->code */
    DBL_ERR_USAGE,       /* bad arguments to this library */
    DBL_ERR_OOM,
    DBL_ERR_UNTRUSTED, /* the socket's daemon or directory belongs to another
                          user (see dbl_connect()); errstr says whose */
} dbl_err_t;

typedef struct dbl_options {
    const char *socket_path; /* NULL: $DBLEASE_SOCKET or the default path */
    int timeout_ms;          /* per request, not counting wait_ms; 0: 30000 */
    const char *client_name; /* shown in status, e.g. "pytest gw3"; may be NULL */
} dbl_options_t;

typedef struct dbl_ctx {
    int err;                     /* dbl_err_t */
    char errstr[DBL_ERRSTR_LEN]; /* human text, says what to do */
    char code[32];               /* protocol error code when err == DBL_ERR_REMOTE */
    struct dbl_ctx_priv *priv;
} dbl_ctx_t;

typedef struct dbl_lease_opts {
    const char *kind;          /* "postgres" (NULL) or "redis" */
    const char *template_name; /* NULL: the built-in empty template */
    int ttl_s;                 /* 0: the daemon's default */
    int wait_ms;               /* <0: the daemon's default; 0: fail at once */
    bool detach;               /* survive this connection */
} dbl_lease_opts_t;

typedef struct dbl_lease {
    char *id;       /* "L-…" */
    char *kind;     /* "postgres" | "redis" */
    char *template_name;
    char *url;      /* postgresql://… or redis://… */
    char *host;     /* NULL when only a socket is given */
    int port;
    char *socket;   /* NULL unless the lease is reached over a Unix socket */
    char *dbname;   /* postgres */
    int db;         /* redis database number */
    char *user;
    char *password;
    int64_t expires_at; /* Unix seconds */
    /* Appended last, so the fields above keep their offsets. */
    char *schema;       /* postgres, isolation = schema: the lease's own schema in
                           the shared database dbname; NULL otherwise */
} dbl_lease_t;

/* A template migrated by clients (PROTOCOL.md, template.ensure). */
typedef struct dbl_template {
    char *name;
    char *hash;
    char *state;    /* "ready" | "migrate" | "abandoned" */
    /* When state is "migrate": the template database, as its owner role. */
    char *url;
    char *host;
    int port;
    char *dbname;
    char *user;
    char *password;
} dbl_template_t;

/* Connect and say hello. Always returns a context (NULL only on ENOMEM):
 * check ctx->err, then dbl_free() it either way. Before hello, the daemon
 * must prove it may be trusted (DBL_ERR_UNTRUSTED otherwise): it runs as
 * the caller or root; or, at a socket the caller named (socket_path or
 * DBLEASE_SOCKET), as the user who owns the socket's directory, when that
 * directory is writable by nobody else. At a default path the directory
 * must also belong to the caller or root and be writable by nobody else. */
dbl_ctx_t *dbl_connect(const dbl_options_t *opts);
void dbl_free(dbl_ctx_t *ctx);

int dbl_lease(dbl_ctx_t *ctx, const dbl_lease_opts_t *opts, dbl_lease_t **out);
void dbl_lease_free(dbl_lease_t *lease);
/* lease_id: the lease's id ("L-…") or the URL it was granted with. */
int dbl_release(dbl_ctx_t *ctx, const char *lease_id, bool clean);
int dbl_renew(dbl_ctx_t *ctx, const char *lease_id, int ttl_s, int64_t *expires_at);
/* The daemon's status object as a JSON string; free() it. */
int dbl_status(dbl_ctx_t *ctx, char **json);

/* Client-driven migrations. Make sure the template name at version hash
 * exists (hash: 1-64 of [A-Za-z0-9_.-], typically a hex SHA-256 of the
 * migration files). state "ready": nothing to do, leases with this template
 * name come from it. state "migrate": this context now holds the claim on
 * name+hash: migrate the database in *out, then dbl_template_finalize().
 * Freeing the context before that abandons the claim. While another client
 * holds the claim, waits up to wait_ms (<0: the daemon's default) for it to
 * finish, then fails with code "timeout". */
int dbl_template_ensure(dbl_ctx_t *ctx, const char *name, const char *hash, int wait_ms,
                        dbl_template_t **out);
/* Read-only: the state of name at hash, never a claim. "ready", or
 * "missing" (nobody has built it: dbl_template_ensure() to migrate it);
 * while another client migrates it, waits up to wait_ms as ensure does. */
int dbl_template_query(dbl_ctx_t *ctx, const char *name, const char *hash, int wait_ms,
                       dbl_template_t **out);
/* Ends this context's claim: ok freezes the migrated template and makes it
 * the one leases come from; !ok drops it ("abandoned"), handing the claim to
 * the next waiter. out may be NULL. */
int dbl_template_finalize(dbl_ctx_t *ctx, const char *name, const char *hash, bool ok,
                          dbl_template_t **out);
void dbl_template_free(dbl_template_t *t);
/* Retire template name (a client template you created; any, as root or
 * the daemon's user): no new leases from it, its databases dropped once
 * their leases end. Frees its place in max_templates_per_uid at once. */
int dbl_template_drop(dbl_ctx_t *ctx, const char *name);

/* The daemon's version string from hello ("0.1.0"). */
const char *dbl_daemon_version(const dbl_ctx_t *ctx);

#ifdef __cplusplus
}
#endif
#endif
