/* The daemon's lifecycle: what happens when an instance comes up or goes
 * down, the periodic janitor, and an orderly shutdown. */
#include "dbld.h"

#include <stdlib.h>

#include "fsm.h"
#include "inst.h"
#include "lease.h"
#include "log.h"
#include "server.h"
#include "dk_client.h"
#include "metrics.h"
#include "notify.h"
#include "ops_template.h"
#include "rd_slots.h"
#include "tpl.h"

#include <string.h>
#include "session.h"
#include "util.h"

static const char *const state_names[] = {
    [DBLD_RUNNING] = "running",
    [DBLD_DRAINING] = "draining",
    [DBLD_STOPPING] = "stopping",
    [DBLD_FINISHED] = "finished",
};
static const unsigned allowed[] = {
    [DBLD_RUNNING] = FSM_TO(DBLD_DRAINING) | FSM_TO(DBLD_STOPPING),
    [DBLD_DRAINING] = FSM_TO(DBLD_STOPPING),
    [DBLD_STOPPING] = FSM_TO(DBLD_FINISHED),
    [DBLD_FINISHED] = 0,
};
static const fsm_def_t dbld_fsm = {"daemon", DBLD__STATES, state_names, allowed};

static void set_state(dbld_t *d, dbld_state_t to)
{
    d->state = (dbld_state_t)fsm_step(&dbld_fsm, d->state, to, "dbleased");
}

/* After every loop iteration's callbacks: nothing can still hold what they
 * ended, so it can be freed (sessions free themselves in their handles'
 * close callbacks). */
static void on_reap(uv_check_t *h)
{
    lease_reap_dead(h->data);
}

void dbld_reaper_start(dbld_t *d)
{
    uv_check_init(d->loop, &d->reaper);
    d->reaper.data = d;
    uv_check_start(&d->reaper, on_reap);
    uv_unref((uv_handle_t *)&d->reaper); /* it never keeps the loop alive */
}

bool dbld_is_admin(const dbld_t *d, uid_t peer)
{
    return peer == 0 || peer == d->uid;
}

void dbld_inst_running(dbld_t *d, inst_t *i)
{
    (void)i;
    tpl_instance_up(d);
}

static bool is_pg(const tpl_t *t)
{
    return strcmp(t->kind, "postgres") == 0;
}

static lease_end_reason_t lost_reason(const dbld_t *d)
{
    return dbld_stopping(d) ? LEASE_SHUTDOWN : LEASE_INSTANCE_DOWN;
}

static bool in_pool(const lease_t *l, const void *p)
{
    return l->slot->pool == p;
}

/* End the leases of a pool whose databases are gone; tell each holder.
 * Telling one can close its session and end others: lease_end_matching
 * survives that. */
static void end_leases_of(dbld_t *d, const pool_t *p)
{
    lease_end_matching(d, in_pool, p, lost_reason(d));
}

void dbld_inst_down(dbld_t *d, inst_t *i)
{
    (void)i;
    /* Pools first, so nothing refills while the leases are ended. */
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (is_pg(t)) {
            pool_set_up(t->pool, false, util_now_ms());
            end_leases_of(d, t->pool);
        }
    }
    tpl_instance_down(d);
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (is_pg(t))
            pool_drain(t->pool, util_now_ms());
    }
}

void dbld_pool_lost(dbld_t *d, pool_t *p)
{
    pool_set_up(p, false, util_now_ms());
    end_leases_of(d, p);
    pool_drain(p, util_now_ms());
}

void dbld_slot_lost(dbld_t *d, slot_t *s)
{
    lease_t *l = s->lease; /* ACTIVE: pool_give_back clears it when one ends */
    if (l)
        lease_end(l, lost_reason(d), false);
}

/* The Redis engine reports lost servers through these (rd_events_t). */
static void rd_slot_lost(void *ud, slot_t *s)
{
    dbld_slot_lost(ud, s);
}

static void rd_pool_lost(void *ud, pool_t *p)
{
    dbld_pool_lost(ud, p);
}

static void rd_server_died(void *ud)
{
    ((dbld_t *)ud)->counters.instance_restarts++;
}

int dbld_redis_setup(dbld_t *d)
{
    tpl_t *t = tpl_current(d, "redis", "default");
    const rd_events_t ev = {.slot_lost = rd_slot_lost, .pool_lost = rd_pool_lost,
                            .server_died = rd_server_died, .ud = d};
    return t ? rd_setup(t, &ev) : 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void finish_shutdown(dbld_t *d)
{
    lease_reap_dead(d);
    uv_close((uv_handle_t *)&d->reaper, on_handle_closed);
    tpl_free_all(d);
    inst_free(d->pg);
    dk_free(d->dk);
    d->dk = NULL;
    d->pg = NULL;
    for (int k = 0; k < d->n_watch; k++)
        uv_close((uv_handle_t *)&d->sql_watch[k], on_handle_closed);
    uv_close((uv_handle_t *)&d->rescan, on_handle_closed);
    uv_close((uv_handle_t *)&d->janitor, on_handle_closed);
    uv_close((uv_handle_t *)&d->sig_term, on_handle_closed);
    uv_close((uv_handle_t *)&d->sig_int, on_handle_closed);
    uv_close((uv_handle_t *)&d->sig_hup, on_handle_closed);
    log_info("daemon", "stopped");
}

void dbld_inst_stopped(dbld_t *d, inst_t *i)
{
    (void)i;
    tpl_instance_stopped(d);
    dbld_shutdown_progress(d);
}

/* Called on each janitor tick while stopping: done once the PostgreSQL
 * server has stopped and every database (and Redis server) is gone. */
void dbld_shutdown_progress(dbld_t *d)
{
    if (d->state != DBLD_STOPPING)
        return;
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
        pool_drain(list_entry(it, tpl_t, node)->pool, util_now_ms());
    if (d->pg->state != INST_STOPPED || d->limits.total != 0)
        return;
    set_state(d, DBLD_FINISHED);
    finish_shutdown(d);
}

static size_t attached_leases(const dbld_t *d)
{
    size_t n = 0;
    list_node_t *it, *tmp;
    list_for_each(&d->leases, it, tmp)
    {
        const lease_t *l = list_entry(it, lease_t, node);
        n += !l->detached && l->holder.on_end;
    }
    return n;
}

void dbld_drain(dbld_t *d, const char *why)
{
    if (dbld_stopping(d))
        return;
    if (d->state == DBLD_DRAINING) {
        dbld_shutdown(d, "asked again while draining");
        return;
    }
    set_state(d, DBLD_DRAINING);
    d->drain_deadline_ms = util_now_ms() + (uint64_t)d->cfg.drain_timeout_s * 1000u;
    notify_stopping(d);
    log_info("daemon", "%s: draining: no new leases; %zu attached leases may finish (up to %d s)",
             why, attached_leases(d), d->cfg.drain_timeout_s);
    /* Requests waiting for a database would be new leases: answer them now. */
    sess_refuse_waiting_all(d);
    dbld_drain_progress(d);
}

void dbld_drain_progress(dbld_t *d)
{
    if (d->state != DBLD_DRAINING)
        return;
    size_t n = attached_leases(d);
    if (n == 0)
        dbld_shutdown(d, "drained");
    else if (util_now_ms() >= d->drain_deadline_ms)
        dbld_shutdown(d, "drain timeout: ending the remaining leases");
}

void dbld_shutdown(dbld_t *d, const char *why)
{
    if (dbld_stopping(d))
        return;
    bool drained = d->state == DBLD_DRAINING; /* which told systemd already */
    set_state(d, DBLD_STOPPING);
    if (!drained)
        notify_stopping(d);
    log_info("daemon", "shutting down: %s", why);
    ops_template_stopping(d); /* one reply per request, before the sessions go */
    server_close(d);
    metrics_stop(d);
    /* Each waiting request is answered, then its connection is flushed
     * (with a deadline: a client that does not read cannot hold us). */
    sess_close_all(d);
    /* Redis pools drop their servers; leases left (detached) end with the
     * server that holds them. */
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (!is_pg(t)) {
            dbld_pool_lost(d, t->pool);
            rd_shared_stop(t);
        }
    }
    inst_stop(d->pg);
}
