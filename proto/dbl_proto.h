/* dblease wire protocol, version 1: framing and messages.
 *
 * Pure: bytes in, messages out. Nothing here touches a socket, the event
 * loop or the file system, so the daemon, the client and the fuzzer share it.
 * The spec for people is PROTOCOL.md beside this file. */
#ifndef DBL_PROTO_H
#define DBL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define DBL_PROTO_VERSION 1
/* Longest line either side may send, not counting the '\n'. */
#define DBL_PROTO_MAX_LINE (64 * 1024)

/* The fixed set of error codes a reply may carry. Names on the wire are the
 * lower-case strings from dbl_errcode_name(). Append only: never renumber. */
typedef enum dbl_errcode {
    DBL_E_NONE = 0,
    DBL_E_BAD_REQUEST,      /* "bad_request": not JSON, wrong types, bad values */
    DBL_E_UNKNOWN_OP,       /* "unknown_op" */
    DBL_E_PROTO_VERSION,    /* "proto_version": hello asked for a version we lack */
    DBL_E_UNKNOWN_TEMPLATE, /* "unknown_template" */
    DBL_E_POOL_EXHAUSTED,   /* "pool_exhausted": nothing ready and no wait allowed */
    DBL_E_TIMEOUT,          /* "timeout": waited wait_ms, nothing became ready */
    DBL_E_NOT_FOUND,        /* "not_found": no such lease */
    DBL_E_NOT_OWNER,        /* "not_owner": the lease belongs to another client */
    DBL_E_INSTANCE_DOWN,    /* "instance_down": the server behind a pool is down */
    DBL_E_INTERNAL,         /* "internal" */
    DBL_E_LINE_TOO_LONG,    /* "line_too_long": sent just before the daemon closes */
    DBL_E_SHUTTING_DOWN,    /* "shutting_down": draining, no new leases */
    DBL_E_FORBIDDEN,        /* "forbidden": admin operation from a non-admin peer */
    DBL_E_TEMPLATE_FAILED,  /* "template_failed": the template could not be built */
    DBL_E_TOO_MANY_LEASES,  /* "too_many_leases": the caller's uid is at max_leases_per_uid */
    DBL_E_TOO_MANY_CLIENTS, /* "too_many_clients": max_clients_per_uid or max_clients reached */
    DBL_E_DISK_FULL,        /* "disk_full": the servers' disk is below its reserve */
    DBL_E_TOO_MANY_TEMPLATES, /* "too_many_templates": the uid owns max_templates_per_uid */
    DBL_E__COUNT
} dbl_errcode_t;

/* Wire name of a code ("bad_request", …); "internal" for out-of-range. */
const char *dbl_errcode_name(dbl_errcode_t code);
/* Code for a wire name; DBL_E_NONE if the name is unknown or NULL. */
dbl_errcode_t dbl_errcode_from_name(const char *name);

/* ---- framing ---------------------------------------------------------- */

/* Incremental line splitter. Feed any chunking of the byte stream, then pull
 * complete lines. A line longer than max_line poisons the decoder: the
 * connection it reads from must be closed. */
typedef struct dbl_decoder {
    char *buf;
    size_t len;      /* bytes held */
    size_t cap;      /* bytes allocated */
    size_t start;    /* offset of the first byte not yet returned */
    size_t scan;     /* offset from which to look for the next '\n' */
    size_t max_line; /* limit, without the '\n' */
    bool overflow;   /* a line went past max_line */
} dbl_decoder_t;

void dbl_decoder_init(dbl_decoder_t *d, size_t max_line);
void dbl_decoder_free(dbl_decoder_t *d);
/* Append bytes. 0, -ENOMEM, or -E2BIG once a line exceeds max_line (the
 * bytes past the limit are not stored: memory stays bounded by max_line). */
int dbl_decoder_feed(dbl_decoder_t *d, const void *data, size_t n);
/* Pull the next complete line, without its '\n' (a trailing '\r' is also
 * dropped). Returns 1 with *line and *len set (valid until the next feed or next
 * call), 0 when no complete line is buffered, -E2BIG after an overflow. */
int dbl_decoder_next(dbl_decoder_t *d, const char **line, size_t *len);

/* ---- requests (daemon side) ------------------------------------------ */

typedef struct dbl_request {
    json_object *root; /* owned; NULL after a parse failure that found no object */
    json_object *id;   /* borrowed from root; NULL when absent */
    const char *op;    /* borrowed from root; NULL when absent */
} dbl_request_t;

/* Parse one line. Requires a JSON object (strict JSON, well-formed UTF-8 per
 * RFC 3629: no overlong forms, surrogates or code points past U+10FFFF) with a
 * string "op"; "id", when present, must be an integer or a string. Returns
 * DBL_E_NONE, or DBL_E_BAD_REQUEST with a human message in err. Even on
 * failure req->id is set when the line was an object with a usable id, so
 * the error reply can carry it; always call dbl_request_free(). */
dbl_errcode_t dbl_request_parse(const char *line, size_t len, dbl_request_t *req, char *err,
                                size_t errlen);
void dbl_request_free(dbl_request_t *req);

/* Typed arguments. Each returns 0 when the key is absent (out untouched, so
 * preset the default) or present with the right type and range (out set),
 * and -1 with a message in err ("ttl_s must be an integer from 1 to 86400")
 * otherwise. A JSON null counts as absent. */
int dbl_arg_string(const dbl_request_t *req, const char *key, const char **out, char *err,
                   size_t errlen);
int dbl_arg_int(const dbl_request_t *req, const char *key, int64_t min, int64_t max,
                int64_t *out, char *err, size_t errlen);
int dbl_arg_bool(const dbl_request_t *req, const char *key, bool *out, char *err,
                 size_t errlen);

/* ---- replies and events ---------------------------------------------- */

/* {"id": id, "ok": true}. id may be NULL (no "id" key). Add result keys to
 * the returned object. The id is referenced, not stolen. */
json_object *dbl_reply_ok(json_object *id);
/* {"id": id, "ok": false, "error": {"code": …, "message": …}} */
json_object *dbl_reply_error(json_object *id, dbl_errcode_t code, const char *message);
/* {"event": name} — add keys to it. */
json_object *dbl_event_new(const char *name);

/* Serialise to one line: compact JSON plus '\n', malloc'd, NUL-terminated.
 * *len (if not NULL) gets the length including the '\n'. NULL on ENOMEM.
 * The line is always well-formed UTF-8: a string byte that is not (say, a
 * message cut mid-character by snprintf) is sent as U+FFFD. */
char *dbl_encode(json_object *msg, size_t *len);

/* ---- replies (client side) ------------------------------------------- */

typedef struct dbl_reply {
    json_object *root;   /* owned */
    json_object *id;     /* borrowed; NULL when absent */
    bool is_event;       /* has "event" and no "ok" */
    const char *event;   /* event name when is_event */
    bool ok;
    dbl_errcode_t code;  /* when !ok: DBL_E_NONE if the code name is unknown */
    const char *code_name; /* when !ok: the wire string as received */
    const char *message;   /* when !ok: "" if absent */
} dbl_reply_t;

/* 0, or -EINVAL if the line is not a well-formed reply or event. */
int dbl_reply_parse(const char *line, size_t len, dbl_reply_t *out);
void dbl_reply_free(dbl_reply_t *r);

/* ---- shared conventions ---------------------------------------------- */

/* Default socket path, from the environment alone: $DBLEASE_SOCKET, else
 * $XDG_RUNTIME_DIR/dblease/dblease.sock, else /run/dblease/dblease.sock when
 * uid is 0, else /tmp/dblease-$UID/dblease.sock. Writes into buf; returns
 * buf, or NULL if it does not fit. */
const char *dbl_default_socket_path(char *buf, size_t len, unsigned uid);

/* Where dbleased keeps its state when not told: beside its socket, except
 * beside the /tmp/dblease-$UID fallback socket, /tmp being disk on many
 * systems (clones there are ~10x slower): then tmpfs/dblease-$UID/state,
 * when the caller found a tmpfs with room (NULL: none). Writes into buf;
 * returns buf, or NULL if it does not fit. */
const char *dbl_default_state_dir(char *buf, size_t len, const char *socket_path, unsigned uid,
                                  const char *tmpfs);

#endif
