/* A recording fake engine for unit tests. It stands in for the PostgreSQL
 * engine (daemon/engine/pg_engine.c), which the integration suite tests for real.
 * Each slot_ops_t hook records the call and returns 0, leaving the call
 * pending until the test answers it (fake_answer(), then pool_slot_done()),
 * in any order; or, while refuse[op] is set, fails at once with -ENOTCONN. */
#ifndef DBL_TEST_FAKE_ENGINE_H
#define DBL_TEST_FAKE_ENGINE_H

#include <stdbool.h>

#include "pool.h"

typedef enum fake_op { OP_CREATE, OP_DROP, OP_ROTATE, OP__COUNT } fake_op_t;

typedef struct fake_call {
    fake_op_t op;
    slot_t *slot; /* may be freed once answered: compare, never follow */
    bool pending; /* started and not yet answered */
} fake_call_t;

#define FAKE_MAX_CALLS 256

typedef struct fake_engine {
    fake_call_t calls[FAKE_MAX_CALLS];
    int ncalls;
    bool refuse[OP__COUNT];
} fake_engine_t;

extern const slot_ops_t fake_engine_ops; /* ud: a fake_engine_t */

/* Calls of op (on s, unless NULL) ever made, refused ones included, or only
 * those still pending. */
int fake_count(const fake_engine_t *fe, fake_op_t op, const slot_t *s, bool only_pending);
/* The slot of the oldest pending call of op, or NULL. */
slot_t *fake_next_pending(const fake_engine_t *fe, fake_op_t op);
/* Mark the call pending on s answered. false if there is none. */
bool fake_answer(fake_engine_t *fe, const slot_t *s);

#endif
