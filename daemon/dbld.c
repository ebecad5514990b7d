/* The daemon's lifecycle: what happens when an instance comes up or goes
 * down, the periodic janitor, and an orderly shutdown. */
#include "dbld.h"

#include <stdlib.h>

#include "inst.h"
#include "lease.h"
#include "log.h"
#include "server.h"
#include "tpl.h"
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

void dbld_inst_down(dbld_t *d, inst_t *i)
{
    (void)i;
    /* Pools first, so nothing refills while the leases are ended. */
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
        pool_set_up(list_entry(it, tpl_t, node)->pool, false, util_now_ms());
    /* Its databases are gone with it: tell each holder, then forget. */
    list_for_each(&d->leases, it, tmp)
    {
        lease_t *l = list_entry(it, lease_t, node);
        lease_end(l, d->stopping ? LEASE_SHUTDOWN : LEASE_INSTANCE_DOWN, false);
    }
    tpl_instance_down(d);
    list_for_each(&d->templates, it, tmp)
        pool_drain(list_entry(it, tpl_t, node)->pool, util_now_ms());
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void finish_shutdown(dbld_t *d)
{
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
        pool_drain(list_entry(it, tpl_t, node)->pool, util_now_ms());
    if (d->limits.total != 0)
        log_error("daemon", "%d databases still tracked at exit", d->limits.total);
    else
        tpl_free_all(d);
    inst_free(d->pg);
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
    if (d->stopping)
        finish_shutdown(d);
}

void dbld_shutdown(dbld_t *d, const char *why)
{
    if (d->stopping)
        return;
    d->stopping = true;
    log_info("daemon", "shutting down: %s", why);
    server_close(d);
    while (!list_empty(&d->sessions))
        sess_close(list_entry(list_first(&d->sessions), sess_t, node));
    /* Leases left (detached) end with the server that holds them. */
    inst_stop(d->pg);
}
