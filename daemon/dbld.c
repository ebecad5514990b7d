/* The daemon's lifecycle: what happens when an instance comes up or goes
 * down, the periodic janitor, and an orderly shutdown. */
#include "dbld.h"

#include <stdlib.h>

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

/* End the leases of a pool whose databases are gone; tell each holder. */
static void end_leases_of(dbld_t *d, const pool_t *p)
{
    list_node_t *it, *tmp;
    list_for_each(&d->leases, it, tmp)
    {
        lease_t *l = list_entry(it, lease_t, node);
        if (l->slot->pool == p)
            lease_end(l, d->stopping ? LEASE_SHUTDOWN : LEASE_INSTANCE_DOWN, false);
    }
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
    lease_t *l = s->lease;
    if (l)
        lease_end(l, d->stopping ? LEASE_SHUTDOWN : LEASE_INSTANCE_DOWN, false);
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void finish_shutdown(dbld_t *d)
{
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
    dbld_shutdown_progress(d);
}

/* Called on each janitor tick while stopping: done once the PostgreSQL
 * server has stopped and every database (and Redis server) is gone. */
void dbld_shutdown_progress(dbld_t *d)
{
    if (!d->stopping || d->finished)
        return;
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
        pool_drain(list_entry(it, tpl_t, node)->pool, util_now_ms());
    if (d->pg->state != INST_STOPPED || d->limits.total != 0)
        return;
    d->finished = true;
    finish_shutdown(d);
}

static size_t attached_leases(const dbld_t *d)
{
    size_t n = 0;
    list_node_t *it, *tmp;
    list_for_each(&d->leases, it, tmp)
    {
        const lease_t *l = list_entry(it, lease_t, node);
        n += !l->detached && l->sess;
    }
    return n;
}

void dbld_drain(dbld_t *d, const char *why)
{
    if (d->stopping)
        return;
    if (d->draining) {
        dbld_shutdown(d, "asked again while draining");
        return;
    }
    d->draining = true;
    d->drain_deadline_ms = util_now_ms() + (uint64_t)d->cfg.drain_timeout_s * 1000u;
    notify_stopping(d);
    log_info("daemon", "%s: draining: no new leases; %zu attached leases may finish (up to %d s)",
             why, attached_leases(d), d->cfg.drain_timeout_s);
    dbld_drain_progress(d);
}

void dbld_drain_progress(dbld_t *d)
{
    if (!d->draining || d->stopping)
        return;
    size_t n = attached_leases(d);
    if (n == 0)
        dbld_shutdown(d, "drained");
    else if (util_now_ms() >= d->drain_deadline_ms)
        dbld_shutdown(d, "drain timeout: ending the remaining leases");
}

void dbld_shutdown(dbld_t *d, const char *why)
{
    if (d->stopping)
        return;
    d->stopping = true;
    notify_stopping(d);
    log_info("daemon", "shutting down: %s", why);
    ops_template_stopping(d); /* one reply per request, before the sessions go */
    server_close(d);
    metrics_stop(d);
    while (!list_empty(&d->sessions))
        sess_close(list_entry(list_first(&d->sessions), sess_t, node));
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
