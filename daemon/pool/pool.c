#include "pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsm.h"
#include "log.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

static const char *const state_names[SLOT__COUNT] = {
    [SLOT_CREATING] = "creating", [SLOT_READY] = "ready",       [SLOT_LEASED] = "leased",
    [SLOT_ROTATING] = "rotating", [SLOT_DROPPING] = "dropping", [SLOT_FAILED] = "failed",
};

static const unsigned allowed[SLOT__COUNT] = {
    [SLOT_CREATING] = FSM_TO(SLOT_READY) | FSM_TO(SLOT_FAILED),
    [SLOT_READY] = FSM_TO(SLOT_LEASED) | FSM_TO(SLOT_DROPPING),
    [SLOT_LEASED] = FSM_TO(SLOT_ROTATING) | FSM_TO(SLOT_DROPPING),
    [SLOT_ROTATING] = FSM_TO(SLOT_READY) | FSM_TO(SLOT_DROPPING),
    [SLOT_DROPPING] = 0,
    [SLOT_FAILED] = FSM_TO(SLOT_DROPPING),
};

/* Creates in flight per pool, and across the pools of a kind (they share
 * one server): one per core plus one, so a clone waiting on its checkpoint
 * leaves no core idle. Measured on 2 cores with a 50-table
 * template (BENCHMARKS.md): 1 → 43, 2 → 78, 3 → 81, 4 → 76, 8 → 65 clone +
 * drop cycles a second; past the knee clones only slow each other down. */
static int default_parallel(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    return cores > 15 ? 16 : (int)cores + 1;
}

static const fsm_def_t slot_fsm = {"pool", SLOT__COUNT, state_names, allowed};

const char *slot_state_name(slot_state_t s)
{
    return fsm_name(&slot_fsm, (int)s);
}

/* The state is the list the slot sits on: move it with the state. */
void slot_set_state(slot_t *s, slot_state_t to)
{
    pool_t *p = s->pool;
    slot_state_t from = s->state;
    s->state = (slot_state_t)fsm_step(&slot_fsm, (int)from, (int)to, s->dbname);
    list_remove(&p->slots[from], &s->node);
    list_append(&p->slots[to], &s->node);
}

void pool_limits_init(pool_limits_t *l, int max)
{
    l->total = 0;
    l->max = max;
    l->max_creating = default_parallel();
    list_init(&l->pools);
}

pool_t *pool_new(pool_limits_t *limits, const char *kind, const char *template_name,
                 const char *prefix, int min_ready, int max_total, const slot_ops_t *ops,
                 void *ops_ud)
{
    pool_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->kind, sizeof p->kind, "%s", kind);
    snprintf(p->template_name, sizeof p->template_name, "%s", template_name);
    snprintf(p->prefix, sizeof p->prefix, "%s", prefix);
    p->min_ready = min_ready;
    p->max_total = max_total;
    p->max_parallel = default_parallel();
    p->limits = limits;
    p->ops = ops;
    p->ops_ud = ops_ud;
    p->next_seq = 1;
    reset_policy_init(&p->reset_policy);
    for (int i = 0; i < SLOT__COUNT; i++)
        list_init(&p->slots[i]);
    list_init(&p->waiters);
    list_append(&limits->pools, &p->node);
    return p;
}

void pool_free(pool_t *p)
{
    if (!p)
        return;
    if (pool_total(p) != 0) {
        log_error("pool", "pool %s/%s freed with %d slots", p->kind, p->template_name,
                  pool_total(p));
        abort();
    }
    while (!list_empty(&p->waiters))
        pool_cancel_wait(list_entry(list_first(&p->waiters), pool_waiter_t, node));
    list_remove(&p->limits->pools, &p->node);
    if (p->engine_data_free)
        p->engine_data_free(p->engine_data);
    free(p);
}

size_t pool_count(const pool_t *p, slot_state_t s)
{
    return p->slots[s].count;
}

int pool_total(const pool_t *p)
{
    size_t n = 0;
    for (int i = 0; i < SLOT__COUNT; i++)
        n += p->slots[i].count;
    return (int)n;
}

static void slot_free(slot_t *s)
{
    pool_t *p = s->pool;
    list_remove(&p->slots[s->state], &s->node);
    p->limits->total--;
    if (p->ops->forget)
        p->ops->forget(s, p->ops_ud);
    free(s);
}

/* Start dropping s; if the engine cannot even start, the slot is forgotten
 * (its server is gone, or a restart cleans it up). */
static void start_drop(slot_t *s)
{
    slot_set_state(s, SLOT_DROPPING);
    if (s->pool->ops->drop(s, s->pool->ops_ud) < 0) {
        s->pool->counters.drop_failures++;
        slot_free(s);
    }
}

static void refill_all(pool_limits_t *l, uint64_t now_ms)
{
    list_node_t *it, *tmp;
    list_for_each(&l->pools, it, tmp) pool_refill(list_entry(it, pool_t, node), now_ms);
}

/* Creates in flight in every pool of p's kind. */
static int kind_creating(const pool_t *p)
{
    int n = 0;
    list_node_t *it, *tmp;
    list_for_each(&p->limits->pools, it, tmp)
    {
        const pool_t *q = list_entry(it, pool_t, node);
        if (strcmp(q->kind, p->kind) == 0)
            n += (int)pool_count(q, SLOT_CREATING);
    }
    return n;
}

static int create_one(pool_t *p)
{
    slot_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->pool = p;
    s->seq = p->next_seq++;
    snprintf(s->dbname, sizeof s->dbname, "%s%llu", p->prefix, (unsigned long long)s->seq);
    s->state = SLOT_CREATING;
    list_append(&p->slots[SLOT_CREATING], &s->node);
    p->limits->total++;
    int rc = p->ops->create(s, p->ops_ud);
    if (rc < 0) {
        slot_free(s);
        return rc;
    }
    return 0;
}

void pool_refill(pool_t *p, uint64_t now_ms)
{
    if (!p->up)
        return;
    if (now_ms < p->retry_at_ms)
        return;
    while (!list_empty(&p->slots[SLOT_FAILED]))
        start_drop(list_entry(list_first(&p->slots[SLOT_FAILED]), slot_t, node));

    int want = (p->cold ? 0 : p->min_ready) + (int)p->waiters.count;
    for (;;) {
        int ready = (int)(pool_count(p, SLOT_READY) + pool_count(p, SLOT_CREATING) +
                          pool_count(p, SLOT_ROTATING));
        int creating = (int)pool_count(p, SLOT_CREATING);
        if (ready >= want || pool_total(p) >= p->max_total || p->limits->total >= p->limits->max ||
            creating >= p->max_parallel ||
            (creating > 0 && kind_creating(p) >= p->limits->max_creating))
            return;
        if (create_one(p) < 0)
            return;
    }
}

void pool_set_up(pool_t *p, bool up, uint64_t now_ms)
{
    p->up = up;
    if (up) {
        p->retry_at_ms = 0;
        pool_refill(p, now_ms);
    }
}

slot_t *pool_take(pool_t *p)
{
    list_node_t *n = list_first(&p->slots[SLOT_READY]);
    if (!n)
        return NULL;
    slot_t *s = list_entry(n, slot_t, node);
    slot_set_state(s, SLOT_LEASED);
    return s;
}

void pool_wait(pool_t *p, pool_waiter_t *w, pool_wait_cb cb, void *ud)
{
    w->pool = p;
    w->cb = cb;
    w->ud = ud;
    list_append(&p->waiters, &w->node);
}

void pool_cancel_wait(pool_waiter_t *w)
{
    if (!w->pool)
        return;
    list_remove(&w->pool->waiters, &w->node);
    w->pool = NULL;
}

void pool_fail_waiters(pool_t *p)
{
    while (!list_empty(&p->waiters)) {
        pool_waiter_t *w = list_entry(list_first(&p->waiters), pool_waiter_t, node);
        pool_cancel_wait(w);
        w->cb(w, NULL);
    }
}

/* A slot became ready: the first waiter gets it, else it joins READY. */
static void slot_became_ready(slot_t *s)
{
    pool_t *p = s->pool;
    slot_set_state(s, SLOT_READY);
    list_node_t *n = list_first(&p->waiters);
    if (!n)
        return;
    pool_waiter_t *w = list_entry(n, pool_waiter_t, node);
    pool_cancel_wait(w);
    slot_set_state(s, SLOT_LEASED);
    w->cb(w, s);
}

void pool_give_back(slot_t *s, bool clean, uint64_t now_ms)
{
    s->lease = NULL;
    pool_t *p = s->pool;
    int (*reuse)(slot_t *, void *) = clean ? p->ops->rotate : p->ops->reset;
    if (reuse && p->up && !p->retiring) {
        slot_set_state(s, SLOT_ROTATING);
        if (reuse(s, p->ops_ud) == 0)
            return;
    }
    start_drop(s);
    refill_all(p->limits, now_ms);
}

void pool_slot_lost(slot_t *s, uint64_t now_ms)
{
    pool_t *p = s->pool;
    slot_set_state(s, SLOT_DROPPING); /* READY and FAILED may; others abort */
    p->counters.dropped++;
    slot_free(s);
    refill_all(p->limits, now_ms);
}

void pool_drain(pool_t *p, uint64_t now_ms)
{
    (void)now_ms;
    while (!list_empty(&p->slots[SLOT_READY]))
        start_drop(list_entry(list_first(&p->slots[SLOT_READY]), slot_t, node));
    while (!list_empty(&p->slots[SLOT_FAILED]))
        start_drop(list_entry(list_first(&p->slots[SLOT_FAILED]), slot_t, node));
}

void pool_note_reset(pool_t *p, reset_action_t a, uint64_t ms)
{
    if (a >= RESET__COUNT)
        return;
    p->counters.resets[a]++;
    p->counters.reset_ms[a] += ms;
}

void pool_slot_done(slot_t *s, int err, const char *msg, uint64_t now_ms)
{
    pool_t *p = s->pool;
    switch (s->state) {
    case SLOT_CREATING:
        if (err == 0 && p->retiring) {
            slot_set_state(s, SLOT_READY);
            start_drop(s);
        } else if (err == 0) {
            p->counters.created++;
            p->backoff_ms = 0;
            p->last_error[0] = '\0';
            slot_became_ready(s);
        } else {
            p->counters.create_failures++;
            snprintf(p->last_error, sizeof p->last_error, "%s", msg ? msg : "create failed");
            log_warn("pool", "preparing %s failed: %s", s->dbname, p->last_error);
            slot_set_state(s, SLOT_FAILED);
            /* Creates already in flight when the back-off last grew belong to
             * that attempt: doubling again for each would square the growth. */
            if (!p->backoff_ms || s->seq >= p->backoff_seq) {
                p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : BACKOFF_MIN_MS;
                if (p->backoff_ms > BACKOFF_MAX_MS)
                    p->backoff_ms = BACKOFF_MAX_MS;
                p->backoff_seq = p->next_seq;
            }
            p->retry_at_ms = now_ms + p->backoff_ms;
        }
        break;
    case SLOT_ROTATING:
        if (err == 0) {
            p->counters.rotated++;
            slot_became_ready(s);
        } else {
            if (err == POOL_ERR_RECLONE)
                log_debug("pool", "%s changed too much to reuse: %s", s->dbname, msg ? msg : "");
            else
                log_warn("pool", "recycling %s failed, dropping it: %s", s->dbname,
                         msg ? msg : "");
            start_drop(s);
        }
        break;
    case SLOT_DROPPING:
        if (err == 0)
            p->counters.dropped++;
        else if (err != -ECANCELED) { /* cancelled: its server is going away */
            p->counters.drop_failures++;
            log_warn("pool", "dropping %s failed: %s", s->dbname, msg ? msg : "");
        }
        slot_free(s);
        break;
    default:
        log_error("pool", "engine reported on %s in state %s", s->dbname,
                  slot_state_name(s->state));
        abort();
    }
    refill_all(p->limits, now_ms);
}
