/* libdblease internals shared by the library's files and the dblease CLI.
 * Not installed: nothing here is part of the public API, and the version
 * script keeps these symbols out of libdblease.so. */
#ifndef DBL_CLIENT_PRIV_H
#define DBL_CLIENT_PRIV_H

#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "dbl_proto.h"
#include "dblease.h"

#define DBL__DEFAULT_TIMEOUT_MS 30000
/* PROTOCOL.md: a client SHOULD accept reply lines of at least 16 MiB (a big
 * status) and MUST NOT apply the 64 KiB request limit to what it reads. */
#define DBL__MAX_REPLY_LINE (16 * 1024 * 1024)
/* Longest wait_ms the protocol allows (PROTOCOL.md, `lease`). */
#define DBL__MAX_WAIT_MS 600000
/* Lease and template.ensure requests we gave up waiting for; see dbl__call(). */
#define DBL__MAX_ABANDONED 16
/* Events kept until the caller asks for them (PROTOCOL.md §7); beyond this
 * the oldest are dropped. */
#define DBL__MAX_EVENTS 16

/* An event about a lease: "lease_expired", "instance_down", or one this
 * version does not know. */
typedef struct dbl__event {
    char name[32];
    char lease[64];
} dbl__event_t;

struct dbl_ctx_priv {
    int fd;              /* -1 when not connected */
    int timeout_ms;
    int64_t next_id;
    dbl_decoder_t dec;
    char *socket_path;
    char *daemon_version;
    int default_wait_ms; /* from hello; -1 if the daemon did not say */
    int max_ttl_s;       /* from hello; -1 if the daemon did not say */
    pid_t peer_pid;      /* SO_PEERCRED of the daemon (or of systemd, which made
                            an activated socket); 0: not in our pid namespace */
    uid_t peer_uid;
    int64_t daemon_pid; /* hello's server.pid and .uid; -1 if not said */
    int64_t daemon_uid;
    int64_t abandoned[DBL__MAX_ABANDONED];
    size_t n_abandoned;
    dbl__event_t events[DBL__MAX_EVENTS];
    size_t n_events;
};

/* Sets err and a formatted errstr; clears code. */
void dbl__set_err(dbl_ctx_t *ctx, dbl_err_t err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void dbl__clear_err(dbl_ctx_t *ctx);
/* CLOCK_MONOTONIC in milliseconds. */
int64_t dbl__now_ms(void);
/* Closes the connection after a failure that leaves it unusable. */
void dbl__disconnect(dbl_ctx_t *ctx);

/* A new request {"id": N, "op": op}; *id gets N. NULL on ENOMEM. */
json_object *dbl__request(dbl_ctx_t *ctx, const char *op, int64_t *id);
/* Sends req (consumed) and waits up to timeout_ms + extra_ms for the reply
 * carrying id. 0 with *reply filled for a success reply (dbl_reply_free()
 * it); -1 with ctx->err set otherwise, DBL_ERR_REMOTE for an error reply. */
int dbl__call(dbl_ctx_t *ctx, json_object *req, int64_t id, int64_t extra_ms,
              dbl_reply_t *reply);

/* How far past timeout_ms to wait for the reply to a request that the daemon
 * may queue for wait_ms (<0: the daemon's default, as announced in hello). */
int64_t dbl__wait_budget(const dbl_ctx_t *ctx, int wait_ms);

/* Reply fields: a copy of o[key] when it is a string, NULL when absent or of
 * another type (*failed is set only when the copy ran out of memory); an
 * integer o[key], or dflt. */
char *dbl__str_field(json_object *o, const char *key, bool *failed);
int64_t dbl__int_field(json_object *o, const char *key, int64_t dflt);

/* Reads whatever the daemon has sent, without waiting, and keeps the events
 * in it for dbl__next_event(). 0, or -1 with DBL_ERR_IO once the connection
 * is gone. */
int dbl__poll_events(dbl_ctx_t *ctx);
/* The oldest event not taken yet, into *ev; false when there is none.
 * Events that arrive while a call waits for its reply are kept too. */
bool dbl__next_event(dbl_ctx_t *ctx, dbl__event_t *ev);
/* The connection's descriptor, to poll() for events; -1 when closed. */
int dbl__fd(const dbl_ctx_t *ctx);

/* Reads and drops what the daemon sends until it closes the connection
 * (0) or the deadline (CLOCK_MONOTONIC ms) passes (-1, DBL_ERR_TIMEOUT). */
int dbl__wait_closed(dbl_ctx_t *ctx, int64_t deadline);

/* client_trust.c: checks, right after connecting, that the daemon at path
 * may be trusted (see dbl_connect() in dblease.h); chosen: the caller named
 * the path. 0, or -1 with DBL_ERR_UNTRUSTED. Fills peer_pid and peer_uid. */
int dbl__check_peer(dbl_ctx_t *ctx, const char *path, bool chosen);

/* dbl_lease() that can also hand back the daemon's lease object as received
 * (a new reference in *raw, when raw is not NULL), so the CLI prints fields
 * this version of the struct does not know. */
int dbl__lease_raw(dbl_ctx_t *ctx, const dbl_lease_opts_t *opts, dbl_lease_t **out,
                   json_object **raw);

#endif
