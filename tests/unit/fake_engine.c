#include "fake_engine.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static int record(slot_t *s, void *ud, fake_op_t op)
{
    fake_engine_t *fe = ud;
    assert_true(fe->ncalls < FAKE_MAX_CALLS);
    fe->calls[fe->ncalls++] = (fake_call_t){op, s, !fe->refuse[op]};
    return fe->refuse[op] ? -ENOTCONN : 0;
}

static int fake_create(slot_t *s, void *ud)
{
    return record(s, ud, OP_CREATE);
}

static int fake_drop(slot_t *s, void *ud)
{
    return record(s, ud, OP_DROP);
}

static int fake_rotate(slot_t *s, void *ud)
{
    return record(s, ud, OP_ROTATE);
}

/* No reset: returned slots are dropped, as for PostgreSQL. */
const slot_ops_t fake_engine_ops = {
    .create = fake_create, .drop = fake_drop, .rotate = fake_rotate, .reset = NULL};

int fake_count(const fake_engine_t *fe, fake_op_t op, const slot_t *s, bool only_pending)
{
    int n = 0;
    for (const fake_call_t *c = fe->calls; c < fe->calls + fe->ncalls; c++)
        n += c->op == op && (!s || c->slot == s) && (c->pending || !only_pending);
    return n;
}

slot_t *fake_next_pending(const fake_engine_t *fe, fake_op_t op)
{
    for (const fake_call_t *c = fe->calls; c < fe->calls + fe->ncalls; c++)
        if (c->op == op && c->pending)
            return c->slot;
    return NULL;
}

bool fake_answer(fake_engine_t *fe, const slot_t *s)
{
    for (fake_call_t *c = fe->calls; c < fe->calls + fe->ncalls; c++) {
        if (c->slot == s && c->pending) {
            c->pending = false;
            return true;
        }
    }
    return false;
}
