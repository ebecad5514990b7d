/* An asynchronous hiredis connection on the libuv loop (our adapter,
 * rd_uv.h), authenticated as a given ACL user. Commands queue and their
 * callbacks run in order; a lost connection fails every pending one.
 * Nothing waits forever: the connection must be up within its connect
 * deadline, and each command answered within its own; a silent server
 * (SIGSTOP, a runaway script) fails the connection with -ETIMEDOUT. */
#ifndef DBL_RD_CONN_H
#define DBL_RD_CONN_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

typedef struct rdc rdc_t;

typedef struct rdc_opts {
    const char *name; /* for the log: whose connection */
    uv_loop_t *loop;
    const char *path; /* a Unix socket; NULL: host and port (loopback TCP) */
    const char *host;
    int port;
    const char *user;
    const char *password;
    int connect_timeout_ms; /* connected and authenticated within this */
    int command_timeout_ms; /* each command answered within this of being sent */
} rdc_opts_t;

/* Connected and authenticated (err 0), or failed / lost (err < 0). Called
 * once for the outcome and once more if an open connection is lost. */
typedef void (*rdc_status_cb)(rdc_t *c, int err, const char *msg, void *ud);
/* A command's reply (NULL when err < 0). Freed after the callback. */
typedef void (*rdc_reply_cb)(void *ud, int err, const char *msg, const redisReply *reply);

/* NULL when the connection cannot even be started (cb never called). */
rdc_t *rdc_connect(const rdc_opts_t *o, rdc_status_cb cb, void *ud);
/* Queue a command given as argv. 0, or -ENOTCONN (callback not called). A
 * reply of type error counts as failure (err -EIO, msg the error text). */
int rdc_command(rdc_t *c, int argc, const char **argv, rdc_reply_cb cb, void *ud);
/* Disconnect: pending callbacks run with -ECANCELED before this returns
 * (or, called from one of them, right after it); no status is reported
 * any more; freed later. The owner calls this once in every case, also
 * after a failure was reported. */
void rdc_close(rdc_t *c);
int rdc_is_up(const rdc_t *c);

#endif
