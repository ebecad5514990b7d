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
/* Close the admin connections; queued work fails with -ECANCELED. */
void pg_engine_close(inst_t *i);

/* slot_ops_t for pools served by a PostgreSQL instance (ud: the inst_t). */
extern const slot_ops_t pg_slot_ops;

#endif
