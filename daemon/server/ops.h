/* The request handlers, one per protocol op, in a table keyed by name. */
#ifndef DBL_OPS_H
#define DBL_OPS_H

#include "dbl_proto.h"
#include "session.h"

/* Handle one parsed request; every path sends exactly one reply (now, or
 * later for a lease that waits). */
void ops_dispatch(sess_t *s, dbl_request_t *req);
/* Answer a session's waiting lease requests with this error (draining,
 * stopping, or a connection about to close). */
void ops_refuse_waiting(sess_t *s, dbl_errcode_t code, const char *msg);
/* Cancel a session's waiting lease requests (it is closing). */
void ops_cancel_pending(sess_t *s);

#endif
