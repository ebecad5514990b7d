/* A scripted fake dbleased for the client's unit tests. It stands in for the
 * daemon (daemon/), which the integration suite tests for real.
 *
 * fake_start() forks a child that serves one connection on a socket in a
 * fresh directory, running the test's script: srv_expect() the requests it
 * should get, srv_send() the replies. The child checks what it gets with
 * SRV_CHECK and exits non-zero on a surprise, after saying on stderr which
 * check of which script failed and why; fake_finish() asserts that it
 * exited cleanly. */
#ifndef DBL_TEST_FAKE_DAEMON_H
#define DBL_TEST_FAKE_DAEMON_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "dblease.h"

typedef struct fake {
    char dir[64];
    char path[96];
    pid_t pid;
    int go_w;           /* the test's end of the go pipe (fake_go) */
    const char *script; /* the serve function's name, for messages */
} fake_t;

/* ---- the daemon side (runs in the child: no cmocka asserts there) ----- */

/* Where a script step is, for srv_fail(). */
#define SRV_HERE __FILE__, __LINE__, __func__

/* Ends the script with exit status 1 after printing, on stderr, the script's
 * name, file:line and function, the message and, when err is not 0, errno. */
_Noreturn void srv_fail(const char *file, int line, const char *func, int err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* errno is cleared first, so an errno in the message comes from the check. */
#define SRV_CHECK(c)                                                                               \
    do {                                                                                           \
        errno = 0;                                                                                 \
        if (!(c))                                                                                  \
            srv_fail(SRV_HERE, errno, "check failed: %s", #c);                                     \
    } while (0)

#define LEASE_JSON                                                                                 \
    "{\"id\":\"L-1\",\"kind\":\"postgres\",\"url\":\"postgresql://u:p@127.0.0.1:5433/d\","         \
    "\"host\":\"127.0.0.1\",\"port\":5433,\"dbname\":\"d\",\"user\":\"u\",\"password\":\"p\","     \
    "\"expires_at\":1700000000,\"ttl_s\":900,\"detached\":false}"

/* Next request, or NULL at end of stream, on a read error or a line that is
 * not JSON; srv_read_failure() then says which. */
json_object *srv_read(int fd);
const char *srv_read_failure(void);

/* Writes one reply line; a failed write fails the script. */
#define srv_send(fd, ...) srv_send_at(SRV_HERE, fd, __VA_ARGS__)
void srv_send_at(const char *file, int line, const char *func, int fd, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The reply to a request the client sent without waiting for an answer (a
 * give-back on its way to another call's reply): it may have hung up before
 * this is written, which is its right, so EPIPE and ECONNRESET are not a
 * failure. false when the client was gone; other write errors still fail
 * the script. */
#define srv_send_unawaited(fd, ...) srv_send_unawaited_at(SRV_HERE, fd, __VA_ARGS__)
bool srv_send_unawaited_at(const char *file, int line, const char *func, int fd, const char *fmt,
                           ...) __attribute__((format(printf, 5, 6)));

/* req[key] as a string (any type is turned into one), NULL when absent. */
const char *srv_str(json_object *req, const char *key);
bool srv_has(json_object *req, const char *key);
/* Reads a request for op and returns its id; *out (if not NULL) gets the
 * request, to json_object_put(). Anything else fails the script. */
#define srv_expect(fd, op, out) srv_expect_at(SRV_HERE, fd, op, out)
int64_t srv_expect_at(const char *file, int line, const char *func, int fd, const char *op,
                      json_object **out);
/* Answers a hello from client name "unit" (or any name when client is NULL). */
void srv_hello_from(int fd, const char *client);
void srv_hello(int fd);
void srv_grant(int fd, int64_t id);
/* An error reply to id; message is any text (JSON-escaped here). */
#define srv_error(fd, id, code, message) srv_error_at(SRV_HERE, fd, id, code, message)
void srv_error_at(const char *file, int line, const char *func, int fd, int64_t id,
                  const char *code, const char *message);
/* Serves until the client hangs up, so that the client sees its replies. */
void srv_drain(int fd);
/* Blocks until the test says fake_go(): a reply the client must see only
 * after it gave up is sent after the test saw it give up, not after a guess
 * at how long that takes. */
#define srv_wait_go() srv_wait_go_at(SRV_HERE)
void srv_wait_go_at(const char *file, int line, const char *func);
/* Holds the script for at least ms: a reply that must come later than the
 * client's timeout. A lower bound only; callers give the client a budget far
 * above it, so nothing races against it. */
void srv_hold_ms(int ms);

/* ---- the test side ------------------------------------------------------ */

#define fake_start(f, serve) fake_start_named(f, serve, #serve)
void fake_start_named(fake_t *f, void (*serve)(int fd), const char *script);
/* Waits for the fake and fails the test unless its script ran to the end. */
void fake_finish(fake_t *f);
/* Lets the script past its srv_wait_go(). */
void fake_go(fake_t *f);
/* Waits (up to 10 s) until the client has a reply to read: the late reply
 * a script sent after fake_go() has arrived. */
void wait_for_reply_in_flight(dbl_ctx_t *ctx);
/* A new per-request timeout for ctx: the calls after the one whose timeout a
 * test is about must not race against it. */
void set_timeout(dbl_ctx_t *ctx, int timeout_ms);
/* dbl_connect() to the fake as client "unit"; timeout_ms 0: the default. */
dbl_ctx_t *connect_to(const fake_t *f, int timeout_ms);
int64_t elapsed_ms(const struct timespec *t0);

#endif
