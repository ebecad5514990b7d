/* Per-uid caps (issue 13): one local user may hold or wait for at most
 * [daemon] max_leases_per_uid leases, keep at most max_clients_per_uid
 * connections open and own at most max_templates_per_uid client template
 * names, so it cannot take every database or every client slot from the
 * others. Root and the daemon's own uid are exempt, and may open
 * CAPS_ADMIN_RESERVE connections beyond max_clients: they can always reach
 * a full daemon to look at it and drain it. */
#ifndef DBL_CAPS_H
#define DBL_CAPS_H

#include <json-c/json.h>
#include <stdbool.h>

#include "session.h"

#define CAPS_ADMIN_RESERVE 8

/* May this new session stay? If not, it has been answered
 * too_many_clients (naming the cap and its key) and is closing. */
bool caps_admit_client(sess_t *s);
/* May s's uid hold one more lease? If not, request id has been answered
 * too_many_leases. */
bool caps_admit_lease(sess_t *s, json_object *id);
/* May s's uid make a client template of a new name? Names it owns
 * already (any version) count; a new version of one of them does not. If
 * not, request id has been answered too_many_templates, naming them. */
bool caps_admit_template(sess_t *s, json_object *id);
/* For status (admins only): per uid, the leases held or waited for and
 * the connections open, as [{uid, leases, waiting, clients}]. */
json_object *caps_usage_json(dbld_t *d);

#endif
