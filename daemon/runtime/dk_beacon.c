#include "dk_beacon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dk_container.h"
#include "fsm.h"
#include "log.h"

#define API_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS 20000 /* a stop does not wait long for a sick engine */

typedef enum {
    DKB_CREATING, /* POST /containers/create in flight (retried each beat on failure) */
    DKB_BEATING,  /* made; renamed each beat (a rename may be in flight) */
    DKB_REMOVING, /* stopping: DELETE in flight */
    DKB_CLOSED,   /* timer closing, then freed */
    DKB__COUNT
} dkb_state_t;

static const char *const state_names[DKB__COUNT] = {[DKB_CREATING] = "creating",
                                                    [DKB_BEATING] = "beating",
                                                    [DKB_REMOVING] = "removing",
                                                    [DKB_CLOSED] = "closed"};
static const unsigned allowed[DKB__COUNT] = {
    [DKB_CREATING] = FSM_TO(DKB_BEATING) | FSM_TO(DKB_REMOVING) | FSM_TO(DKB_CLOSED),
    [DKB_BEATING] = FSM_TO(DKB_REMOVING) | FSM_TO(DKB_CLOSED),
    [DKB_REMOVING] = FSM_TO(DKB_CLOSED),
};
static const fsm_def_t dkb_fsm = {"beacon", DKB__COUNT, state_names, allowed};

struct dk_beacon {
    dk_t *dk;
    uv_timer_t timer;
    dkb_state_t state;
    char image[256];
    int beat_s;
    char id[80];         /* the container's, once made */
    unsigned long n;     /* the name's counter */
    int in_flight;       /* create or rename answers not seen yet */
    void (*done)(void *);
    void *done_ud;
};

static void set_state(dk_beacon_t *b, dkb_state_t to)
{
    b->state = (dkb_state_t)fsm_step(&dkb_fsm, (int)b->state, (int)to, "docker");
}

static void on_closed(uv_handle_t *h)
{
    dk_beacon_t *b = h->data;
    void (*done)(void *) = b->done;
    void *ud = b->done_ud;
    free(b);
    if (done)
        done(ud);
}

/* Stopping and nothing in flight any more: close. */
static void maybe_close(dk_beacon_t *b)
{
    if (b->state != DKB_REMOVING || b->in_flight > 0)
        return;
    set_state(b, DKB_CLOSED);
    uv_close((uv_handle_t *)&b->timer, on_closed);
}

static void name(const dk_beacon_t *b, unsigned long n, char *out, size_t len)
{
    snprintf(out, len, "dblease-%s-beacon-%lu", dk_self(b->dk)->id, n);
}

static void on_renamed(void *ud, long status, json_object *body, const char *err)
{
    dk_beacon_t *b = ud;
    b->in_flight--;
    if (status != 204 && status != 200 && status != -ECANCELED) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        log_warn("docker", "heartbeat (renaming the beacon container): %s", why);
    }
    maybe_close(b);
}

static void on_created(void *ud, long status, json_object *body, const char *err)
{
    dk_beacon_t *b = ud;
    b->in_flight--;
    json_object *id;
    if (status == 201 && body && json_object_object_get_ex(body, "Id", &id)) {
        snprintf(b->id, sizeof b->id, "%s", json_object_get_string(id));
        if (b->state == DKB_CREATING)
            set_state(b, DKB_BEATING);
    } else if (status != -ECANCELED) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        log_warn("docker", "no beacon container from %s (%s): daemons on other hosts will not "
                           "reap ours if we die; retrying",
                 b->image, why);
    }
    maybe_close(b);
}

static void create(dk_beacon_t *b)
{
    json_object *labels = dkc_labels(b->dk, "beacon");
    char beat[16], n[300], p[400];
    snprintf(beat, sizeof beat, "%d", b->beat_s);
    json_object_object_add(labels, "dblease.beat_s", json_object_new_string(beat));
    json_object *body = json_object_new_object(), *cmd = json_object_new_array();
    json_object_array_add(cmd, json_object_new_string("true")); /* never started */
    json_object_object_add(body, "Image", json_object_new_string(b->image));
    json_object_object_add(body, "Cmd", cmd);
    json_object_object_add(body, "Labels", labels);
    name(b, b->n, n, sizeof n);
    snprintf(p, sizeof p, "%s/containers/create?name=%s", dk_api(b->dk), n);
    if (dk_request(b->dk, "POST", p, body, API_TIMEOUT_MS, on_created, b) == 0)
        b->in_flight++;
    json_object_put(body);
}

static void on_beat(uv_timer_t *t)
{
    dk_beacon_t *b = t->data;
    if (b->in_flight > 0)
        return; /* the engine is slow: the next beat */
    if (b->state == DKB_CREATING) {
        create(b);
        return;
    }
    char n[300], p[600];
    name(b, ++b->n, n, sizeof n);
    snprintf(p, sizeof p, "%s/containers/%s/rename?name=%s", dk_api(b->dk), b->id, n);
    if (dk_request(b->dk, "POST", p, NULL, API_TIMEOUT_MS, on_renamed, b) == 0)
        b->in_flight++;
}

dk_beacon_t *dk_beacon_new(dk_t *dk, uv_loop_t *loop, const char *image, int beat_s)
{
    dk_beacon_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->dk = dk;
    b->beat_s = beat_s;
    b->state = DKB_CREATING;
    snprintf(b->image, sizeof b->image, "%s", image);
    uv_timer_init(loop, &b->timer);
    b->timer.data = b;
    uv_timer_start(&b->timer, on_beat, 0, (uint64_t)beat_s * 1000);
    uv_unref((uv_handle_t *)&b->timer);
    return b;
}

static void on_removed(void *ud, long status, json_object *body, const char *err)
{
    dk_beacon_t *b = ud;
    b->in_flight--;
    if (status != 204 && status != 404) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        log_warn("docker", "removing the beacon container %.12s: %s", b->id, why);
    }
    maybe_close(b);
}

void dk_beacon_stop(dk_beacon_t *b, void (*done)(void *ud), void *ud)
{
    b->done = done;
    b->done_ud = ud;
    uv_timer_stop(&b->timer);
    bool made = b->state == DKB_BEATING;
    set_state(b, DKB_REMOVING);
    if (made) {
        char p[400];
        snprintf(p, sizeof p, "%s/containers/%s?force=true", dk_api(b->dk), b->id);
        if (dk_request(b->dk, "DELETE", p, NULL, STOP_TIMEOUT_MS, on_removed, b) == 0)
            b->in_flight++;
    }
    maybe_close(b);
}
