/* The PostgreSQL engine: reaches an instance over libpq (async, on the
 * loop), decides it is ready, and turns pool slots into databases: clone,
 * drop, rotate credentials. */
#ifndef DBL_PG_ENGINE_H
#define DBL_PG_ENGINE_H

#include "inst.h"
#include "pool.h"

/* Try to connect until the server accepts (then inst_ready) or the start
 * deadline passes (then inst_start_failed). */
void pg_engine_probe(inst_t *i);
/* Close the admin and health-probe connections; queued work fails with
 * -ECANCELED. */
void pg_engine_close(inst_t *i);
/* How we reach the server as its superuser. */
void pg_admin_conninfo(const inst_t *i, char *out, size_t len);

/* Health (pg_health.c): each tick while running, a SELECT 1 on a
 * connection of its own; a server that neither answers there nor on a
 * fresh connection within health_timeout_ms is reported: inst_hung(). */
void pg_health_tick(inst_t *i);
void pg_health_close(inst_t *i);

/* The least busy admin (superuser) connection, or NULL. */
pgc_t *pg_pick_admin(inst_t *i);
/* Run statements on an admin connection. 0, or -ENOTCONN (cb not called). */
int pg_admin_exec(inst_t *i, const char *const *sql, int n, pgc_done_cb cb, void *ud);
/* A superuser connection to another database, over the private socket,
 * with search_path = pg_catalog, pg_temp: tenants may write there. */
pgc_t *pg_connect_db(inst_t *i, const char *dbname, pgc_status_cb cb, void *ud);
/* A connection as a role of ours (a template's owner, a lease's role) with
 * its own password, the way clients reach the server: what runs on it on
 * behalf of a template or a lease has that role's rights, never ours. */
pgc_t *pg_connect_as(inst_t *i, const char *dbname, const char *user, const char *password,
                     pgc_status_cb cb, void *ud);

/* Drop every database and role carrying our name prefix (the external
 * runtime: at start, what a crashed predecessor left; at stop, ours). */
void pg_drop_prefixed(inst_t *i, void (*cb)(inst_t *i, int err, const char *msg));

/* slot_ops_t for template pools (ud: the tpl_t), pg_slots.c: a database of
 * its own per lease, or a schema in the template's shared database. */
extern const slot_ops_t pg_slot_ops;
extern const slot_ops_t pg_schema_slot_ops;

#endif
