#include "dk_container.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define API_TIMEOUT_MS 60000 /* vfs storage copies a whole image per container */

struct dkc {
    dk_t *dk;
    char id[80];
    dkc_cbs_t cbs;
    void *ud;
    bool abandoned, started_reported;
    bool removing; /* a remove was asked for */
    bool deleting; /* its DELETE is in flight */
    bool waiting;  /* its /wait is in flight */
    int64_t exit_code;
};

static void report_started(dkc_t *c, int err, const char *msg)
{
    c->started_reported = true;
    if (!c->abandoned && c->cbs.started)
        c->cbs.started(c->ud, err, msg);
}

static void finish(dkc_t *c, int64_t code)
{
    if (!c->abandoned && c->cbs.gone)
        c->cbs.gone(c->ud, code);
    free(c);
}

/* Done once neither the watch nor a removal is in flight. */
static void maybe_finish(dkc_t *c)
{
    if (!c->waiting && !c->deleting)
        finish(c, c->exit_code);
}

static void path(char *out, size_t len, const dkc_t *c, const char *suffix)
{
    snprintf(out, len, "%s/containers/%s%s", dk_api(c->dk), c->id, suffix);
}

static void on_wait(void *ud, long status, json_object *body, const char *err)
{
    dkc_t *c = ud;
    c->waiting = false;
    json_object *code;
    if (body && json_object_object_get_ex(body, "StatusCode", &code))
        c->exit_code = json_object_get_int64(code);
    if (status != -ECANCELED && !c->removing)
        dkc_remove(c); /* exited by itself: it must not linger */
    maybe_finish(c);
}

static void on_removed(void *ud, long status, json_object *body, const char *err)
{
    dkc_t *c = ud;
    c->deleting = false;
    if (status != 204 && status != 404 && status != -ECANCELED) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        log_warn("docker", "removing container %.12s: %s", c->id, why);
    }
    maybe_finish(c);
}

static void on_started(void *ud, long status, json_object *body, const char *err)
{
    dkc_t *c = ud;
    if (status != 204 && status != 304) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        report_started(c, -EIO, why);
        if (status != -ECANCELED)
            dkc_remove(c);
        maybe_finish(c);
        return;
    }
    char p[600];
    path(p, sizeof p, c, "/wait");
    c->waiting = dk_request(c->dk, "POST", p, NULL, 0, on_wait, c) == 0;
    report_started(c, 0, NULL);
    if (c->abandoned)
        dkc_remove(c);
}

static void on_created(void *ud, long status, json_object *body, const char *err)
{
    dkc_t *c = ud;
    json_object *id;
    if (status != 201 || !body || !json_object_object_get_ex(body, "Id", &id)) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        report_started(c, -EIO, why);
        finish(c, -1);
        return;
    }
    snprintf(c->id, sizeof c->id, "%s", json_object_get_string(id));
    if (c->abandoned) {
        dkc_remove(c);
        maybe_finish(c);
        return;
    }
    char p[600];
    path(p, sizeof p, c, "/start");
    if (dk_request(c->dk, "POST", p, NULL, API_TIMEOUT_MS, on_started, c) < 0) {
        report_started(c, -EIO, "cannot reach the container engine");
        dkc_remove(c);
        maybe_finish(c);
    }
}

dkc_t *dkc_run(dk_t *dk, json_object *body, const char *name, const dkc_cbs_t *cbs, void *ud)
{
    dkc_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->dk = dk;
    c->cbs = *cbs;
    c->ud = ud;
    c->exit_code = -1;
    char p[600];
    snprintf(p, sizeof p, "%s/containers/create?name=%s", dk_api(dk), name);
    if (dk_request(dk, "POST", p, body, API_TIMEOUT_MS, on_created, c) < 0) {
        free(c);
        return NULL;
    }
    return c;
}

void dkc_remove(dkc_t *c)
{
    if (c->removing || !c->id[0])
        return;
    c->removing = true;
    char p[600];
    path(p, sizeof p, c, "?force=true&v=true"); /* and its anonymous volumes */
    c->deleting = dk_request(c->dk, "DELETE", p, NULL, API_TIMEOUT_MS, on_removed, c) == 0;
}

void dkc_abandon(dkc_t *c)
{
    c->abandoned = true; /* nothing in flight yet (creating): on_created removes it */
    if (c->id[0])
        dkc_remove(c);
}

const char *dkc_id(const dkc_t *c)
{
    return c->id;
}

json_object *dkc_labels(const char *daemon_id, const char *kind)
{
    json_object *labels = json_object_new_object();
    json_object_object_add(labels, "dblease.daemon", json_object_new_string(daemon_id));
    json_object_object_add(labels, "dblease.kind", json_object_new_string(kind));
    return labels;
}

/* ---- sweeping ------------------------------------------------------------ */

typedef struct sweep {
    dk_t *dk;
    int left;
    void (*done)(void *, int, const char *);
    void *ud;
} sweep_t;

static void on_swept_one(void *ud, long status, json_object *body, const char *err)
{
    sweep_t *w = ud;
    if (status != 204 && status != 404 && status != -ECANCELED) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        log_warn("docker", "removing a leftover container: %s", why);
    }
    if (--w->left > 0)
        return;
    void (*done)(void *, int, const char *) = w->done;
    void *dud = w->ud;
    free(w);
    done(dud, status == -ECANCELED ? -ECANCELED : 0, NULL);
}

static void on_listed(void *ud, long status, json_object *body, const char *err)
{
    sweep_t *w = ud;
    if (status != 200 || !body || !json_object_is_type(body, json_type_array)) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        void (*done)(void *, int, const char *) = w->done;
        void *dud = w->ud;
        free(w);
        done(dud, status == -ECANCELED ? -ECANCELED : -EIO, why);
        return;
    }
    size_t n = json_object_array_length(body);
    w->left = (int)n + 1; /* +1: held while queueing */
    for (size_t k = 0; k < n; k++) {
        json_object *cont = json_object_array_get_idx(body, k), *id;
        const char *cid =
            json_object_object_get_ex(cont, "Id", &id) ? json_object_get_string(id) : "";
        log_warn("docker", "removing container %.12s left by a previous dbleased", cid);
        char p[600];
        snprintf(p, sizeof p, "%s/containers/%s?force=true&v=true", dk_api(w->dk), cid);
        if (dk_request(w->dk, "DELETE", p, NULL, API_TIMEOUT_MS, on_swept_one, w) < 0)
            w->left--;
    }
    on_swept_one(w, 204, NULL, NULL);
}

void dkc_sweep(dk_t *dk, const char *daemon_id, const char *kind,
               void (*done)(void *ud, int err, const char *msg), void *ud)
{
    sweep_t *w = calloc(1, sizeof *w);
    if (!w) {
        done(ud, -ENOMEM, "out of memory");
        return;
    }
    w->dk = dk;
    w->done = done;
    w->ud = ud;
    /* {"label":["dblease.daemon=ID","dblease.kind=KIND"]}, URL-encoded */
    char p[600];
    snprintf(p, sizeof p,
             "%s/containers/json?all=true&filters=%%7B%%22label%%22%%3A%%5B%%22dblease.daemon%%3D%s"
             "%%22%%2C%%22dblease.kind%%3D%s%%22%%5D%%7D",
             dk_api(dk), daemon_id, kind);
    if (dk_request(dk, "GET", p, NULL, API_TIMEOUT_MS, on_listed, w) < 0) {
        free(w);
        done(ud, -EIO, "cannot reach the container engine");
    }
}
