/* One client connection: reads NDJSON requests, dispatches them through the
 * op table, writes replies and events. Owns its attached leases and the
 * requests still waiting for a database. */
#ifndef DBL_SESSION_H
#define DBL_SESSION_H

#include <json-c/json.h>
#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "dbl_proto.h"
#include "dbld.h"

struct sess {
    list_node_t node; /* in d->sessions */
    dbld_t *d;
    uv_pipe_t pipe;
    dbl_decoder_t dec;
    uint64_t serial;
    uid_t uid;
    pid_t pid;
    char client[64];
    char command[32]; /* /proc/PID/comm of the peer */
    list_t leases;  /* leases this connection took and still owns */
    list_t pending;   /* lease requests waiting for a database */
    list_t tpl_reqs;  /* template requests waiting (ops_template.c) */
    bool closing;
    bool eof; /* the client half-closed; close once its requests are answered */
};

/* Accept a pending connection on the listener. */
void sess_accept(dbld_t *d, uv_stream_t *listener);
/* Queue a message (reply or event) and drop our reference to it. */
void sess_send(sess_t *s, json_object *msg);
void sess_reply_error(sess_t *s, json_object *id, dbl_errcode_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* After a waiting request was answered: close if the client half-closed
 * and nothing else is outstanding. */
void sess_maybe_finish(sess_t *s);
/* Close: attached leases end, waiting requests are cancelled. */
void sess_close(sess_t *s);

#endif
