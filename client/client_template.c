/* libdblease: client-driven template migrations, template.ensure and
 * template.finalize (PROTOCOL.md), and template.drop. The claim that ensure may hand out
 * belongs to this connection: finalize ends it, and so does closing the
 * connection, which the daemon treats as an abandoned migration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_priv.h"

static int usage(dbl_ctx_t *ctx, const char *msg)
{
    dbl__set_err(ctx, DBL_ERR_USAGE, "%s", msg);
    return -1;
}

void dbl_template_free(dbl_template_t *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->hash);
    free(t->state);
    free(t->url);
    free(t->host);
    free(t->dbname);
    free(t->user);
    free(t->password);
    free(t);
}

static bool is_migrate(json_object *tmpl)
{
    json_object *v;

    return json_object_object_get_ex(tmpl, "state", &v) &&
           json_object_is_type(v, json_type_string) &&
           strcmp(json_object_get_string(v), "migrate") == 0;
}

static dbl_template_t *template_from_json(dbl_ctx_t *ctx, json_object *o, const char *op)
{
    dbl_template_t *t = calloc(1, sizeof(*t));
    bool failed = false;

    if (!t) {
        dbl__set_err(ctx, DBL_ERR_OOM, "out of memory");
        return NULL;
    }
    t->name = dbl__str_field(o, "name", &failed);
    t->hash = dbl__str_field(o, "hash", &failed);
    t->state = dbl__str_field(o, "state", &failed);
    t->url = dbl__str_field(o, "url", &failed);
    t->host = dbl__str_field(o, "host", &failed);
    t->port = (int)dbl__int_field(o, "port", 0);
    t->dbname = dbl__str_field(o, "dbname", &failed);
    t->user = dbl__str_field(o, "user", &failed);
    t->password = dbl__str_field(o, "password", &failed);
    if (failed) {
        dbl__set_err(ctx, DBL_ERR_OOM, "out of memory");
    } else if (!t->name || !t->hash || !t->state) {
        dbl__set_err(ctx, DBL_ERR_PROTOCOL,
                     "dbleased replied to %s without a template name, hash and state; "
                     "upgrade dblease to match it",
                     op);
        failed = true;
    } else if (strcmp(t->state, "migrate") == 0 && !t->url) {
        dbl__set_err(ctx, DBL_ERR_PROTOCOL,
                     "dbleased handed out a template to migrate without a url; "
                     "upgrade dblease to match it");
        failed = true;
    }
    if (failed) {
        dbl_template_free(t);
        return NULL;
    }
    return t;
}

static json_object *template_request(dbl_ctx_t *ctx, const char *op, const char *name,
                                     const char *hash, int64_t *id)
{
    json_object *req = dbl__request(ctx, op, id);

    if (!req)
        return NULL;
    json_object_object_add(req, "template", json_object_new_string(name));
    json_object_object_add(req, "hash", json_object_new_string(hash));
    return req;
}

/* Checks the arguments every template call shares. */
static int check_args(dbl_ctx_t *ctx, const char *fn, const char *name, const char *hash)
{
    if (!name || !*name) {
        dbl__set_err(ctx, DBL_ERR_USAGE, "%s() needs a template name", fn);
        return -1;
    }
    if (!hash || !*hash) {
        dbl__set_err(ctx, DBL_ERR_USAGE, "%s() needs a hash, e.g. the SHA-256 of the migrations",
                     fn);
        return -1;
    }
    return 0;
}

/* A reply's "template" object, or NULL with a protocol error set. */
static json_object *template_of(dbl_ctx_t *ctx, dbl_reply_t *reply, const char *op)
{
    json_object *t;

    if (json_object_object_get_ex(reply->root, "template", &t) &&
        json_object_is_type(t, json_type_object))
        return t;
    dbl__set_err(ctx, DBL_ERR_PROTOCOL,
                 "dbleased replied to %s without a template; upgrade dblease to match it", op);
    return NULL;
}

/* A claim we cannot hand to the caller must not stay held until the
 * connection closes: abandon it, so the next waiter gets it now. */
static void give_back(dbl_ctx_t *ctx, const char *name, const char *hash)
{
    dbl_ctx_t saved = *ctx; /* keep the error that made us give up */

    dbl_template_finalize(ctx, name, hash, false, NULL);
    memcpy(ctx->errstr, saved.errstr, sizeof(ctx->errstr));
    memcpy(ctx->code, saved.code, sizeof(ctx->code));
    ctx->err = saved.err;
}

/* template.ensure; claim false: only look (a daemon older than that
 * argument may hand out the claim anyway: then it is given back). */
static int ensure(dbl_ctx_t *ctx, const char *fn, const char *name, const char *hash,
                  int wait_ms, bool claim, dbl_template_t **out)
{
    dbl_reply_t reply;
    json_object *req, *t;
    int64_t id;
    char what[64];

    if (!ctx || !ctx->priv)
        return -1;
    snprintf(what, sizeof(what), "%s() needs somewhere to store the template", fn);
    if (!out)
        return usage(ctx, what);
    *out = NULL;
    if (check_args(ctx, fn, name, hash) < 0)
        return -1;
    req = template_request(ctx, "template.ensure", name, hash, &id);
    if (!req)
        return -1;
    if (wait_ms >= 0)
        json_object_object_add(req, "wait_ms", json_object_new_int(wait_ms));
    if (!claim)
        json_object_object_add(req, "claim", json_object_new_boolean(false));
    /* Like a lease, ensure may queue for wait_ms behind another client's
     * migration before the daemon replies. */
    if (dbl__call(ctx, req, id, dbl__wait_budget(ctx, wait_ms), &reply) < 0)
        return -1;
    t = template_of(ctx, &reply, "template.ensure");
    if (t)
        *out = template_from_json(ctx, t, "template.ensure");
    /* The claim is ours only if the daemon said so, for the name and hash
     * we asked about: those are what we abandon. */
    if (t && is_migrate(t) && (!*out || !claim)) {
        give_back(ctx, name, hash);
        if (*out) { /* an older daemon: what we asked is the answer */
            free((*out)->state);
            (*out)->state = strdup("missing");
        }
    }
    dbl_reply_free(&reply);
    if (*out && !(*out)->state) {
        dbl_template_free(*out);
        *out = NULL;
        dbl__set_err(ctx, DBL_ERR_OOM, "out of memory");
    }
    return *out ? 0 : -1;
}

int dbl_template_ensure(dbl_ctx_t *ctx, const char *name, const char *hash, int wait_ms,
                        dbl_template_t **out)
{
    return ensure(ctx, "dbl_template_ensure", name, hash, wait_ms, true, out);
}

int dbl_template_query(dbl_ctx_t *ctx, const char *name, const char *hash, int wait_ms,
                       dbl_template_t **out)
{
    return ensure(ctx, "dbl_template_query", name, hash, wait_ms, false, out);
}

int dbl_template_finalize(dbl_ctx_t *ctx, const char *name, const char *hash, bool ok,
                          dbl_template_t **out)
{
    dbl_reply_t reply;
    json_object *req, *t;
    int64_t id;
    int rc = 0;

    if (!ctx || !ctx->priv)
        return -1;
    if (out)
        *out = NULL;
    if (check_args(ctx, "dbl_template_finalize", name, hash) < 0)
        return -1;
    req = template_request(ctx, "template.finalize", name, hash, &id);
    if (!req)
        return -1;
    json_object_object_add(req, "ok", json_object_new_boolean(ok));
    if (dbl__call(ctx, req, id, 0, &reply) < 0)
        return -1;
    /* The claim has ended either way; only a caller who asked for the
     * result needs it to be well formed. */
    if (out) {
        t = template_of(ctx, &reply, "template.finalize");
        if (t)
            *out = template_from_json(ctx, t, "template.finalize");
        rc = *out ? 0 : -1;
    }
    dbl_reply_free(&reply);
    return rc;
}

int dbl_template_drop(dbl_ctx_t *ctx, const char *name)
{
    dbl_reply_t reply;
    json_object *req;
    int64_t id;

    if (!ctx || !ctx->priv)
        return -1;
    if (!name || !*name)
        return usage(ctx, "dbl_template_drop() needs a template name");
    req = dbl__request(ctx, "template.drop", &id);
    if (!req)
        return -1;
    json_object_object_add(req, "template", json_object_new_string(name));
    if (dbl__call(ctx, req, id, 0, &reply) < 0)
        return -1;
    dbl_reply_free(&reply);
    return 0;
}
