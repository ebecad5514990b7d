#include "notify.h"

#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "tpl.h"

static void status_line(dbld_t *d, char *out, size_t len)
{
    size_t ready = 0, leased = 0;
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        pool_t *p = list_entry(it, tpl_t, node)->pool;
        ready += pool_count(p, SLOT_READY);
        leased += pool_count(p, SLOT_LEASED);
    }
    snprintf(out, len, "%s%zu leased, %zu ready, %d of %d databases, %zu clients",
             dbld_stopping(d) ? "draining: " : "", leased, ready, d->limits.total, d->limits.max,
             d->sessions.count);
}

void notify_tick(dbld_t *d)
{
    char line[256];
    status_line(d, line, sizeof line);
    if (!d->notified_ready) {
        tpl_t *def = tpl_current(d, "postgres", "default");
        if (!def || pool_count(def->pool, SLOT_READY) == 0)
            return;
        d->notified_ready = true;
        sd_notifyf(0, "READY=1\nSTATUS=%s", line);
        snprintf(d->last_status, sizeof d->last_status, "%s", line);
        return;
    }
    if (strcmp(line, d->last_status) != 0) {
        sd_notifyf(0, "STATUS=%s", line);
        snprintf(d->last_status, sizeof d->last_status, "%s", line);
    }
}

void notify_reloading(dbld_t *d)
{
    (void)d;
    sd_notify(0, "RELOADING=1\nSTATUS=reloading the configuration");
}

void notify_reloaded(dbld_t *d)
{
    d->last_status[0] = '\0'; /* the next tick repeats the counts */
    sd_notify(0, "READY=1");
}

void notify_stopping(dbld_t *d)
{
    (void)d;
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: draining leases, then the servers");
}
