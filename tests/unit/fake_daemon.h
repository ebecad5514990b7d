/* A scripted fake dbleased for the client's unit tests. It stands in for the
 * daemon (daemon/), which the integration suite tests for real.
 *
 * fake_start() forks a child that serves one connection on a socket in a
 * fresh directory, running the test's script: srv_expect() the requests it
 * should get, srv_send() the replies. The child checks what it gets with
 * SRV_CHECK and exits non-zero on a surprise; fake_finish() asserts that it
 * exited cleanly. */
#ifndef DBL_TEST_FAKE_DAEMON_H
#define DBL_TEST_FAKE_DAEMON_H

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
} fake_t;

/* ---- the daemon side (runs in the child: no cmocka asserts there) ----- */

#define SRV_CHECK(c)                                                                               \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fake daemon: check failed at line %d: %s\n", __LINE__, #c);           \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)

#define LEASE_JSON                                                                                 \
    "{\"id\":\"L-1\",\"kind\":\"postgres\",\"url\":\"postgresql://u:p@127.0.0.1:5433/d\","         \
    "\"host\":\"127.0.0.1\",\"port\":5433,\"dbname\":\"d\",\"user\":\"u\",\"password\":\"p\","     \
    "\"expires_at\":1700000000,\"ttl_s\":900,\"detached\":false}"

/* Next request, or NULL at end of stream. */
json_object *srv_read(int fd);
void srv_send(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* req[key] as a string (any type is turned into one), NULL when absent. */
const char *srv_str(json_object *req, const char *key);
bool srv_has(json_object *req, const char *key);
/* Reads a request for op and returns its id; *out (if not NULL) gets the
 * request, to json_object_put(). */
int64_t srv_expect(int fd, const char *op, json_object **out);
/* Answers a hello from client name "unit" (or any name when client is NULL). */
void srv_hello_from(int fd, const char *client);
void srv_hello(int fd);
void srv_grant(int fd, int64_t id);
/* Serves until the client hangs up, so that the client sees its replies. */
void srv_drain(int fd);

/* ---- the test side ------------------------------------------------------ */

void fake_start(fake_t *f, void (*serve)(int fd));
void fake_finish(fake_t *f);
/* dbl_connect() to the fake as client "unit"; timeout_ms 0: the default. */
dbl_ctx_t *connect_to(const fake_t *f, int timeout_ms);
int64_t elapsed_ms(const struct timespec *t0);

#endif
