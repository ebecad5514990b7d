#include "dk_container.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm.h"
#include "log.h"

#define API_TIMEOUT_MS 60000 /* vfs storage copies a whole image per container */

/* Callbacks: started() once when leaving CREATING/STARTING/CANCELLING,
 * gone() once on reaching GONE (then the dkc_t is freed). */
typedef enum {
    DKC_CREATING,   /* POST /containers/create in flight */
    DKC_STARTING,   /* POST /start in flight */
    DKC_CANCELLING, /* removal asked while creating or starting: remove once that returns */
    DKC_RUNNING,    /* POST /wait in flight until it exits */
    DKC_REMOVING,   /* DELETE (and maybe /wait) in flight */
    DKC_GONE,
    DKC__COUNT
} dkc_state_t;

static const char *const state_names[DKC__COUNT] = {
    [DKC_CREATING] = "creating", [DKC_STARTING] = "starting", [DKC_CANCELLING] = "cancelling",
    [DKC_RUNNING] = "running",   [DKC_REMOVING] = "removing", [DKC_GONE] = "gone"};
static const unsigned allowed[DKC__COUNT] = {
    [DKC_CREATING] = FSM_TO(DKC_STARTING) | FSM_TO(DKC_CANCELLING) | FSM_TO(DKC_REMOVING) |
                     FSM_TO(DKC_GONE),
    [DKC_STARTING] = FSM_TO(DKC_RUNNING) | FSM_TO(DKC_CANCELLING) | FSM_TO(DKC_REMOVING) |
                     FSM_TO(DKC_GONE),
    [DKC_CANCELLING] = FSM_TO(DKC_REMOVING) | FSM_TO(DKC_GONE),
    [DKC_RUNNING] = FSM_TO(DKC_REMOVING) | FSM_TO(DKC_GONE),
    [DKC_REMOVING] = FSM_TO(DKC_GONE),
};
static const fsm_def_t dkc_fsm = {"container", DKC__COUNT, state_names, allowed};

struct dkc {
    dk_t *dk;
    char id[80];
    dkc_state_t state;
    dkc_cbs_t cbs; /* zeroed when abandoned */
    void *ud;
    int in_flight; /* API requests not answered yet */
    int64_t exit_code;
};

static void set_state(dkc_t *c, dkc_state_t to)
{
    c->state = (dkc_state_t)fsm_step(&dkc_fsm, (int)c->state, (int)to, c->id[0] ? c->id : "new");
}

static int request(dkc_t *c, const char *method, const char *suffix, long timeout_ms,
                   dk_cb cb)
{
    char p[600];
    snprintf(p, sizeof p, "%s/containers/%s%s", dk_api(c->dk), c->id, suffix);
    int rc = dk_request(c->dk, method, p, NULL, timeout_ms, cb, c);
    c->in_flight += rc == 0;
    return rc;
}

static void report_started(dkc_t *c, int err, const char *msg)
{
    if (c->cbs.started)
        c->cbs.started(c->ud, err, msg);
}

/* Gone once nothing is in flight any more; the owner hears it last. */
static void maybe_gone(dkc_t *c)
{
    if (c->in_flight > 0 || c->state == DKC_GONE)
        return;
    set_state(c, DKC_GONE);
    if (c->cbs.gone)
        c->cbs.gone(c->ud, c->exit_code);
    free(c);
}

static void on_removed(void *ud, long status, json_object *body, const char *err)
{
    dkc_t *c = ud;
    c->in_flight--;
    if (status != 204 && status != 404 && status != -ECANCELED) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        log_warn("docker", "removing container %.12s: %s", c->id, why);
    }
    maybe_gone(c);
}

/* DELETE by force (and its anonymous volumes); gone once it returns. */
static void remove_now(dkc_t *c)
{
    set_state(c, DKC_REMOVING);
    request(c, "DELETE", "?force=true&v=true", API_TIMEOUT_MS, on_removed);
    maybe_gone(c);
}

static void on_wait(void *ud, long status, json_object *body, const char *err)
{
    dkc_t *c = ud;
    c->in_flight--;
    json_object *code;
    if (body && json_object_object_get_ex(body, "StatusCode", &code))
        c->exit_code = json_object_get_int64(code);
    if (c->state == DKC_RUNNING && status != -ECANCELED)
        remove_now(c); /* exited by itself: it must not linger */
    else
        maybe_gone(c);
}

static void on_started(void *ud, long status, json_object *body, const char *err)
{
    dkc_t *c = ud;
    c->in_flight--;
    bool ok = status == 204 || status == 304;
    if (ok && c->state == DKC_STARTING) {
        set_state(c, DKC_RUNNING);
        request(c, "POST", "/wait", 0, on_wait);
        report_started(c, 0, NULL); /* may ask for removal: RUNNING -> REMOVING */
        return;
    }
    char why[512];
    if (ok)
        snprintf(why, sizeof why, "removed before it started");
    else
        dk_error_text(status, body, err, why, sizeof why);
    report_started(c, -EIO, why);
    if (status == -ECANCELED) { /* the client is going away: no more requests */
        maybe_gone(c);
        return;
    }
    remove_now(c);
}

static void on_created(void *ud, long status, json_object *body, const char *err)
{
    dkc_t *c = ud;
    c->in_flight--;
    json_object *id;
    if (status != 201 || !body || !json_object_object_get_ex(body, "Id", &id)) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        report_started(c, -EIO, why);
        maybe_gone(c);
        return;
    }
    snprintf(c->id, sizeof c->id, "%s", json_object_get_string(id));
    if (c->state == DKC_CANCELLING) {
        report_started(c, -EIO, "removed before it started");
        remove_now(c);
        return;
    }
    set_state(c, DKC_STARTING);
    if (request(c, "POST", "/start", API_TIMEOUT_MS, on_started) < 0) {
        report_started(c, -EIO, "cannot reach the container engine");
        remove_now(c);
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
    c->state = DKC_CREATING;
    char p[600];
    snprintf(p, sizeof p, "%s/containers/create?name=%s", dk_api(dk), name);
    if (dk_request(dk, "POST", p, body, API_TIMEOUT_MS, on_created, c) < 0) {
        free(c);
        return NULL;
    }
    c->in_flight = 1;
    return c;
}

void dkc_remove(dkc_t *c)
{
    switch (c->state) {
    case DKC_CREATING:
    case DKC_STARTING:
        set_state(c, DKC_CANCELLING); /* the answer in flight removes it */
        return;
    case DKC_RUNNING:
        remove_now(c);
        return;
    default: /* already going */
        return;
    }
}

void dkc_abandon(dkc_t *c)
{
    c->cbs = (dkc_cbs_t){0};
    dkc_remove(c);
}

const char *dkc_id(const dkc_t *c)
{
    return c->id;
}

json_object *dkc_labels(const dk_t *dk, const char *kind)
{
    json_object *labels = json_object_new_object();
    dk_owner_labels(dk_self(dk), labels); /* dblease.daemon and the proofs of life */
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
