#include "status.h"

#include <unistd.h>

#include "dbl_version.h"
#include "inst.h"
#include "lease.h"
#include "rd_slots.h"
#include "tpl.h"

#include <stdio.h>
#include <string.h>
#include "util.h"

static void add_int(json_object *o, const char *k, int64_t v)
{
    json_object_object_add(o, k, json_object_new_int64(v));
}

static json_object *pool_json(const tpl_t *t)
{
    const pool_t *p = t->pool;
    json_object *o = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string(p->kind));
    json_object_object_add(o, "template", json_object_new_string(p->template_name));
    json_object_object_add(o, "template_hash", json_object_new_string(t->hash));
    json_object_object_add(o, "template_state", json_object_new_string(tpl_state_name(t->state)));
    json_object_object_add(o, "isolation", json_object_new_string(tpl_isolation(t)));
    add_int(o, "ready", (int64_t)pool_count(p, SLOT_READY));
    add_int(o, "leased", (int64_t)pool_count(p, SLOT_LEASED));
    add_int(o, "resetting",
            (int64_t)(pool_count(p, SLOT_ROTATING) + pool_count(p, SLOT_DROPPING)));
    add_int(o, "creating", (int64_t)pool_count(p, SLOT_CREATING));
    add_int(o, "failed", (int64_t)pool_count(p, SLOT_FAILED));
    add_int(o, "waiting", (int64_t)p->waiters.count);
    add_int(o, "min_ready", p->min_ready);
    add_int(o, "max_total", p->max_total);
    /* release outcomes: how many, and their total milliseconds */
    json_object *r = json_object_new_object();
    for (int a = 0; a < RESET__COUNT; a++) {
        char key[32];
        add_int(r, reset_action_name((reset_action_t)a), (int64_t)p->counters.resets[a]);
        snprintf(key, sizeof key, "%s_ms", reset_action_name((reset_action_t)a));
        add_int(r, key, (int64_t)p->counters.reset_ms[a]);
    }
    add_int(r, "unchecked", (int64_t)p->counters.unchecked);
    json_object_object_add(o, "releases", r);
    if (p->last_error[0])
        json_object_object_add(o, "last_error", json_object_new_string(p->last_error));
    return o;
}

void status_fill(dbld_t *d, json_object *obj)
{
    json_object *daemon = json_object_new_object();
    json_object_object_add(daemon, "version", json_object_new_string(DBL_VERSION));
    add_int(daemon, "pid", getpid());
    add_int(daemon, "uptime_s", util_unix_now() - d->started_at);
    json_object_object_add(daemon, "draining", json_object_new_boolean(dbld_refusing(d)));
    json_object_object_add(daemon, "socket", json_object_new_string(d->cfg.socket));
    json_object_object_add(daemon, "state_dir", json_object_new_string(d->cfg.state_dir));
    if (d->metrics_on)
        json_object_object_add(daemon, "metrics", json_object_new_string(d->metrics_addr));
    /* The Redis kind failed at start-up (no redis-server): say why here,
     * where an operator looks, while PostgreSQL serves. */
    json_object *redis = json_object_new_object();
    json_object_object_add(redis, "state",
                           json_object_new_string(d->redis_bin[0] ? "available" : "failed"));
    if (!d->redis_bin[0])
        json_object_object_add(redis, "error", json_object_new_string(d->redis_error));
    json_object_object_add(daemon, "redis", redis);
    json_object_object_add(obj, "daemon", daemon);

    json_object *templates = json_object_new_array();
    json_object *pools = json_object_new_array();
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        const tpl_t *t = list_entry(it, tpl_t, node);
        json_object_array_add(templates, tpl_status_json(t));
        json_object_array_add(pools, pool_json(t));
    }
    json_object_object_add(obj, "templates", templates);
    json_object_object_add(obj, "pools", pools);

    json_object *insts = json_object_new_array();
    if (d->pg)
        json_object_array_add(insts, inst_status_json(d->pg));
    list_for_each(&d->templates, it, tmp)
    {
        const tpl_t *t = list_entry(it, tpl_t, node);
        if (strcmp(t->kind, "redis") == 0)
            rd_status_instances(t, insts);
    }
    json_object_object_add(obj, "instances", insts);

    json_object *leases = json_object_new_array();
    uint64_t now = util_now_ms();
    list_for_each(&d->leases, it, tmp)
        json_object_array_add(leases, lease_status_json(list_entry(it, lease_t, node), now));
    json_object_object_add(obj, "leases", leases);

    json_object *c = json_object_new_object();
    uint64_t resets = 0, failures = 0;
    list_for_each(&d->limits.pools, it, tmp)
    {
        pool_t *p = list_entry(it, pool_t, node);
        resets += p->counters.dropped + p->counters.rotated;
        failures += p->counters.create_failures + p->counters.drop_failures;
    }
    add_int(c, "leases_granted", (int64_t)d->counters.leases_granted);
    add_int(c, "leases_released", (int64_t)d->counters.leases_released);
    add_int(c, "leases_expired", (int64_t)d->counters.leases_expired);
    add_int(c, "leases_disconnected", (int64_t)d->counters.leases_disconnected);
    add_int(c, "resets", (int64_t)resets);
    add_int(c, "failures", (int64_t)failures);
    add_int(c, "connections", (int64_t)d->counters.connections);
    add_int(c, "databases", d->limits.total);
    add_int(c, "max_databases", d->limits.max);
    json_object_object_add(obj, "counters", c);
}
