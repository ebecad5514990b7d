/* Template ops: template.ensure, template.finalize, template.drop. A
 * client template belongs to the uid that created it. */
#ifndef DBL_OPS_TEMPLATE_H
#define DBL_OPS_TEMPLATE_H

#include "session.h"

void op_template_ensure(sess_t *s, dbl_request_t *req);
void op_template_finalize(sess_t *s, dbl_request_t *req);
/* Retire a template: its owner's (client templates), root's, or the
 * daemon's user's. */
void op_template_drop(sess_t *s, dbl_request_t *req);
/* The session is closing: abandon its claims, drop its waiting requests. */
void ops_template_session_closed(sess_t *s);
/* The daemon stops: answer every template request (shutting_down). */
void ops_template_stopping(dbld_t *d);

#endif
