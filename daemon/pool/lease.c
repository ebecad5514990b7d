#include "lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm.h"
#include "log.h"
#include "tpl.h"
#include "util.h"

static const char *const reason_names[] = {
    [LEASE_RELEASED] = "released",
    [LEASE_DISCONNECTED] = "client disconnected",
    [LEASE_EXPIRED] = "ttl expired",
    [LEASE_INSTANCE_DOWN] = "instance down",
    [LEASE_SHUTDOWN] = "daemon stopping",
};

static const char *const state_names[] = {
    [LEASE_ACTIVE] = "active",
    [LEASE_ENDED] = "ended",
};
static const unsigned allowed[] = {
    [LEASE_ACTIVE] = FSM_TO(LEASE_ENDED),
    [LEASE_ENDED] = 0,
};
static const fsm_def_t lease_fsm = {"lease", LEASE__STATES, state_names, allowed};

lease_t *lease_new(dbld_t *d, slot_t *slot, const lease_owner_t *owner, bool detached, int ttl_s)
{
    lease_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    memcpy(l->id, "L-", 2);
    if (util_random_hex(l->id + 2, 8) < 0) {
        free(l);
        return NULL;
    }
    l->state = LEASE_ACTIVE;
    l->d = d;
    l->slot = slot;
    l->uid = owner->uid;
    l->pid = owner->pid;
    snprintf(l->client, sizeof l->client, "%s", owner->client ? owner->client : "");
    snprintf(l->command, sizeof l->command, "%s", owner->command ? owner->command : "");
    l->created_ms = util_now_ms();
    l->expires_at = util_unix_now() + ttl_s;
    l->detached = detached;
    slot->lease = l;
    list_append(&d->leases, &l->node);
    d->counters.leases_granted++;
    log_info("lease", "lease %s: %s to uid %d pid %d%s", l->id, slot->dbname, (int)l->uid,
             (int)l->pid, detached ? " (detached)" : "");
    return l;
}

lease_t *lease_find(dbld_t *d, const char *id)
{
    list_node_t *it, *tmp;
    list_for_each(&d->leases, it, tmp)
    {
        lease_t *l = list_entry(it, lease_t, node);
        if (strcmp(l->id, id) == 0)
            return l;
    }
    return NULL;
}

void lease_set_holder(lease_t *l, const lease_holder_t *h)
{
    l->holder = h ? *h : (lease_holder_t){0};
}

bool lease_held_by(const lease_t *l, const void *ud)
{
    return l->holder.on_end && l->holder.ud == ud;
}

static void count_end(dbld_t *d, lease_end_reason_t why)
{
    switch (why) {
    case LEASE_RELEASED:
        d->counters.leases_released++;
        break;
    case LEASE_EXPIRED:
        d->counters.leases_expired++;
        break;
    case LEASE_DISCONNECTED:
        d->counters.leases_disconnected++;
        break;
    default:
        break;
    }
}

void lease_end(lease_t *l, lease_end_reason_t why, bool clean)
{
    if (l->state != LEASE_ACTIVE)
        return;
    dbld_t *d = l->d;
    log_info("lease", "lease %s ended: %s", l->id, reason_names[why]);
    /* Off every list first: the holder's hook and the pool may re-enter
     * (an event can close its session, which ends its other leases). */
    l->state = (lease_state_t)fsm_step(&lease_fsm, l->state, LEASE_ENDED, l->id);
    list_remove(&d->leases, &l->node);
    list_append(&d->dead_leases, &l->node);
    count_end(d, why);
    slot_t *s = l->slot;
    lease_holder_t h = l->holder;
    l->holder = (lease_holder_t){0};
    if (h.on_end)
        h.on_end(l, why, h.ud);
    l->slot = NULL;
    pool_give_back(s, clean && why == LEASE_RELEASED, util_now_ms());
}

void lease_end_matching(dbld_t *d, bool (*match)(const lease_t *l, const void *arg),
                        const void *arg, lease_end_reason_t why)
{
    /* A saved next pointer could be a lease a nested end just unlinked, so
     * start over after each end; each one leaves d->leases, so this ends. */
    for (;;) {
        lease_t *hit = NULL;
        list_node_t *it, *tmp;
        list_for_each(&d->leases, it, tmp)
        {
            lease_t *l = list_entry(it, lease_t, node);
            if (match(l, arg)) {
                hit = l;
                break;
            }
        }
        if (!hit)
            return;
        lease_end(hit, why, false);
    }
}

static bool expired(const lease_t *l, const void *now)
{
    return l->expires_at <= *(const int64_t *)now;
}

void lease_reap_expired(dbld_t *d, int64_t now)
{
    lease_end_matching(d, expired, &now, LEASE_EXPIRED);
}

void lease_reap_dead(dbld_t *d)
{
    while (!list_empty(&d->dead_leases)) {
        lease_t *l = list_entry(list_first(&d->dead_leases), lease_t, node);
        list_remove(&d->dead_leases, &l->node);
        free(l);
    }
}

/* The database a lease opens: its own, or its template's shared one. */
static const char *lease_dbname(const lease_t *l)
{
    const tpl_t *t = l->slot->pool->ops_ud;
    return t->schema ? t->shared_db : l->slot->dbname;
}

static bool is_redis(const lease_t *l)
{
    return strcmp(l->slot->pool->kind, "redis") == 0;
}

static json_object *redis_lease_json(const lease_t *l)
{
    const slot_t *s = l->slot;
    char url[256];
    /* "default" spelled out: redis-cli reads an empty user as a user named "". */
    snprintf(url, sizeof url, "redis://default:%s@%s:%d/%d", s->password, l->host, l->port, s->db);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(l->id));
    json_object_object_add(o, "kind", json_object_new_string("redis"));
    json_object_object_add(o, "template", json_object_new_string("default"));
    json_object_object_add(o, "url", json_object_new_string(url));
    json_object_object_add(o, "host", json_object_new_string(l->host));
    json_object_object_add(o, "port", json_object_new_int(l->port));
    json_object_object_add(o, "db", json_object_new_int(s->db));
    json_object_object_add(o, "user", json_object_new_string("default"));
    json_object_object_add(o, "password", json_object_new_string(s->password));
    return o;
}

static void add_times(json_object *o, const lease_t *l)
{
    json_object_object_add(o, "expires_at", json_object_new_int64(l->expires_at));
    json_object_object_add(o, "ttl_s", json_object_new_int64(l->expires_at - util_unix_now()));
    json_object_object_add(o, "detached", json_object_new_boolean(l->detached));
}

json_object *lease_to_json(const lease_t *l)
{
    const slot_t *s = l->slot;
    const tpl_t *t = s->pool->ops_ud;
    if (strcmp(t->kind, "redis") == 0) {
        json_object *o = redis_lease_json(l);
        add_times(o, l);
        return o;
    }
    char url[512];
    /* Schema leases land in their schema through libpq's options. */
    snprintf(url, sizeof url, "postgresql://%s:%s@%s:%d/%s%s%s", s->dbname, s->password, l->host,
             l->port, lease_dbname(l), t->schema ? "?options=-csearch_path%3D" : "",
             t->schema ? s->dbname : "");
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(l->id));
    json_object_object_add(o, "kind", json_object_new_string(s->pool->kind));
    json_object_object_add(o, "template", json_object_new_string(s->pool->template_name));
    json_object_object_add(o, "url", json_object_new_string(url));
    json_object_object_add(o, "host", json_object_new_string(l->host));
    json_object_object_add(o, "port", json_object_new_int(l->port));
    json_object_object_add(o, "dbname", json_object_new_string(lease_dbname(l)));
    if (t->schema)
        json_object_object_add(o, "schema", json_object_new_string(s->dbname));
    json_object_object_add(o, "user", json_object_new_string(s->dbname));
    json_object_object_add(o, "password", json_object_new_string(s->password));
    add_times(o, l);
    return o;
}

json_object *lease_status_json(const lease_t *l, uint64_t now_ms)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(l->id));
    json_object_object_add(o, "kind", json_object_new_string(l->slot->pool->kind));
    json_object_object_add(o, "template", json_object_new_string(l->slot->pool->template_name));
    if (is_redis(l))
        json_object_object_add(o, "db", json_object_new_int(l->slot->db));
    else
        json_object_object_add(o, "dbname", json_object_new_string(lease_dbname(l)));
    if (((const tpl_t *)l->slot->pool->ops_ud)->schema)
        json_object_object_add(o, "schema", json_object_new_string(l->slot->dbname));
    json_object *owner = json_object_new_object();
    json_object_object_add(owner, "pid", json_object_new_int(l->pid));
    json_object_object_add(owner, "uid", json_object_new_int64((int64_t)l->uid));
    json_object_object_add(owner, "client", l->client[0] ? json_object_new_string(l->client) : NULL);
    json_object_object_add(owner, "command",
                           l->command[0] ? json_object_new_string(l->command) : NULL);
    json_object_object_add(o, "owner", owner);
    json_object_object_add(o, "age_s", json_object_new_int64((int64_t)((now_ms - l->created_ms) / 1000)));
    json_object_object_add(o, "expires_at", json_object_new_int64(l->expires_at));
    json_object_object_add(o, "detached", json_object_new_boolean(l->detached));
    return o;
}
