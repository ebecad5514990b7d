#include "inst.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsm.h"
#include "log.h"
#include "pg_engine.h"
#include "rt_docker.h"
#include "rt_external.h"
#include "rt_process.h"
#include "util.h"

#define RESTART_MIN_MS 500
#define RESTART_MAX_MS 30000

static const char *const state_names[INST__COUNT] = {
    [INST_STARTING] = "starting", [INST_RUNNING] = "running", [INST_STOPPING] = "stopping",
    [INST_STOPPED] = "stopped",   [INST_FAILED] = "failed",   [INST_CLOSED] = "closed",
};

static const unsigned allowed[INST__COUNT] = {
    [INST_STARTING] = FSM_TO(INST_RUNNING) | FSM_TO(INST_FAILED) | FSM_TO(INST_STOPPING),
    [INST_RUNNING] = FSM_TO(INST_FAILED) | FSM_TO(INST_STOPPING),
    [INST_STOPPING] = FSM_TO(INST_STOPPED),
    [INST_STOPPED] = FSM_TO(INST_STARTING) | FSM_TO(INST_CLOSED),
    [INST_FAILED] = FSM_TO(INST_STARTING) | FSM_TO(INST_STOPPING) | FSM_TO(INST_CLOSED),
};

static const fsm_def_t inst_fsm = {"inst", INST__COUNT, state_names, allowed};

static const char *const rt_names[RT__COUNT] = {
    [RT_IDLE] = "idle",       [RT_PREPARING] = "preparing", [RT_INITDB] = "initdb",
    [RT_COPYING] = "copying", [RT_SERVING] = "serving",     [RT_CLEANING] = "cleaning",
};

static const unsigned rt_allowed[RT__COUNT] = {
    [RT_IDLE] = FSM_TO(RT_PREPARING) | FSM_TO(RT_CLEANING), /* cleaning: stopped while down */
    [RT_PREPARING] = FSM_TO(RT_INITDB) | FSM_TO(RT_COPYING) | FSM_TO(RT_SERVING) |
                     FSM_TO(RT_CLEANING) | FSM_TO(RT_IDLE),
    [RT_INITDB] = FSM_TO(RT_PREPARING) | FSM_TO(RT_CLEANING),
    [RT_COPYING] = FSM_TO(RT_SERVING) | FSM_TO(RT_CLEANING),
    [RT_SERVING] = FSM_TO(RT_CLEANING) | FSM_TO(RT_IDLE),
    [RT_CLEANING] = FSM_TO(RT_IDLE),
};

static const fsm_def_t rt_fsm = {"runtime", RT__COUNT, rt_names, rt_allowed};

const char *inst_state_name(inst_state_t s)
{
    return fsm_name(&inst_fsm, (int)s);
}

void inst_set_state(inst_t *i, inst_state_t to)
{
    i->state = (inst_state_t)fsm_step(&inst_fsm, (int)i->state, (int)to, i->name);
}

void inst_rt_set(inst_t *i, inst_rt_t to)
{
    i->rt = (inst_rt_t)fsm_step(&rt_fsm, (int)i->rt, (int)to, i->name);
}

/* Stop (force: kill) the server through its runtime. */
static void inst_kill(inst_t *i, bool force)
{
    if (i->docker)
        rt_dk_stop(i);
    else if (!i->external)
        rt_pg_stop(i, force);
}

static void on_timer_closed(uv_handle_t *h)
{
    inst_t *i = h->data;
    if (--i->open_handles == 0)
        free(i);
}

/* ---- health: a server that died is noticed by its exit; one that hangs
 * (stopped, deadlocked) by the engine's probe (pg_health.c). */

static void on_health(uv_timer_t *t)
{
    inst_t *i = t->data;
    if (i->state == INST_RUNNING)
        pg_health_tick(i);
}

void inst_hung(inst_t *i, const char *msg)
{
    if (i->state != INST_RUNNING)
        return;
    if (i->external) {
        inst_lost(i, msg);
        return;
    }
    snprintf(i->last_error, sizeof i->last_error, "%s; killed it", msg);
    log_error("inst", "%s: %s", i->name, i->last_error);
    uv_timer_stop(&i->health); /* one verdict: the dying server is not probed again */
    inst_kill(i, true); /* its exit takes the usual path: leases told, restart */
}

inst_t *inst_new(dbld_t *d, const char *bindir, int major, const inst_events_t *ev)
{
    static int next_id = 1;
    inst_t *i = calloc(1, sizeof *i);
    if (!i)
        return NULL;
    i->d = d;
    i->ev = *ev;
    i->id = next_id++;
    snprintf(i->name, sizeof i->name, "pg-%d", i->id);
    i->kind = "postgres";
    i->external = strcmp(d->cfg.postgres.runtime, "external") == 0;
    i->docker = strcmp(d->cfg.postgres.runtime, "docker") == 0;
    i->runtime = d->cfg.postgres.runtime;
    snprintf(i->bindir, sizeof i->bindir, "%s", bindir);
    i->major = major;
    i->state = INST_STOPPED;
    uv_timer_init(d->loop, &i->timer);
    i->timer.data = i;
    uv_timer_init(d->loop, &i->health);
    i->health.data = i;
    i->open_handles = 2;
    return i;
}

void inst_start(inst_t *i)
{
    inst_set_state(i, INST_STARTING);
    i->last_error[0] = '\0';
    i->deadline_ms = util_now_ms() + (uint64_t)i->d->cfg.postgres.start_timeout_s * 1000u;
    if (i->external)
        rt_ext_start(i);
    else if (i->docker)
        rt_dk_start(i);
    else
        rt_pg_start(i);
}

static void restart_cb(uv_timer_t *t)
{
    inst_t *i = t->data;
    if (i->state == INST_FAILED && !dbld_stopping(i->d)) {
        log_info("inst", "%s: restarting (attempt %d)", i->name, i->restarts);
        inst_start(i);
    }
}

/* Called whenever the runtime goes idle: finish a stop, or plan a restart. */
void inst_settle(inst_t *i)
{
    if (i->rt != RT_IDLE)
        return;
    if (i->state == INST_STOPPING) {
        uv_timer_stop(&i->timer);
        inst_set_state(i, INST_STOPPED);
        i->ev.stopped(i->ev.ud, i);
    } else if (i->state == INST_FAILED && !dbld_stopping(i->d)) {
        uint64_t delay = RESTART_MIN_MS << (i->restarts < 6 ? i->restarts : 6);
        if (delay > RESTART_MAX_MS)
            delay = RESTART_MAX_MS;
        i->restarts++;
        uv_timer_start(&i->timer, restart_cb, delay, 0);
    }
}

/* Common path to FAILED: pools stop using it, leases hear about it. */
static void go_down(inst_t *i)
{
    bool was_running = i->state == INST_RUNNING;
    i->d->counters.instance_restarts++;
    inst_set_state(i, INST_FAILED);
    uv_timer_stop(&i->timer);
    uv_timer_stop(&i->health);
    if (was_running)
        i->ev.down(i->ev.ud, i);
    pg_engine_close(i);
}

void inst_start_failed(inst_t *i, const char *fmt, ...)
{
    if (i->state != INST_STARTING)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(i->last_error, sizeof i->last_error, fmt, ap);
    va_end(ap);
    log_error("inst", "%s: start failed: %s", i->name, i->last_error);
    go_down(i);
    inst_kill(i, true);
    inst_settle(i);
}

void inst_spawned(inst_t *i)
{
    pg_engine_probe(i);
}

void inst_ready(inst_t *i)
{
    if (i->state != INST_STARTING)
        return;
    inst_set_state(i, INST_RUNNING);
    i->restarts = 0;
    uint64_t every = (uint64_t)i->d->cfg.health_interval_ms;
    uv_timer_start(&i->health, on_health, every, every);
    log_info("inst", "%s: ready on %s:%d", i->name, i->host, i->port);
    i->ev.running(i->ev.ud, i);
}

void inst_exited(inst_t *i, int64_t status, int signal)
{
    if (i->state == INST_STARTING || i->state == INST_RUNNING) {
        snprintf(i->last_error, sizeof i->last_error,
                 "postgres exited unexpectedly (status %lld, signal %d)%s%.300s; see %.200s%s%.100s",
                 (long long)status, signal, i->evidence[0] ? ": " : "", i->evidence,
                 i->d->cfg.dead_logs_kept > 0 ? i->d->cfg.state_dir : i->dir,
                 i->d->cfg.dead_logs_kept > 0 ? "/logs/" : "/server.log",
                 i->d->cfg.dead_logs_kept > 0 ? i->kept_log : "");
        i->evidence[0] = '\0';
        log_error("inst", "%s: %s", i->name, i->last_error);
        go_down(i);
        inst_kill(i, true); /* stray backends of a dead postmaster, or its container */
    }
    inst_settle(i);
}

static void stop_deadline(uv_timer_t *t)
{
    inst_t *i = t->data;
    if (i->external) {
        log_warn("inst", "%s: could not drop our databases in time; giving up", i->name);
        pg_engine_close(i);
        inst_settle(i);
        return;
    }
    log_warn("inst", "%s: did not stop in time; killing it", i->name);
    inst_kill(i, true);
}

static void on_swept_for_stop(inst_t *i, int err, const char *msg)
{
    if (i->state != INST_STOPPING)
        return;
    if (err)
        log_warn("inst", "%s: dropping our databases: %s", i->name, msg);
    pg_engine_close(i);
    inst_settle(i);
}

void inst_lost(inst_t *i, const char *msg)
{
    if (i->state != INST_RUNNING && i->state != INST_STARTING)
        return;
    snprintf(i->last_error, sizeof i->last_error, "%s", msg);
    log_error("inst", "%s: %s", i->name, msg);
    go_down(i);
    inst_settle(i);
}

void inst_stop(inst_t *i)
{
    if (i->state == INST_STOPPED || i->state == INST_STOPPING) {
        if (i->state == INST_STOPPED)
            i->ev.stopped(i->ev.ud, i);
        return;
    }
    bool was_running = i->state == INST_RUNNING;
    inst_set_state(i, INST_STOPPING);
    uv_timer_stop(&i->timer);
    uv_timer_stop(&i->health);
    if (was_running)
        i->ev.down(i->ev.ud, i);
    uv_timer_start(&i->timer, stop_deadline, (uint64_t)i->d->cfg.shutdown_timeout_s * 1000u, 0);
    if (i->external && was_running) {
        /* The server stays; our databases and roles must not. */
        pg_drop_prefixed(i, on_swept_for_stop);
        return;
    }
    pg_engine_close(i);
    inst_kill(i, false);
    inst_settle(i);
}

void inst_free(inst_t *i)
{
    if (!i)
        return;
    inst_set_state(i, INST_CLOSED);
    pg_engine_close(i);
    uv_close((uv_handle_t *)&i->timer, on_timer_closed);
    uv_close((uv_handle_t *)&i->health, on_timer_closed);
}

json_object *inst_status_json(const inst_t *i)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(i->name));
    json_object_object_add(o, "kind", json_object_new_string(i->kind));
    json_object_object_add(o, "runtime", json_object_new_string(i->runtime));
    json_object_object_add(o, "state", json_object_new_string(inst_state_name(i->state)));
    json_object_object_add(o, "host", json_object_new_string(i->host));
    json_object_object_add(o, "port", json_object_new_int(i->port));
    json_object_object_add(o, "pid", json_object_new_int(i->pid));
    json_object_object_add(o, "version", json_object_new_int(i->major));
    if (i->last_error[0])
        json_object_object_add(o, "last_error", json_object_new_string(i->last_error));
    return o;
}
