#include "dk_reaper.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dk_beacon.h"
#include "fsm.h"
#include "log.h"
#include "util.h"

#define API_TIMEOUT_MS 60000
#define MAX_BEACONS 256

/* A stranger's beacon as we last saw it, on our clock. */
typedef struct seen {
    char owner[17];
    char name[128];
    uint64_t since_ms; /* when we first saw this name */
    int beat_s;        /* the owner's, from its label */
    bool listed;       /* in the latest listing (entries not listed are dropped) */
} seen_t;

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
    seen_t seen[MAX_BEACONS];
    int n_seen;
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

static const char *label(json_object *cont, const char *key)
{
    json_object *labels, *v;
    if (!json_object_object_get_ex(cont, "Labels", &labels) ||
        !json_object_object_get_ex(labels, key, &v) || !json_object_is_type(v, json_type_string))
        return "";
    return json_object_get_string(v);
}

static seen_t *find_seen(dk_reaper_t *r, const char *owner)
{
    for (int k = 0; k < r->n_seen; k++)
        if (strcmp(r->seen[k].owner, owner) == 0)
            return &r->seen[k];
    return NULL;
}

/* A beacon in the listing: same name as before, or a beat since. */
static void note_beacon(dk_reaper_t *r, json_object *cont, uint64_t now)
{
    json_object *names;
    const char *owner = label(cont, "dblease.daemon");
    if (!owner[0] || strcmp(owner, r->self.id) == 0 ||
        !json_object_object_get_ex(cont, "Names", &names) ||
        json_object_array_length(names) < 1)
        return;
    const char *name = json_object_get_string(json_object_array_get_idx(names, 0));
    seen_t *s = find_seen(r, owner);
    if (!s) {
        if (r->n_seen == MAX_BEACONS)
            return;
        s = &r->seen[r->n_seen++];
        snprintf(s->owner, sizeof s->owner, "%s", owner);
        s->name[0] = '\0';
    }
    s->listed = true;
    s->beat_s = atoi(label(cont, "dblease.beat_s"));
    if (strcmp(s->name, name) != 0) {
        snprintf(s->name, sizeof s->name, "%s", name);
        s->since_ms = now;
    }
}

/* Dead by heartbeat: its beacon's name unchanged for that many beats. */
static bool heartbeat_stopped(dk_reaper_t *r, const char *owner, uint64_t now, uint64_t *ago)
{
    seen_t *s = find_seen(r, owner);
    if (!s || s->beat_s <= 0)
        return false;
    *ago = now - s->since_ms;
    return *ago >= (uint64_t)s->beat_s * 1000 * DK_BEACON_MISSED;
}

static void judge(dk_reaper_t *r, json_object *cont, uint64_t now)
{
    json_object *labels = NULL, *id = NULL;
    json_object_object_get_ex(cont, "Labels", &labels);
    json_object_object_get_ex(cont, "Id", &id);
    dk_owner_t owner;
    if (!id || !dk_owner_from_labels(labels, &owner))
        return; /* an older dbleased's, or not ours: nothing proves anything */
    dk_verdict_t v = dk_owner_verdict(&r->self, &owner, dk_owner_proc_start);
    char why[96] = "";
    uint64_t ago = 0;
    if (v == DK_OWNER_UNKNOWN && heartbeat_stopped(r, owner.id, now, &ago)) {
        v = DK_OWNER_DEAD;
        snprintf(why, sizeof why, ": its heartbeat stopped %llu s ago",
                 (unsigned long long)(ago / 1000));
    }
    if (v != DK_OWNER_DEAD)
        return;
    const char *cid = json_object_get_string(id);
    log_warn("docker", "removing container %.12s: its owner dbleased %s (pid %s on %s) is dead%s",
             cid, owner.id, owner.pid, owner.host, why);
    char p[600];
    snprintf(p, sizeof p, "%s/containers/%s?force=true&v=true", dk_api(r->dk), cid);
    if (dk_request(r->dk, "DELETE", p, NULL, API_TIMEOUT_MS, on_removed, r) == 0)
        r->in_flight++;
}

/* Beacons first (what we know of each stranger), then every container. */
static void sweep(dk_reaper_t *r, json_object *list)
{
    uint64_t now = util_now_ms();
    size_t n = json_object_array_length(list);
    for (int k = 0; k < r->n_seen; k++)
        r->seen[k].listed = false;
    for (size_t k = 0; k < n; k++) {
        json_object *c = json_object_array_get_idx(list, k);
        if (strcmp(label(c, "dblease.kind"), "beacon") == 0)
            note_beacon(r, c, now);
    }
    for (int k = 0; k < r->n_seen;) /* forget owners whose beacon is gone */
        if (r->seen[k].listed)
            k++;
        else
            r->seen[k] = r->seen[--r->n_seen];
    for (size_t k = 0; k < n; k++)
        judge(r, json_object_array_get_idx(list, k), now);
}

static void on_listed(void *ud, long status, json_object *body, const char *err)
{
    dk_reaper_t *r = ud;
    r->in_flight--;
    if (status == 200 && body && json_object_is_type(body, json_type_array)) {
        sweep(r, body);
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

dk_reaper_t *dk_reaper_new(dk_t *dk, uv_loop_t *loop, const dk_owner_t *self, int beat_s)
{
    dk_reaper_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->dk = dk;
    r->self = *self;
    r->state = DKR_IDLE;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_tick, 0, (uint64_t)beat_s * 1000);
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
