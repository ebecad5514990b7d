/* libdblease: the operations — lease, release, renew, status (templates are
 * in client_template.c). Each builds
 * its request, leaves out what the caller left at its default (so the
 * daemon's own defaults apply), and turns the reply into C values. */
#include <stdlib.h>
#include <string.h>

#include "client_priv.h"

/* Refuses a NULL or unconnected-by-construction context before any I/O. */
static int bad_ctx(dbl_ctx_t *ctx)
{
    return !ctx || !ctx->priv;
}

static int usage(dbl_ctx_t *ctx, const char *msg)
{
    dbl__set_err(ctx, DBL_ERR_USAGE, "%s", msg);
    return -1;
}

static int oom(dbl_ctx_t *ctx)
{
    dbl__set_err(ctx, DBL_ERR_OOM, "out of memory");
    return -1;
}

char *dbl__str_field(json_object *o, const char *key, bool *failed)
{
    json_object *v;
    char *s;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    s = strdup(json_object_get_string(v));
    if (!s)
        *failed = true;
    return s;
}

int64_t dbl__int_field(json_object *o, const char *key, int64_t dflt)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return dflt;
    return json_object_get_int64(v);
}

/* The daemon may rightly sit on a request for wait_ms before replying
 * (PROTOCOL.md: our read timeout MUST exceed it). When the caller left
 * wait_ms to the daemon, allow for the default it announced in hello, or
 * else for the protocol's maximum. */
int64_t dbl__wait_budget(const dbl_ctx_t *ctx, int wait_ms)
{
    if (wait_ms >= 0)
        return wait_ms;
    return ctx->priv->default_wait_ms >= 0 ? ctx->priv->default_wait_ms : DBL__MAX_WAIT_MS;
}

void dbl_lease_free(dbl_lease_t *l)
{
    if (!l)
        return;
    free(l->id);
    free(l->kind);
    free(l->template_name);
    free(l->url);
    free(l->host);
    free(l->socket);
    free(l->dbname);
    free(l->user);
    free(l->password);
    free(l->schema);
    free(l);
}

static dbl_lease_t *lease_from_json(dbl_ctx_t *ctx, json_object *o)
{
    dbl_lease_t *l = calloc(1, sizeof(*l));
    bool failed = false;

    if (!l) {
        oom(ctx);
        return NULL;
    }
    l->id = dbl__str_field(o, "id", &failed);
    l->kind = dbl__str_field(o, "kind", &failed);
    l->template_name = dbl__str_field(o, "template", &failed);
    l->url = dbl__str_field(o, "url", &failed);
    l->host = dbl__str_field(o, "host", &failed);
    l->port = (int)dbl__int_field(o, "port", 0);
    l->socket = dbl__str_field(o, "socket", &failed);
    l->dbname = dbl__str_field(o, "dbname", &failed);
    l->db = (int)dbl__int_field(o, "db", 0);
    l->user = dbl__str_field(o, "user", &failed);
    l->password = dbl__str_field(o, "password", &failed);
    l->expires_at = dbl__int_field(o, "expires_at", 0);
    l->schema = dbl__str_field(o, "schema", &failed);
    if (failed)
        oom(ctx);
    else if (!l->id || !l->url)
        dbl__set_err(ctx, DBL_ERR_PROTOCOL,
                     "dbleased granted a lease without an id or url; upgrade dblease to match it");
    if (failed || !l->id || !l->url) {
        dbl_lease_free(l);
        return NULL;
    }
    return l;
}

/* A lease we cannot hand to the caller must not stay held: give it back. */
static void give_back(dbl_ctx_t *ctx, json_object *lease)
{
    json_object *v;
    dbl_ctx_t saved = *ctx; /* keep the error that made us give up */

    if (json_object_object_get_ex(lease, "id", &v) && json_object_is_type(v, json_type_string))
        dbl_release(ctx, json_object_get_string(v), true);
    memcpy(ctx->errstr, saved.errstr, sizeof(ctx->errstr));
    memcpy(ctx->code, saved.code, sizeof(ctx->code));
    ctx->err = saved.err;
}

static json_object *lease_request(dbl_ctx_t *ctx, const dbl_lease_opts_t *o, int64_t *id)
{
    json_object *req = dbl__request(ctx, "lease", id);

    if (!req)
        return NULL;
    json_object_object_add(req, "kind", json_object_new_string(o->kind ? o->kind : "postgres"));
    if (o->template_name)
        json_object_object_add(req, "template", json_object_new_string(o->template_name));
    if (o->ttl_s > 0)
        json_object_object_add(req, "ttl_s", json_object_new_int(o->ttl_s));
    if (o->wait_ms >= 0)
        json_object_object_add(req, "wait_ms", json_object_new_int(o->wait_ms));
    json_object_object_add(req, "detach", json_object_new_boolean(o->detach));
    return req;
}

int dbl__lease_raw(dbl_ctx_t *ctx, const dbl_lease_opts_t *opts, dbl_lease_t **out,
                   json_object **raw)
{
    static const dbl_lease_opts_t defaults = {.wait_ms = -1};
    dbl_reply_t reply;
    json_object *req, *lease;
    int64_t id;

    if (bad_ctx(ctx))
        return -1;
    if (!out)
        return usage(ctx, "dbl_lease() needs somewhere to store the lease");
    *out = NULL;
    if (raw)
        *raw = NULL;
    if (!opts)
        opts = &defaults;
    if (opts->ttl_s < 0)
        return usage(ctx, "ttl_s must be 0 (the daemon's default) or positive");
    req = lease_request(ctx, opts, &id);
    if (!req)
        return -1;
    if (dbl__call(ctx, req, id, dbl__wait_budget(ctx, opts->wait_ms), &reply) < 0)
        return -1;
    if (!json_object_object_get_ex(reply.root, "lease", &lease) ||
        !json_object_is_type(lease, json_type_object)) {
        dbl_reply_free(&reply);
        dbl__set_err(ctx, DBL_ERR_PROTOCOL,
                     "dbleased replied to lease without a lease; upgrade dblease to match it");
        return -1;
    }
    *out = lease_from_json(ctx, lease);
    if (!*out)
        give_back(ctx, lease);
    else if (raw)
        *raw = json_object_get(lease);
    dbl_reply_free(&reply);
    return *out ? 0 : -1;
}

int dbl_lease(dbl_ctx_t *ctx, const dbl_lease_opts_t *opts, dbl_lease_t **out)
{
    return dbl__lease_raw(ctx, opts, out, NULL);
}

/* A lease is named by its id or by the URL it was granted with (what a
 * person was shown); only the daemon can tell a live lease's URL from that
 * of an ended lease whose database a newer lease now has. */
static void add_lease_ref(json_object *req, const char *lease)
{
    json_object_object_add(req, strstr(lease, "://") ? "url" : "lease",
                           json_object_new_string(lease));
}

int dbl_release(dbl_ctx_t *ctx, const char *lease_id, bool clean)
{
    dbl_reply_t reply;
    json_object *req;
    int64_t id;

    if (bad_ctx(ctx))
        return -1;
    if (!lease_id || !*lease_id)
        return usage(ctx, "dbl_release() needs a lease id");
    req = dbl__request(ctx, "release", &id);
    if (!req)
        return -1;
    add_lease_ref(req, lease_id);
    json_object_object_add(req, "clean", json_object_new_boolean(clean));
    if (dbl__call(ctx, req, id, 0, &reply) < 0)
        return -1;
    dbl_reply_free(&reply);
    return 0;
}

int dbl_renew(dbl_ctx_t *ctx, const char *lease_id, int ttl_s, int64_t *expires_at)
{
    dbl_reply_t reply;
    json_object *req, *v;
    int64_t id;
    int rc = 0;

    if (bad_ctx(ctx))
        return -1;
    if (!lease_id || !*lease_id)
        return usage(ctx, "dbl_renew() needs a lease id");
    if (ttl_s < 0)
        return usage(ctx, "ttl_s must be 0 (the daemon's default) or positive");
    req = dbl__request(ctx, "renew", &id);
    if (!req)
        return -1;
    add_lease_ref(req, lease_id);
    if (ttl_s > 0)
        json_object_object_add(req, "ttl_s", json_object_new_int(ttl_s));
    if (dbl__call(ctx, req, id, 0, &reply) < 0)
        return -1;
    if (!json_object_object_get_ex(reply.root, "expires_at", &v) ||
        !json_object_is_type(v, json_type_int)) {
        dbl__set_err(ctx, DBL_ERR_PROTOCOL,
                     "dbleased renewed the lease but sent no expires_at; upgrade dblease");
        rc = -1;
    } else if (expires_at) {
        *expires_at = json_object_get_int64(v);
    }
    dbl_reply_free(&reply);
    return rc;
}

int dbl_status(dbl_ctx_t *ctx, char **json)
{
    dbl_reply_t reply;
    json_object *req, *status;
    int64_t id;
    const char *s;

    if (bad_ctx(ctx))
        return -1;
    if (!json)
        return usage(ctx, "dbl_status() needs somewhere to store the status");
    *json = NULL;
    req = dbl__request(ctx, "status", &id);
    if (!req)
        return -1;
    if (dbl__call(ctx, req, id, 0, &reply) < 0)
        return -1;
    /* The status object is the reply itself, less the envelope. Copied, not
     * edited in place: reply.id points into reply.root. */
    status = json_object_new_object();
    if (status) {
        json_object_object_foreach(reply.root, key, val) {
            if (strcmp(key, "id") != 0 && strcmp(key, "ok") != 0)
                json_object_object_add(status, key, json_object_get(val));
        }
        s = json_object_to_json_string_ext(status,
                                           JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        *json = s ? strdup(s) : NULL;
        json_object_put(status);
    }
    dbl_reply_free(&reply);
    return *json ? 0 : oom(ctx);
}
