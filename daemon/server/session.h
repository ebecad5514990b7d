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

/* A connection's life. OPEN reads requests; PAUSED stops reading while its
 * replies pile up (backpressure) and resumes once they drain, unless it
 * stays stuck past stuck_client_timeout_s; EOF: the client half-closed, so
 * answer what it waits for, then flush. FLUSHING sends the last replies
 * (uv_shutdown) while reading and dropping whatever the client still
 * sends; LINGERING: all sent, waiting for the client to close, so that
 * closing with its bytes unread cannot reset the replies away. Both end
 * at a deadline. CLOSING: its handles are closing, and the last close
 * callback unlinks and frees it. */
typedef enum sess_state {
    SESS_OPEN,
    SESS_PAUSED,
    SESS_EOF,
    SESS_FLUSHING,
    SESS_LINGERING,
    SESS_CLOSING,
    SESS__STATES
} sess_state_t;

struct sess {
    list_node_t node; /* in d->sessions until its handles have closed */
    dbld_t *d;
    sess_state_t state;
    uv_pipe_t pipe;
    uv_timer_t timer; /* PAUSED: the stuck deadline; FLUSHING, LINGERING: the flush deadline */
    int open_handles; /* freed when the last one's close callback runs */
    dbl_decoder_t dec;
    uint64_t serial;
    uid_t uid;
    pid_t pid;
    char client[64];
    char command[32]; /* /proc/PID/comm of the peer */
    list_t leases;    /* attached leases it holds (lease_t.holder_node) */
    list_t pending;   /* lease requests waiting for a database */
    list_t tpl_reqs;  /* template requests waiting (ops_template.c) */
};

/* Accept a pending connection on the listener. */
void sess_accept(dbld_t *d, uv_stream_t *listener);
/* Queue a message (reply or event) and drop our reference to it. Never
 * closes the session: one whose replies pile up is paused instead. */
void sess_send(sess_t *s, json_object *msg);
void sess_reply_error(sess_t *s, json_object *id, dbl_errcode_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Flushing or closing: nothing more is read or sent. */
bool sess_closing(const sess_t *s);
/* Hold a lease granted on this connection: an attached one ends with the
 * session (a detached one is let go); either way the client is told (an
 * event) when the daemon ends it while the session lives. */
void sess_hold_lease(sess_t *s, lease_t *l);
/* After a waiting request was answered: close if the client half-closed
 * and nothing else is outstanding. */
void sess_maybe_finish(sess_t *s);
/* Close now: attached leases end, waiting requests are cancelled. */
void sess_close(sess_t *s);
/* Close one refused as it connected; flush: after the error it was sent
 * (within the flush deadline), else at once. */
void sess_refuse(sess_t *s, bool flush);
/* Drain: answer every session's waiting lease requests (shutting_down). */
void sess_refuse_waiting_all(dbld_t *d);
/* Stop: answer what waits, flush each session (within a deadline), close. */
void sess_close_all(dbld_t *d);

#endif
