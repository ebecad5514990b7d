/* template.ensure and template.finalize: client-driven migrations. The
 * first caller for a name+hash gets a claim (a login into the template
 * database); others wait for it, first come first served. */
#include "ops_template.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "caps.h"
#include "inst.h"
#include "log.h"
#include "tpl.h"
#include "tpl_build.h"
#include "util.h"

typedef struct tpl_req {
    list_node_t node; /* in sess->tpl_reqs */
    sess_t *sess;
    json_object *id;
    tpl_t *t;
    tpl_waiter_t waiter;
    uv_timer_t timer;
    bool ok;    /* finalize: freeze (true) or abandon */
    bool claim; /* ensure: may take the claim (false: only look and wait) */
} tpl_req_t;

static void req_closed(uv_handle_t *h)
{
    tpl_req_t *r = h->data;
    json_object_put(r->id);
    free(r);
}

/* Off every list, its memory freed once the timer is closed. */
static void req_unlink(tpl_req_t *r)
{
    tpl_cancel_wait(&r->waiter);
    list_remove(&r->sess->tpl_reqs, &r->node);
    uv_timer_stop(&r->timer);
    uv_close((uv_handle_t *)&r->timer, req_closed);
}

static void req_done(tpl_req_t *r)
{
    sess_t *s = r->sess;
    req_unlink(r);
    sess_maybe_finish(s);
}

/* The one reply to r. It is unlinked first: sending may close the session,
 * and that must find nothing of r left to answer or free. */
static void answer(tpl_req_t *r, json_object *msg)
{
    sess_t *s = r->sess;
    req_unlink(r);
    sess_send(s, msg);
    sess_maybe_finish(s);
}

static tpl_req_t *req_new(sess_t *s, json_object *id)
{
    tpl_req_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->sess = s;
    r->id = id ? json_object_get(id) : NULL;
    uv_timer_init(s->d->loop, &r->timer);
    r->timer.data = r;
    list_append(&s->tpl_reqs, &r->node);
    return r;
}

static json_object *template_json(const tpl_t *t, const char *state)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(t->name));
    json_object_object_add(o, "hash", json_object_new_string(t->hash));
    json_object_object_add(o, "state", json_object_new_string(state));
    return o;
}

static void reply(tpl_req_t *r, json_object *tpl)
{
    json_object *msg = dbl_reply_ok(r->id);
    json_object_object_add(msg, "template", tpl);
    answer(r, msg);
}

static void reply_error(tpl_req_t *r, dbl_errcode_t code, const char *text)
{
    answer(r, dbl_reply_error(r->id, code, text));
}

static void reply_migrate(tpl_req_t *r)
{
    tpl_t *t = r->t;
    inst_t *i = t->d->pg;
    char url[512];
    snprintf(url, sizeof url, "postgresql://%s:%s@%s:%d/%s", t->owner, t->owner_password, i->host,
             i->port, t->dbname);
    json_object *o = template_json(t, "migrate");
    json_object_object_add(o, "url", json_object_new_string(url));
    json_object_object_add(o, "host", json_object_new_string(i->host));
    json_object_object_add(o, "port", json_object_new_int(i->port));
    json_object_object_add(o, "dbname", json_object_new_string(t->dbname));
    json_object_object_add(o, "user", json_object_new_string(t->owner));
    json_object_object_add(o, "password", json_object_new_string(t->owner_password));
    reply(r, o);
}

/* The code for an engine error: a claim forgotten at shutdown is the
 * daemon's doing, not the template's. */
static dbl_errcode_t engine_error(const tpl_req_t *r)
{
    return dbld_stopping(r->sess->d) ? DBL_E_SHUTTING_DOWN : DBL_E_TEMPLATE_FAILED;
}

static void on_claimed(tpl_t *t, int err, const char *msg, void *ud)
{
    tpl_req_t *r = ud;
    if (err)
        reply_error(r, engine_error(r), msg);
    else
        reply_migrate(r);
}

static void evaluate(tpl_req_t *r);

static void on_template_event(tpl_waiter_t *w, tpl_t *t)
{
    evaluate(w->ud);
}

/* What an ensure waited for, in its timeout's words. */
static void on_wait_timeout(uv_timer_t *h)
{
    tpl_req_t *r = h->data;
    tpl_t *t = r->t;
    dbld_t *d = r->sess->d;
    char why[512];
    if (t->state == TPL_PENDING && d->pg->state == INST_RUNNING && !t->claimer)
        snprintf(why, sizeof why,
                 "no room for the template database: all %d databases that max_databases "
                 "allows exist; release leases or raise max_databases, then retry",
                 d->limits.max);
    else if (!tpl_wait_reason(t, why, sizeof why))
        snprintf(why, sizeof why, "template %s did not settle in time; retry, or raise wait_ms",
                 t->name);
    reply_error(r, DBL_E_TIMEOUT, why);
}

static bool owner_or_admin(const sess_t *s, const tpl_t *t)
{
    return dbld_is_admin(s->d, s->uid) || t->owner_uid == s->uid;
}

static void reply_forbidden(tpl_req_t *r, const char *what)
{
    sess_t *s = r->sess;
    char msg[512];
    snprintf(msg, sizeof msg,
             "template %s belongs to uid %u, which created it: only that user, root or "
             "dbleased's user (uid %u) may %s it; lease it as it is, or use another name",
             r->t->name, (unsigned)r->t->owner_uid, (unsigned)s->d->uid, what);
    reply_error(r, DBL_E_FORBIDDEN, msg);
}

/* Where the template is, decide: ready, claim it, or wait. */
static void evaluate(tpl_req_t *r)
{
    tpl_t *t = r->t;
    sess_t *s = r->sess;
    switch (t->state) {
    case TPL_READY:
        reply(r, template_json(t, "ready"));
        return;
    case TPL_FAILED:
        reply_error(r, DBL_E_TEMPLATE_FAILED, t->error);
        return;
    case TPL_RETIRING:
        reply_error(r, DBL_E_TEMPLATE_FAILED,
                    t->error[0] ? t->error : "the template was dropped; call template.ensure again");
        return;
    case TPL_PENDING:
        if (!r->claim) {
            reply(r, template_json(t, "missing")); /* nobody migrates it now */
            return;
        }
        if (!owner_or_admin(s, t)) {
            reply_forbidden(r, "migrate");
            return;
        }
        if (s->d->pg->state != INST_RUNNING || !tpl_reserve_db(t))
            break; /* wait for the server, or for room (tpl_janitor offers it) */
        uv_timer_stop(&r->timer); /* the engine answers now, however long it takes */
        t->claimer_uid = s->uid;
        t->claimer_pid = s->pid;
        if (tpl_claim_start(t, s, on_claimed, r) == 0)
            return;
        reply_error(r, DBL_E_INSTANCE_DOWN, "the server is not reachable; retry shortly");
        return;
    case TPL_BUILDING:
        if (t->claimer == s && !t->build) {
            reply_migrate(r); /* asked again by the claim holder */
            return;
        }
        break;
    default:
        break;
    }
    tpl_wait(t, &r->waiter, on_template_event, r);
}

/* Common arguments: template and hash, checked. */
static int name_and_hash(sess_t *s, dbl_request_t *req, const char **name, const char **hash)
{
    char err[256];
    if (dbl_arg_string(req, "template", name, err, sizeof err) < 0 ||
        dbl_arg_string(req, "hash", hash, err, sizeof err) < 0) {
        sess_reply_error(s, req->id, DBL_E_BAD_REQUEST, "%s", err);
        return -1;
    }
    if (!*name || !config_name_ok(*name, 63)) {
        sess_reply_error(s, req->id, DBL_E_BAD_REQUEST,
                         "template must be a name of 1 to 63 of A-Z a-z 0-9 _ . -");
        return -1;
    }
    if (!*hash || !config_name_ok(*hash, 64)) {
        sess_reply_error(s, req->id, DBL_E_BAD_REQUEST,
                         "hash must be 1 to 64 of A-Z a-z 0-9 _ . - (e.g. a hex SHA-256 of your "
                         "migrations)");
        return -1;
    }
    return 0;
}

void op_template_ensure(sess_t *s, dbl_request_t *req)
{
    dbld_t *d = s->d;
    const char *name = NULL, *hash = NULL, *kind = "postgres";
    char err[256];
    int64_t wait_ms = d->cfg.default_wait_ms;
    bool claim = true;
    if (name_and_hash(s, req, &name, &hash) < 0)
        return;
    if (dbl_arg_string(req, "kind", &kind, err, sizeof err) < 0 ||
        dbl_arg_int(req, "wait_ms", 0, 600000, &wait_ms, err, sizeof err) < 0 ||
        dbl_arg_bool(req, "claim", &claim, err, sizeof err) < 0) {
        sess_reply_error(s, req->id, DBL_E_BAD_REQUEST, "%s", err);
        return;
    }
    if (strcmp(kind, "postgres") != 0) {
        sess_reply_error(s, req->id, DBL_E_BAD_REQUEST, "templates are for kind \"postgres\"");
        return;
    }
    if (tpl_config_owns(&d->cfg, name)) {
        sess_reply_error(s, req->id, DBL_E_BAD_REQUEST,
                         "template \"%s\" is built by the daemon (built-in, or a "
                         "[template.%s] section with sql_dir); pick another name to migrate it "
                         "yourself",
                         name, name);
        return;
    }
    if (dbld_refusing(d)) {
        sess_reply_error(s, req->id, DBL_E_SHUTTING_DOWN, "dbleased is shutting down");
        return;
    }
    /* A new version is made only by whoever may migrate the name; it
     * replaces the current one only once finalized (tpl.c). */
    tpl_t *t = tpl_client_find(d, name, hash), *named = tpl_newest(d, "postgres", name);
    if (!t && !claim) {
        json_object *msg = dbl_reply_ok(req->id), *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(name));
        json_object_object_add(o, "hash", json_object_new_string(hash));
        json_object_object_add(o, "state", json_object_new_string("missing"));
        json_object_object_add(msg, "template", o);
        sess_send(s, msg);
        return;
    }
    if (!t && named && !dbld_is_admin(d, s->uid) && named->owner_uid != s->uid) {
        sess_reply_error(s, req->id, DBL_E_FORBIDDEN,
                         "template %s belongs to uid %u, which created it: only that user, root "
                         "or dbleased's user (uid %u) may migrate a new version of it; lease it "
                         "as it is, or use another name",
                         name, (unsigned)named->owner_uid, (unsigned)d->uid);
        return;
    }
    /* A new name is one more template database, and a pool, for this uid. */
    if (!t && !named && !caps_admit_template(s, req->id))
        return;
    if (!t)
        t = tpl_client(d, name, hash, s->uid);
    tpl_req_t *r = t ? req_new(s, req->id) : NULL;
    if (!r) {
        sess_reply_error(s, req->id, DBL_E_INTERNAL, "out of memory; retry");
        return;
    }
    r->t = t;
    r->claim = claim;
    t->last_used_ms = util_now_ms();
    uv_timer_start(&r->timer, on_wait_timeout, (uint64_t)wait_ms, 0);
    evaluate(r);
}

static void on_finished(tpl_t *t, int err, const char *msg, void *ud)
{
    tpl_req_t *r = ud;
    if (err)
        reply_error(r, engine_error(r), msg);
    else
        reply(r, template_json(t, r->ok ? "ready" : "abandoned"));
}

void op_template_finalize(sess_t *s, dbl_request_t *req)
{
    const char *name = NULL, *hash = NULL;
    char err[256];
    bool ok = true;
    if (name_and_hash(s, req, &name, &hash) < 0)
        return;
    if (dbl_arg_bool(req, "ok", &ok, err, sizeof err) < 0) {
        sess_reply_error(s, req->id, DBL_E_BAD_REQUEST, "%s", err);
        return;
    }
    tpl_t *t = NULL;
    list_node_t *it, *tmp;
    list_for_each(&s->d->templates, it, tmp)
    {
        tpl_t *c = list_entry(it, tpl_t, node);
        if (c->claimer && strcmp(c->name, name) == 0 && strcmp(c->hash, hash) == 0)
            t = c;
    }
    if (!t) {
        sess_reply_error(s, req->id, DBL_E_NOT_FOUND,
                         "no migration claim for template %s (%.12s); call template.ensure first",
                         name, hash);
        return;
    }
    if (t->claimer != s && !dbld_is_admin(s->d, s->uid) && t->owner_uid != s->uid) {
        sess_reply_error(s, req->id, DBL_E_FORBIDDEN,
                         "template %s belongs to uid %u, which created it: only that user, root "
                         "or dbleased's user may finalize it",
                         name, (unsigned)t->owner_uid);
        return;
    }
    if (t->claimer != s) {
        sess_reply_error(s, req->id, DBL_E_NOT_OWNER,
                         "another connection holds the claim on template %s", name);
        return;
    }
    t->last_used_ms = util_now_ms();
    tpl_req_t *r = req_new(s, req->id);
    if (!r) {
        sess_reply_error(s, req->id, DBL_E_INTERNAL, "out of memory; retry");
        return;
    }
    r->t = t;
    r->ok = ok;
    int rc = tpl_claim_finish(t, ok, on_finished, r);
    if (rc == -EAGAIN)
        reply_error(r, DBL_E_BAD_REQUEST,
                    "template.ensure has not answered yet; finalize after its \"migrate\" reply");
    else if (rc < 0)
        reply_error(r, DBL_E_INSTANCE_DOWN, "the server is not reachable; retry shortly");
}

void op_template_drop(sess_t *s, dbl_request_t *req)
{
    char err[256];
    const char *name = NULL;
    if (dbl_arg_string(req, "template", &name, err, sizeof err) < 0 || !name) {
        sess_reply_error(s, req->id, DBL_E_BAD_REQUEST, "%s",
                         name ? err : "template (the name) is required");
        return;
    }
    tpl_t *t = tpl_newest(s->d, "postgres", name);
    bool admin = dbld_is_admin(s->d, s->uid);
    /* Its owner may retire a client template; anything else is the
     * daemon's own user's and root's. */
    if (!admin && (!t || t->source != TPL_CLIENT || t->owner_uid != s->uid)) {
        if (t && t->source == TPL_CLIENT)
            sess_reply_error(s, req->id, DBL_E_FORBIDDEN,
                             "template %s belongs to uid %u, which created it: only that user, "
                             "root or dbleased's user may drop it",
                             name, (unsigned)t->owner_uid);
        else
            sess_reply_error(s, req->id, DBL_E_FORBIDDEN,
                             "template.drop is for dbleased's user and root, and for the "
                             "creator of a client template; \"%.64s\" is none of yours",
                             name);
        return;
    }
    if (!t || t->source == TPL_BUILTIN) {
        sess_reply_error(s, req->id, DBL_E_UNKNOWN_TEMPLATE,
                         "no droppable template named \"%.64s\"", name);
        return;
    }
    /* Its leases go on; it is dropped with the last of them. A config
     * template comes back on the next reload. */
    tpl_retire(t);
    sess_send(s, dbl_reply_ok(req->id));
}

void ops_template_session_closed(sess_t *s)
{
    /* Claims first: that detaches every engine callback bound to our
     * requests, so they can all be freed below. */
    list_node_t *it, *tmp;
    list_for_each(&s->d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (t->claimer == s) {
            log_info("tpl", "template %s (%.12s): its migrator went away; dropping it", t->name,
                     t->hash);
            if (tpl_claim_finish(t, false, NULL, NULL) < 0)
                t->claimer = NULL;
        }
    }
    while (!list_empty(&s->tpl_reqs))
        req_done(list_entry(list_first(&s->tpl_reqs), tpl_req_t, node));
}

void ops_template_stopping(dbld_t *d)
{
    /* Sessions are closed next: every template request still waiting gets
     * its one reply now. Claims in flight first: their callbacks answer
     * (shutting_down, see engine_error) and let go of the requests. */
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (t->source == TPL_CLIENT && (t->build || t->claimer))
            tpl_build_abort(t, "dbleased is shutting down; retry when it is back");
    }
    /* Answering can close a session, so the walk restarts after each; each
     * round answers (and unlinks) one request. */
    for (;;) {
        tpl_req_t *r = NULL;
        list_for_each(&d->sessions, it, tmp)
        {
            sess_t *s = list_entry(it, sess_t, node);
            if (!list_empty(&s->tpl_reqs)) {
                r = list_entry(list_first(&s->tpl_reqs), tpl_req_t, node);
                break;
            }
        }
        if (!r)
            return;
        reply_error(r, DBL_E_SHUTTING_DOWN, "dbleased is shutting down; retry when it is back");
    }
}
