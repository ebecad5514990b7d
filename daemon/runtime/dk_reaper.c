#include "dk_reaper.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "fsm.h"
#include "log.h"

#define API_TIMEOUT_MS 60000

typedef enum {
    DKR_IDLE,     /* the timer is armed */
    DKR_SWEEPING, /* a listing or removals in flight */
    DKR_CLOSED,   /* freed once the timer has closed */
    DKR__COUNT
} dkr_state_t;

static const char *const state_names[DKR__COUNT] = {
    [DKR_IDLE] = "idle", [DKR_SWEEPING] = "sweeping", [DKR_CLOSED] = "closed"};
static const unsigned allowed[DKR__COUNT] = {
    [DKR_IDLE] = FSM_TO(DKR_SWEEPING) | FSM_TO(DKR_CLOSED),
    [DKR_SWEEPING] = FSM_TO(DKR_IDLE) | FSM_TO(DKR_CLOSED),
};
static const fsm_def_t dkr_fsm = {"reaper", DKR__COUNT, state_names, allowed};

struct dk_reaper {
    dk_t *dk;
    dk_owner_t self;
    uv_timer_t timer;
    dkr_state_t state;
    int in_flight;
};

static void set_state(dk_reaper_t *r, dkr_state_t to)
{
    r->state = (dkr_state_t)fsm_step(&dkr_fsm, (int)r->state, (int)to, "docker");
}

/* The sweep is over once nothing is in flight: wait for the next one. */
static void settle(dk_reaper_t *r)
{
    if (r->in_flight > 0 || r->state != DKR_SWEEPING)
        return;
    set_state(r, DKR_IDLE); /* the repeating timer starts the next */
}

static void on_removed(void *ud, long status, json_object *body, const char *err)
{
    dk_reaper_t *r = ud;
    r->in_flight--;
    if (status != 204 && status != 404 && status != -ECANCELED) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        log_warn("docker", "removing a dead daemon's container: %s", why);
    }
    settle(r);
}

static void judge(dk_reaper_t *r, json_object *cont)
{
    json_object *labels = NULL, *id = NULL;
    json_object_object_get_ex(cont, "Labels", &labels);
    json_object_object_get_ex(cont, "Id", &id);
    dk_owner_t owner;
    if (!id || !dk_owner_from_labels(labels, &owner))
        return; /* an older dbleased's, or not ours: nothing proves anything */
    if (dk_owner_verdict(&r->self, &owner, dk_owner_proc_start) != DK_OWNER_DEAD)
        return;
    const char *cid = json_object_get_string(id);
    log_warn("docker", "removing container %.12s: its owner dbleased %s (pid %s on %s) is dead",
             cid, owner.id, owner.pid, owner.host);
    char p[600];
    snprintf(p, sizeof p, "%s/containers/%s?force=true&v=true", dk_api(r->dk), cid);
    if (dk_request(r->dk, "DELETE", p, NULL, API_TIMEOUT_MS, on_removed, r) == 0)
        r->in_flight++;
}

static void on_listed(void *ud, long status, json_object *body, const char *err)
{
    dk_reaper_t *r = ud;
    r->in_flight--;
    if (status == 200 && body && json_object_is_type(body, json_type_array)) {
        for (size_t k = 0; k < json_object_array_length(body); k++)
            judge(r, json_object_array_get_idx(body, k));
    } else if (status != -ECANCELED) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        log_debug("docker", "listing containers to reap: %s", why);
    }
    settle(r);
}

static void on_tick(uv_timer_t *t)
{
    dk_reaper_t *r = t->data;
    if (r->state != DKR_IDLE)
        return;
    set_state(r, DKR_SWEEPING);
    /* {"label":["dblease.daemon"]}: every dbleased's containers. */
    char p[300];
    snprintf(p, sizeof p,
             "%s/containers/json?all=true&filters=%%7B%%22label%%22%%3A%%5B%%22dblease.daemon%%22%%5D%%7D",
             dk_api(r->dk));
    if (dk_request(r->dk, "GET", p, NULL, API_TIMEOUT_MS, on_listed, r) == 0)
        r->in_flight++;
    settle(r);
}

dk_reaper_t *dk_reaper_new(dk_t *dk, uv_loop_t *loop, const dk_owner_t *self)
{
    dk_reaper_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->dk = dk;
    r->self = *self;
    r->state = DKR_IDLE;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_tick, 0, DK_REAP_PERIOD_MS);
    uv_unref((uv_handle_t *)&r->timer); /* never what keeps the daemon up */
    return r;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void dk_reaper_free(dk_reaper_t *r)
{
    if (!r)
        return;
    set_state(r, DKR_CLOSED);
    uv_close((uv_handle_t *)&r->timer, on_closed);
}
