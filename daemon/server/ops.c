#include "ops.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "caps.h"
#include "dbl_version.h"
#include "inst.h"
#include "lease.h"
#include "metrics.h"
#include "ops_template.h"
#include "reload.h"
#include "tpl.h"
#include "log.h"
#include "status.h"
#include "util.h"
#include "rt_disk.h"

#define MAX_WAIT_MS 600000

/* A lease request queued until a database is ready or wait_ms passes. */
typedef struct pending {
    list_node_t node; /* in sess->pending */
    sess_t *sess;
    json_object *id;
    pool_waiter_t waiter;
    uv_timer_t timer;
    char tname[64]; /* by name: the version it waits on may change */
    char kind[16];
    uint64_t start_ns; /* when the request arrived */
    int ttl_s;
    bool detach;
} pending_t;

typedef void (*op_fn)(sess_t *s, dbl_request_t *req);

#define ARG_FAIL(s, req, err) sess_reply_error((s), (req)->id, DBL_E_BAD_REQUEST, "%s", (err))

static void op_hello(sess_t *s, dbl_request_t *req)
{
    char err[256];
    int64_t proto = DBL_PROTO_VERSION;
    const char *client = NULL;
    if (dbl_arg_int(req, "proto", INT32_MIN, INT32_MAX, &proto, err, sizeof err) < 0 ||
        dbl_arg_string(req, "client", &client, err, sizeof err) < 0) {
        ARG_FAIL(s, req, err);
        return;
    }
    if (proto != DBL_PROTO_VERSION) {
        sess_reply_error(s, req->id, DBL_E_PROTO_VERSION,
                         "this dbleased speaks protocol %d, not %lld; upgrade the client or "
                         "the daemon so they match",
                         DBL_PROTO_VERSION, (long long)proto);
        return;
    }
    if (client)
        snprintf(s->client, sizeof s->client, "%s", client);
    json_object *r = dbl_reply_ok(req->id);
    json_object_object_add(r, "daemon", json_object_new_string("dbleased"));
    json_object_object_add(r, "version", json_object_new_string(DBL_VERSION));
    json_object_object_add(r, "proto", json_object_new_int(DBL_PROTO_VERSION));
    json_object *srv = json_object_new_object();
    json_object_object_add(srv, "pid", json_object_new_int(getpid()));
    json_object_object_add(srv, "uid", json_object_new_int64((int64_t)s->d->uid));
    json_object_object_add(srv, "started_at", json_object_new_int64(s->d->started_at));
    json_object_object_add(r, "server", srv);
    json_object *defs = json_object_new_object();
    json_object_object_add(defs, "wait_ms", json_object_new_int(s->d->cfg.default_wait_ms));
    json_object_object_add(defs, "ttl_s", json_object_new_int(s->d->cfg.default_ttl_s));
    json_object_object_add(defs, "max_ttl_s", json_object_new_int(s->d->cfg.max_ttl_s));
    json_object_object_add(r, "defaults", defs);
    sess_send(s, r);
}

static void grant(sess_t *s, json_object *id, slot_t *slot, bool detach, int ttl_s,
                  uint64_t start_ns)
{
    metrics_lease_latency(s->d, slot->pool->kind, start_ns);
    const lease_owner_t owner = {s->uid, s->pid, s->client, s->command};
    lease_t *l = lease_new(s->d, slot, &owner, detach, ttl_s);
    if (!l) {
        pool_give_back(slot, false, util_now_ms());
        sess_reply_error(s, id, DBL_E_INTERNAL, "out of memory; retry");
        return;
    }
    bool redis = strcmp(slot->pool->kind, "redis") == 0;
    snprintf(l->host, sizeof l->host, "%s",
             !redis ? s->d->pg->host : slot->host[0] ? slot->host : "127.0.0.1");
    l->port = redis ? slot->port : s->d->pg->port;
    sess_hold_lease(s, l);
    json_object *r = dbl_reply_ok(id);
    json_object_object_add(r, "lease", lease_to_json(l));
    sess_send(s, r);
}

static void pending_closed(uv_handle_t *h)
{
    pending_t *p = h->data;
    json_object_put(p->id);
    free(p);
}

static void pending_finish(pending_t *p)
{
    pool_cancel_wait(&p->waiter);
    list_remove(&p->sess->pending, &p->node);
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, pending_closed);
}

/* Answered: the session may be waiting for that to close. */
static void pending_answered(sess_t *s)
{
    sess_maybe_finish(s);
}

static void on_slot_for_waiter(pool_waiter_t *w, slot_t *slot)
{
    pending_t *p = w->ud;
    sess_t *s = p->sess;
    json_object *id = json_object_get(p->id);
    bool detach = p->detach;
    int ttl = p->ttl_s;
    uint64_t start = p->start_ns;
    char name[64];
    snprintf(name, sizeof name, "%s", p->tname);
    pending_finish(p);
    if (slot) {
        grant(s, id, slot, detach, ttl, start);
        pending_answered(s);
    } else { /* the template failed or was dropped while we waited */
        tpl_t *t = tpl_current(s->d, "postgres", name);
        sess_reply_error(s, id, DBL_E_TEMPLATE_FAILED, "template %s: %s", name,
                         t && t->error[0] ? t->error : "dropped while waiting; retry");
        pending_answered(s);
    }
    json_object_put(id);
}

static void on_wait_timeout(uv_timer_t *t)
{
    pending_t *p = t->data;
    sess_t *s = p->sess;
    pool_t *pool = p->waiter.pool;
    json_object *id = json_object_get(p->id);
    pending_finish(p);
    char why[512];
    if (pool && tpl_wait_reason(pool->ops_ud, why, sizeof why))
        sess_reply_error(s, id, DBL_E_TIMEOUT, "no database became ready in time: %s", why);
    else if (pool && pool->last_error[0])
        sess_reply_error(s, id, DBL_E_TIMEOUT,
                         "no database became ready in time; the pool reports: %s",
                         pool->last_error);
    else if (pool && pool->limits->total >= pool->limits->max)
        sess_reply_error(s, id, DBL_E_TIMEOUT,
                         "no database became ready in time: all %d that max_databases allows "
                         "exist and none could be freed; release leases or raise max_databases",
                         pool->limits->max);
    else
        sess_reply_error(s, id, DBL_E_TIMEOUT,
                         "no database became ready in time (all %d in use or being prepared); "
                         "raise wait_ms or max_total, or release leases",
                         pool ? pool->max_total : 0);
    json_object_put(id);
    pending_answered(s);
}

void ops_refuse_waiting(sess_t *s, dbl_errcode_t code, const char *msg)
{
    list_node_t *n;
    while ((n = list_first(&s->pending))) {
        pending_t *p = list_entry(n, pending_t, node);
        json_object *id = json_object_get(p->id);
        pending_finish(p);
        sess_reply_error(s, id, code, "%s", msg);
        json_object_put(id);
    }
    sess_maybe_finish(s);
}

void ops_cancel_pending(sess_t *s)
{
    while (!list_empty(&s->pending))
        pending_finish(list_entry(list_first(&s->pending), pending_t, node));
    ops_template_session_closed(s);
}

static void op_lease(sess_t *s, dbl_request_t *req)
{
    uint64_t start = uv_hrtime();
    dbld_t *d = s->d;
    char err[256];
    const char *kind = "postgres", *tmpl = NULL;
    int64_t ttl = d->cfg.default_ttl_s, wait_ms = d->cfg.default_wait_ms;
    bool detach = false;
    if (dbl_arg_string(req, "kind", &kind, err, sizeof err) < 0 ||
        dbl_arg_string(req, "template", &tmpl, err, sizeof err) < 0 ||
        dbl_arg_int(req, "ttl_s", 1, d->cfg.max_ttl_s, &ttl, err, sizeof err) < 0 ||
        dbl_arg_int(req, "wait_ms", 0, MAX_WAIT_MS, &wait_ms, err, sizeof err) < 0 ||
        dbl_arg_bool(req, "detach", &detach, err, sizeof err) < 0) {
        ARG_FAIL(s, req, err);
        return;
    }
    bool redis = strcmp(kind, "redis") == 0;
    if (!redis && strcmp(kind, "postgres") != 0) {
        sess_reply_error(s, req->id, DBL_E_BAD_REQUEST,
                         "kind must be \"postgres\" or \"redis\"; got \"%.32s\"", kind);
        return;
    }
    if (redis && !d->redis_bin[0]) {
        sess_reply_error(s, req->id, DBL_E_BAD_REQUEST,
                         "redis leases need redis-server where dbleased runs: %s; then "
                         "restart dbleased",
                         d->redis_error);
        return;
    }
    if (dbld_refusing(d)) {
        sess_reply_error(s, req->id, DBL_E_SHUTTING_DOWN,
                         "dbleased is shutting down; retry when it is back");
        return;
    }
    tpl_t *t = tpl_current(d, kind, tmpl ? tmpl : "default");
    if (!t && redis) {
        sess_reply_error(s, req->id, DBL_E_UNKNOWN_TEMPLATE,
                         "redis leases have no templates; omit template");
        return;
    }
    if (!t) {
        sess_reply_error(s, req->id, DBL_E_UNKNOWN_TEMPLATE,
                         "no template named \"%.64s\"; define [template.%.64s] in the config, "
                         "create it with template.ensure, or omit template for an empty database",
                         tmpl, tmpl);
        return;
    }
    if (t->state == TPL_FAILED) {
        sess_reply_error(s, req->id, DBL_E_TEMPLATE_FAILED, "template %s: %s", t->name, t->error);
        return;
    }
    if (t->source == TPL_CLIENT && t->state == TPL_PENDING && !t->claimer) {
        sess_reply_error(s, req->id, DBL_E_UNKNOWN_TEMPLATE,
                         "template %s has not been migrated (its last migration was abandoned); "
                         "run `dblease template migrate` or template.ensure first",
                         t->name);
        return;
    }
    if (!caps_admit_lease(s, req->id))
        return;
    t->last_used_ms = util_now_ms();
    pool_t *pool = t->pool;
    pool->cold = false;
    slot_t *slot = pool_take(pool);
    if (slot) {
        grant(s, req->id, slot, detach, (int)ttl, start);
        pool_refill(pool, util_now_ms());
        return;
    }
    char full[512]; /* nothing ready, and no room to clone one: say so now */
    if (!redis && rt_disk_check(d, full, sizeof full) < 0) {
        sess_reply_error(s, req->id, DBL_E_DISK_FULL, "%s", full);
        return;
    }
    if (wait_ms == 0) {
        sess_reply_error(s, req->id, DBL_E_POOL_EXHAUSTED,
                         "no database is ready right now (%d leased of max_total %d); pass "
                         "wait_ms to queue, or raise min_ready",
                         (int)pool_count(pool, SLOT_LEASED), pool->max_total);
        pool_refill(pool, util_now_ms());
        return;
    }
    pending_t *p = calloc(1, sizeof *p);
    if (!p) {
        sess_reply_error(s, req->id, DBL_E_INTERNAL, "out of memory; retry");
        return;
    }
    p->sess = s;
    snprintf(p->tname, sizeof p->tname, "%s", t->name);
    p->id = req->id ? json_object_get(req->id) : NULL;
    p->ttl_s = (int)ttl;
    p->start_ns = start;
    p->detach = detach;
    uv_timer_init(d->loop, &p->timer);
    p->timer.data = p;
    list_append(&s->pending, &p->node);
    pool_wait(pool, &p->waiter, on_slot_for_waiter, p);
    uv_timer_start(&p->timer, on_wait_timeout, (uint64_t)wait_ms, 0);
    pool_refill(pool, util_now_ms());
}

/* The live lease that was granted with this URL. The URL carries the
 * lease's password, so that of an ended lease, whose database a newer lease
 * may have now, names nothing. */
static lease_t *lease_find_url(dbld_t *d, const char *url)
{
    list_node_t *it, *tmp;
    list_for_each(&d->leases, it, tmp)
    {
        lease_t *l = list_entry(it, lease_t, node);
        json_object *o = lease_to_json(l), *u;
        bool same = json_object_object_get_ex(o, "url", &u) &&
                    strcmp(json_object_get_string(u), url) == 0;
        json_object_put(o);
        if (same)
            return l;
    }
    return NULL;
}

/* Find the lease named in the request (by id, or by the URL it was granted
 * with) and check the caller may act on it. */
static lease_t *owned_lease(sess_t *s, dbl_request_t *req, bool force)
{
    char err[256];
    const char *id = NULL, *url = NULL;
    if (dbl_arg_string(req, "lease", &id, err, sizeof err) < 0 ||
        dbl_arg_string(req, "url", &url, err, sizeof err) < 0 || (!id && !url)) {
        ARG_FAIL(s, req, id || url ? err : "lease (the lease id, \"L-…\") is required");
        return NULL;
    }
    lease_t *l = id ? lease_find(s->d, id) : lease_find_url(s->d, url);
    if (!l && !id) {
        sess_reply_error(s, req->id, DBL_E_NOT_FOUND,
                         "no live lease has that URL (it may have expired or been released "
                         "already)");
        return NULL;
    }
    if (!l) {
        sess_reply_error(s, req->id, DBL_E_NOT_FOUND,
                         "no lease %s (it may have expired or been released already)", id);
        return NULL;
    }
    id = l->id;
    if (force) /* the dispatcher let only an admin through (op_table) */
        return l;
    bool mine = l->detached ? l->uid == s->uid : lease_held_by(l, s);
    if (!mine) {
        sess_reply_error(s, req->id, DBL_E_NOT_OWNER,
                         "lease %s belongs to another client%s", id,
                         l->detached ? "" : " connection (attached leases end with it)");
        return NULL;
    }
    return l;
}

static void op_release(sess_t *s, dbl_request_t *req)
{
    char err[256];
    bool clean = false, force = false;
    if (dbl_arg_bool(req, "clean", &clean, err, sizeof err) < 0 ||
        dbl_arg_bool(req, "force", &force, err, sizeof err) < 0) {
        ARG_FAIL(s, req, err);
        return;
    }
    lease_t *l = owned_lease(s, req, force);
    if (!l)
        return;
    lease_end(l, LEASE_RELEASED, clean);
    sess_send(s, dbl_reply_ok(req->id));
}

static void op_renew(sess_t *s, dbl_request_t *req)
{
    char err[256];
    int64_t ttl = s->d->cfg.default_ttl_s;
    if (dbl_arg_int(req, "ttl_s", 1, s->d->cfg.max_ttl_s, &ttl, err, sizeof err) < 0) {
        ARG_FAIL(s, req, err);
        return;
    }
    lease_t *l = owned_lease(s, req, false);
    if (!l)
        return;
    l->expires_at = util_unix_now() + ttl;
    json_object *r = dbl_reply_ok(req->id);
    json_object_object_add(r, "expires_at", json_object_new_int64(l->expires_at));
    sess_send(s, r);
}

static void op_status(sess_t *s, dbl_request_t *req)
{
    json_object *r = dbl_reply_ok(req->id);
    status_fill(s->d, r);
    if (dbld_is_admin(s->d, s->uid)) /* who holds what: for admins only */
        json_object_object_add(r, "uids", caps_usage_json(s->d));
    sess_send(s, r);
}

static void op_drain(sess_t *s, dbl_request_t *req)
{
    sess_send(s, dbl_reply_ok(req->id));
    dbld_drain(s->d, "drain requested by a client");
}

/* As SIGINT: end every lease and stop now, without draining (`dblease stop
 * --now`). The reply comes first. */
static void op_stop(sess_t *s, dbl_request_t *req)
{
    sess_send(s, dbl_reply_ok(req->id));
    dbld_shutdown(s->d, "stop requested by a client");
}

static void op_reload(sess_t *s, dbl_request_t *req)
{
    reload_config(s->d);
    sess_send(s, dbl_reply_ok(req->id));
}

/* Who may call what, checked once by the dispatcher: admin ops are for the
 * daemon's own uid and root (SO_PEERCRED); admin_if names a boolean
 * argument that, when true, makes an op admin-only (release's force). */
static const struct {
    const char *name;
    op_fn fn;
    bool admin;
    const char *admin_if;
} op_table[] = {
    {"hello", op_hello, false, NULL},
    {"lease", op_lease, false, NULL},
    {"release", op_release, false, "force"},
    {"renew", op_renew, false, NULL},
    {"status", op_status, false, NULL},
    {"template.ensure", op_template_ensure, false, NULL},
    {"template.finalize", op_template_finalize, false, NULL},
    {"template.drop", op_template_drop, false, NULL}, /* owner check: ops_template.c */
    {"drain", op_drain, true, NULL},
    {"reload", op_reload, true, NULL},
    {"stop", op_stop, true, NULL},
};

/* May this peer make this call? Replies forbidden if not. */
static bool permitted(sess_t *s, dbl_request_t *req, bool admin, const char *admin_if)
{
    if (dbld_is_admin(s->d, s->uid))
        return true;
    if (admin) {
        sess_reply_error(s, req->id, DBL_E_FORBIDDEN,
                         "%s is for the daemon's own user and root; ask whoever runs dbleased",
                         req->op);
        return false;
    }
    bool on = false;
    char err[256];
    if (!admin_if || dbl_arg_bool(req, admin_if, &on, err, sizeof err) < 0 || !on)
        return true; /* a bad value is the handler's to report */
    sess_reply_error(s, req->id, DBL_E_FORBIDDEN,
                     "%s is for the daemon's own user and root only", admin_if);
    return false;
}

void ops_dispatch(sess_t *s, dbl_request_t *req)
{
    for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++) {
        if (strcmp(op_table[i].name, req->op) != 0)
            continue;
        if (permitted(s, req, op_table[i].admin, op_table[i].admin_if))
            op_table[i].fn(s, req);
        return;
    }
    sess_reply_error(s, req->id, DBL_E_UNKNOWN_OP,
                     "unknown op \"%.64s\"; known: hello, lease, release, renew, status, "
                     "template.ensure, template.finalize, template.drop, drain, reload, stop",
                     req->op);
}
