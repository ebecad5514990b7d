#include "tpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inst.h"
#include "fsm.h"
#include "log.h"
#include "pg_engine.h"
#include "rd_slots.h"
#include "tpl_build.h"
#include "util.h"

static const char *const state_names[TPL__COUNT] = {
    [TPL_SCANNING] = "scanning", [TPL_PENDING] = "pending", [TPL_BUILDING] = "building",
    [TPL_READY] = "ready",       [TPL_FAILED] = "failed",   [TPL_RETIRING] = "retiring",
};

static const unsigned allowed[TPL__COUNT] = {
    [TPL_SCANNING] = FSM_TO(TPL_PENDING) | FSM_TO(TPL_FAILED) | FSM_TO(TPL_RETIRING),
    [TPL_PENDING] = FSM_TO(TPL_BUILDING) | FSM_TO(TPL_READY) | FSM_TO(TPL_RETIRING),
    [TPL_BUILDING] =
        FSM_TO(TPL_READY) | FSM_TO(TPL_FAILED) | FSM_TO(TPL_PENDING) | FSM_TO(TPL_RETIRING),
    [TPL_READY] = FSM_TO(TPL_PENDING) | FSM_TO(TPL_RETIRING),
    [TPL_FAILED] = FSM_TO(TPL_PENDING) | FSM_TO(TPL_BUILDING) | FSM_TO(TPL_RETIRING),
    [TPL_RETIRING] = 0,
};

static const fsm_def_t tpl_fsm = {"tpl", TPL__COUNT, state_names, allowed};

/* One read of a sql_dir. The template may go while it runs: then t is
 * NULL and the result is dropped. */
typedef struct tpl_scan {
    uv_work_t req;
    tpl_t *t;
    char dir[CFG_PATH];
    int major;
    bool stale; /* sql_dir changed while it was read: read again */
    int rc;     /* the result, written on the worker thread */
    char hash[65];
    char **files, **texts;
    int nfiles;
    char err[768];
} tpl_scan_t;

const char *tpl_state_name(tpl_state_t s)
{
    return fsm_name(&tpl_fsm, (int)s);
}

static void notify_waiters(tpl_t *t)
{
    while (!list_empty(&t->waiters)) {
        tpl_waiter_t *w = list_entry(list_first(&t->waiters), tpl_waiter_t, node);
        tpl_cancel_wait(w);
        w->cb(w, t);
    }
}

/* t's own databases (template, shared) that exist now: counted against
 * max_databases with the pools' slots, so pools make room for them. */
static void hold_dbs(tpl_t *t, int n)
{
    t->d->limits.total += n - t->dbs_held;
    t->dbs_held = n;
}

static void move_waiters(pool_t *from, pool_t *to);
static void settle_waiters(tpl_t *to);

/* The newest live version of t's name older than t, or NULL. */
static tpl_t *older_version(tpl_t *t)
{
    tpl_t *prev = NULL;
    list_node_t *it, *tmp;
    list_for_each(&t->d->templates, it, tmp)
    {
        tpl_t *o = list_entry(it, tpl_t, node);
        if (o == t)
            break;
        if (o->state != TPL_RETIRING && strcmp(o->name, t->name) == 0 &&
            strcmp(o->kind, t->kind) == 0)
            prev = o;
    }
    return prev;
}

/* A client version is finalized: it replaces the versions before it only
 * now, so a new hash that is still being migrated (or never is) takes
 * nothing away from those leasing the old one. */
static void client_version_ready(tpl_t *t)
{
    tpl_t *prev = older_version(t);
    if (!prev)
        return;
    log_info("tpl", "template %s: version %.12s is ready and replaces %.12s", t->name, t->hash,
             prev->hash);
    move_waiters(prev->pool, t->pool);
    tpl_retire(prev);
    settle_waiters(t);
}

void tpl_set_state(tpl_t *t, tpl_state_t to)
{
    char who[96];
    snprintf(who, sizeof who, "template %s (%.12s)", t->name, t->hash);
    t->state = (tpl_state_t)fsm_step(&tpl_fsm, (int)t->state, (int)to, who);
    uint64_t now = util_now_ms();
    if (to == TPL_BUILDING) /* created by the build or claim now starting */
        hold_dbs(t, (t->source != TPL_BUILTIN) + t->schema);
    else if (to == TPL_PENDING) /* dropped (abandoned), or gone with the server */
        hold_dbs(t, 0);
    switch (to) {
    case TPL_READY:
        pool_set_up(t->pool, true, now);
        if (t->source == TPL_CLIENT)
            client_version_ready(t);
        break;
    case TPL_FAILED:
        pool_set_up(t->pool, false, now);
        pool_fail_waiters(t->pool);
        break;
    case TPL_RETIRING:
        t->pool->retiring = true;
        pool_set_up(t->pool, false, now);
        pool_fail_waiters(t->pool);
        pool_drain(t->pool, now);
        break;
    default:
        pool_set_up(t->pool, false, now);
        break;
    }
    if (to == TPL_READY || to == TPL_FAILED || to == TPL_RETIRING)
        notify_waiters(t);
}

/* Each waiter once: one takes the claim, the others wait again. */
static void offer_waiters(tpl_t *t)
{
    for (size_t n = t->waiters.count; n > 0 && t->state == TPL_PENDING && !t->claimer; n--) {
        tpl_waiter_t *w = list_entry(list_first(&t->waiters), tpl_waiter_t, node);
        tpl_cancel_wait(w);
        w->cb(w, t);
    }
}

void tpl_offer_claim(tpl_t *t)
{
    offer_waiters(t);
    if (t->state == TPL_PENDING && !t->claimer && t->pool->waiters.count > 0) {
        /* Nobody migrates it now: leases waiting for it are answered. */
        snprintf(t->error, sizeof t->error,
                 "its migration was abandoned; run `dblease template migrate` or "
                 "template.ensure, then lease again");
        pool_fail_waiters(t->pool);
    }
}

void tpl_wait(tpl_t *t, tpl_waiter_t *w, tpl_wait_cb cb, void *ud)
{
    w->t = t;
    w->cb = cb;
    w->ud = ud;
    list_append(&t->waiters, &w->node);
}

void tpl_cancel_wait(tpl_waiter_t *w)
{
    if (!w->t)
        return;
    list_remove(&w->t->waiters, &w->node);
    w->t = NULL;
}


static void free_files(tpl_t *t)
{
    tpl_free_strv(t->files, t->nfiles);
    tpl_free_strv(t->texts, t->nfiles);
    t->files = t->texts = NULL;
    t->nfiles = 0;
}

static const slot_ops_t *ops_for(const char *kind, const char *isolation)
{
    if (strcmp(kind, "redis") == 0)
        return strcmp(isolation, "db") == 0 ? &rd_db_slot_ops : &rd_instance_slot_ops;
    return strcmp(isolation, "schema") == 0 ? &pg_schema_slot_ops : &pg_slot_ops;
}

static tpl_t *tpl_new(dbld_t *d, const char *kind, const char *name, const char *hash,
                      tpl_source_t source, const char *isolation, int min_ready, int max_total,
                      tpl_state_t initial)
{
    bool schema = strcmp(isolation, "schema") == 0;
    static int next_id;
    tpl_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->d = d;
    t->id = next_id++;
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->hash, sizeof t->hash, "%s", hash);
    t->source = source;
    t->state = initial;
    t->schema = schema;
    snprintf(t->kind, sizeof t->kind, "%s", kind);
    list_init(&t->waiters);
    if (source == TPL_BUILTIN) {
        snprintf(t->dbname, sizeof t->dbname, "template0");
    } else {
        snprintf(t->dbname, sizeof t->dbname, "%st%d", d->cfg.postgres.name_prefix, t->id);
        /* Named like its database: pg_hba's "sameuser" admits a migrator
         * to that one database and no other. */
        snprintf(t->owner, sizeof t->owner, "%s", t->dbname);
    }
    if (schema)
        snprintf(t->shared_db, sizeof t->shared_db, "%ss%d", d->cfg.postgres.name_prefix, t->id);
    char prefix[32];
    snprintf(prefix, sizeof prefix, "%s%d_", strcmp(kind, "redis") == 0 ? "rd_" : d->cfg.postgres.name_prefix,
             t->id);
    t->pool = pool_new(&d->limits, kind, name, prefix, min_ready, max_total,
                       ops_for(kind, isolation), t);
    if (!t->pool) {
        free(t);
        return NULL;
    }
    t->last_used_ms = util_now_ms();
    list_append(&d->templates, &t->node);
    return t;
}

static void tpl_free(tpl_t *t)
{
    if (t->scan)
        t->scan->t = NULL; /* its result is dropped when it comes */
    tpl_build_abort(t, "the template was dropped; call template.ensure again");
    tpl_shared_close(t);
    rd_free(t);
    /* Waiters hear that it is gone (RETIRING), never wait on it again. The
     * pool goes with it, so none of tpl_set_state's pool work. */
    if (t->state != TPL_RETIRING)
        t->state = (tpl_state_t)fsm_step(&tpl_fsm, (int)t->state, TPL_RETIRING, t->name);
    notify_waiters(t);
    hold_dbs(t, 0);
    list_remove(&t->d->templates, &t->node);
    pool_free(t->pool);
    free_files(t);
    free(t);
}

tpl_t *tpl_newest(dbld_t *d, const char *kind, const char *name)
{
    tpl_t *best = NULL;
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (t->state != TPL_RETIRING && strcmp(t->name, name) == 0 && strcmp(t->kind, kind) == 0)
            best = t; /* the list is oldest first: the last match is newest */
    }
    return best;
}

tpl_t *tpl_current(dbld_t *d, const char *kind, const char *name)
{
    tpl_t *best = tpl_newest(d, kind, name);
    if (!best || best->source != TPL_CLIENT || best->state == TPL_READY)
        return best;
    /* A client version not finalized yet: the last finalized one serves. */
    tpl_t *ready = NULL;
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (t->state == TPL_READY && strcmp(t->name, name) == 0 && strcmp(t->kind, kind) == 0)
            ready = t;
    }
    return ready ? ready : best;
}

/* ---- reading sql_dir off the loop thread ------------------------------ */

static void scan_work(uv_work_t *req)
{
    tpl_scan_t *sc = req->data;
    sc->rc = tpl_hash_dir(sc->dir, sc->major, sc->hash, &sc->files, &sc->texts, &sc->nfiles,
                          sc->err, sizeof sc->err);
}

static void scan_free(tpl_scan_t *sc)
{
    tpl_free_strv(sc->files, sc->nfiles);
    tpl_free_strv(sc->texts, sc->nfiles);
    free(sc);
}

/* Leases waiting on from wait on to instead. */
static void move_waiters(pool_t *from, pool_t *to)
{
    while (!list_empty(&from->waiters)) {
        pool_waiter_t *w = list_entry(list_first(&from->waiters), pool_waiter_t, node);
        pool_cancel_wait(w);
        pool_wait(to, w, w->cb, w->ud);
    }
}

/* Waiters moved to a settled version: served at once from what it has
 * ready, or failed if it failed. */
static void settle_waiters(tpl_t *to)
{
    pool_t *p = to->pool;
    if (to->state == TPL_FAILED || to->state == TPL_RETIRING) {
        pool_fail_waiters(p);
        return;
    }
    slot_t *slot;
    while (!list_empty(&p->waiters) && (slot = pool_take(p))) {
        pool_waiter_t *w = list_entry(list_first(&p->waiters), pool_waiter_t, node);
        pool_cancel_wait(w);
        w->cb(w, slot);
    }
    pool_refill(p, util_now_ms());
}

/* The version t replaces: the newest other one of its name not retiring. */
static tpl_t *previous_version(tpl_t *t)
{
    tpl_t *prev = NULL;
    list_node_t *it, *tmp;
    list_for_each(&t->d->templates, it, tmp)
    {
        tpl_t *o = list_entry(it, tpl_t, node);
        if (o != t && o->state != TPL_RETIRING && strcmp(o->name, t->name) == 0 &&
            strcmp(o->kind, t->kind) == 0)
            prev = o;
    }
    return prev;
}

/* t becomes the version new leases come from; prev's waiters move to it. */
static void supersede(tpl_t *prev, tpl_t *t)
{
    if (!prev)
        return;
    log_info("tpl", "template %s changed (%.12s -> %.12s)", t->name, prev->hash, t->hash);
    move_waiters(prev->pool, t->pool);
    tpl_retire(prev);
}

/* The files are as prev had them: t was a look, not a version. */
static void discard(tpl_t *t, tpl_t *prev)
{
    /* t was made from the configuration as it is now (a reload resized
     * it): its sizes stay. */
    prev->pool->min_ready = t->pool->min_ready;
    prev->pool->max_total = t->pool->max_total;
    move_waiters(t->pool, prev->pool);
    tpl_free(t); /* first: a failed waiter's reply names the current version's error */
    settle_waiters(prev);
}

static void start_scan(tpl_t *t);

static void scan_done(uv_work_t *req, int status)
{
    tpl_scan_t *sc = req->data;
    tpl_t *t = sc->t;
    if (!t || t->state != TPL_SCANNING) { /* gone or retired meanwhile */
        if (t)
            t->scan = NULL;
        scan_free(sc);
        return;
    }
    t->scan = NULL;
    if (sc->stale) { /* changed while read: read it again */
        scan_free(sc);
        start_scan(t);
        return;
    }
    if (status < 0 && sc->rc == 0) {
        sc->rc = -1;
        snprintf(sc->err, sizeof sc->err, "reading sql_dir %.600s: %s", sc->dir,
                 uv_strerror(status));
    }
    tpl_t *prev = previous_version(t);
    if (sc->rc < 0 ? prev && prev->state == TPL_FAILED && strcmp(prev->error, sc->err) == 0
                   : prev && strcmp(prev->hash, sc->hash) == 0) {
        scan_free(sc);
        discard(t, prev);
        return;
    }
    if (sc->rc < 0) {
        log_error("tpl", "template %s: %s", t->name, sc->err);
        snprintf(t->hash, sizeof t->hash, "unreadable");
        snprintf(t->error, sizeof t->error, "%s", sc->err);
        scan_free(sc);
        supersede(prev, t);
        tpl_set_state(t, TPL_FAILED);
        return;
    }
    snprintf(t->hash, sizeof t->hash, "%s", sc->hash);
    t->files = sc->files;
    t->texts = sc->texts;
    t->nfiles = sc->nfiles;
    sc->files = sc->texts = NULL;
    scan_free(sc);
    supersede(prev, t);
    tpl_set_state(t, TPL_PENDING);
    if (t->d->pg->state == INST_RUNNING)
        tpl_build_start(t);
}

static void start_scan(tpl_t *t)
{
    tpl_scan_t *sc = calloc(1, sizeof *sc);
    if (sc) {
        sc->t = t;
        sc->req.data = sc;
        snprintf(sc->dir, sizeof sc->dir, "%s", t->sql_dir);
        sc->major = t->d->pg->major;
    }
    if (!sc || uv_queue_work(t->d->loop, &sc->req, scan_work, scan_done) < 0) {
        free(sc);
        snprintf(t->error, sizeof t->error,
                 "cannot read sql_dir %.600s now (out of resources); "
                 "send SIGHUP to retry",
                 t->sql_dir);
        snprintf(t->hash, sizeof t->hash, "unreadable");
        tpl_set_state(t, TPL_FAILED);
        return;
    }
    t->scan = sc;
}

/* Look at a config template's files again: a new version in SCANNING,
 * which becomes the current one if they changed, or goes if not. */
static void refresh_config_template(dbld_t *d, const tpl_cfg_t *tc)
{
    tpl_t *cur = tpl_current(d, "postgres", tc->name);
    if (cur && cur->state == TPL_SCANNING) {
        cur->scan->stale = true; /* one read at a time; the next one follows */
        return;
    }
    if (!tc->sql_dir[0])
        return; /* no files: it sizes a client template of that name */
    tpl_t *t = tpl_new(d, "postgres", tc->name, "", TPL_CONFIG, tc->k.isolation, tc->k.min_ready,
                       tc->k.max_total, tc->sql_dir[0] ? TPL_SCANNING : TPL_PENDING);
    if (!t)
        return;
    snprintf(t->sql_dir, sizeof t->sql_dir, "%s", tc->sql_dir);
    if (t->state == TPL_SCANNING) {
        start_scan(t);
        return;
    }
    supersede(cur, t);
    if (d->pg->state == INST_RUNNING)
        tpl_build_start(t);
}

int tpl_setup(dbld_t *d, char *err, size_t errlen)
{
    const kind_cfg_t *pg = &d->cfg.postgres, *rd = &d->cfg.redis;
    if (!tpl_new(d, "postgres", "default", "", TPL_BUILTIN, pg->isolation, pg->min_ready,
                 pg->max_total, TPL_PENDING)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (d->redis_bin[0]) {
        /* Cold until the first redis lease: no servers for those who never
         * use Redis. */
        tpl_t *r = tpl_new(d, "redis", "default", "", TPL_BUILTIN, rd->isolation, rd->min_ready,
                           rd->max_total, TPL_PENDING);
        if (!r) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        r->pool->cold = true; /* its engine: dbld_redis_setup() */
    }
    for (int i = 0; i < d->cfg.n_templates; i++)
        refresh_config_template(d, &d->cfg.templates[i]);
    return 0;
}

const tpl_cfg_t *tpl_client_cfg(const config_t *cfg, const char *name)
{
    for (int i = 0; i < cfg->n_templates; i++)
        if (!cfg->templates[i].sql_dir[0] && strcmp(cfg->templates[i].name, name) == 0)
            return &cfg->templates[i];
    return NULL;
}

bool tpl_config_owns(const config_t *cfg, const char *name)
{
    if (strcmp(name, "default") == 0)
        return true;
    for (int i = 0; i < cfg->n_templates; i++)
        if (cfg->templates[i].sql_dir[0] && strcmp(cfg->templates[i].name, name) == 0)
            return true;
    return false;
}

/* A client template's pool sizes: its [template.NAME] section's, else
 * [postgres]'s. */
static const kind_cfg_t *client_sizes(const config_t *cfg, const char *name)
{
    const tpl_cfg_t *tc = tpl_client_cfg(cfg, name);
    return tc ? &tc->k : &cfg->postgres;
}

tpl_t *tpl_client_find(dbld_t *d, const char *name, const char *hash)
{
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (t->state != TPL_RETIRING && t->source == TPL_CLIENT && strcmp(t->name, name) == 0 &&
            strcmp(t->hash, hash) == 0)
            return t;
    }
    return NULL;
}

tpl_t *tpl_client(dbld_t *d, const char *name, const char *hash, uid_t uid)
{
    tpl_t *t = tpl_client_find(d, name, hash);
    if (t)
        return t;
    tpl_t *named = tpl_newest(d, "postgres", name);
    const kind_cfg_t *k = client_sizes(&d->cfg, name);
    t = tpl_new(d, "postgres", name, hash, TPL_CLIENT, "database", k->min_ready, k->max_total,
                TPL_PENDING);
    if (t)
        t->owner_uid = named ? named->owner_uid : uid;
    return t;
}

void tpl_client_resize(dbld_t *d)
{
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (t->source != TPL_CLIENT || t->state == TPL_RETIRING)
            continue;
        const kind_cfg_t *k = client_sizes(&d->cfg, t->name);
        if (t->pool->min_ready != k->min_ready || t->pool->max_total != k->max_total)
            log_info("tpl", "client template %s: min_ready %d -> %d, max_total %d -> %d",
                     t->name, t->pool->min_ready, k->min_ready, t->pool->max_total,
                     k->max_total);
        t->pool->min_ready = k->min_ready;
        t->pool->max_total = k->max_total;
    }
}

void tpl_instance_up(dbld_t *d)
{
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (strcmp(t->kind, "postgres") != 0)
            continue;
        if (t->source == TPL_BUILTIN && !t->schema) {
            if (t->state == TPL_PENDING) /* template0: nothing to build */
                tpl_set_state(t, TPL_READY);
        } else if (t->state == TPL_PENDING && t->source != TPL_CLIENT)
            tpl_build_start(t);
        else if (t->state == TPL_PENDING)
            tpl_offer_claim(t); /* its callers waited for the server */
    }
}

void tpl_instance_down(dbld_t *d)
{
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (strcmp(t->kind, "postgres") != 0)
            continue;
        tpl_build_abort(t, "the server went away; call template.ensure again");
        tpl_shared_close(t);
        hold_dbs(t, 0); /* they went with the server */
        if (t->source == TPL_CLIENT && t->state != TPL_RETIRING) {
            /* Its template database died with the server; the client
             * migrates again through template.ensure. */
            snprintf(t->error, sizeof t->error, "the server restarted; call template.ensure again");
            tpl_retire(t);
        } else if (t->state == TPL_READY || t->state == TPL_BUILDING) {
            tpl_set_state(t, TPL_PENDING);
        }
    }
}

void tpl_instance_stopped(dbld_t *d)
{
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (strcmp(t->kind, "postgres") == 0)
            hold_dbs(t, 0); /* its data went with the server */
    }
}

void tpl_rescan(dbld_t *d)
{
    for (int i = 0; i < d->cfg.n_templates; i++)
        refresh_config_template(d, &d->cfg.templates[i]);
}

static void retire_one(tpl_t *t)
{
    if (t->state == TPL_RETIRING)
        return;
    /* A build in flight would otherwise finish it. */
    tpl_build_abort(t, "a newer version of the template replaced it, or it was dropped");
    tpl_set_state(t, TPL_RETIRING);
}

void tpl_retire(tpl_t *t)
{
    /* Older live versions of the name go too: while a new version's files
     * are read (SCANNING), the one before it still serves. */
    list_node_t *it, *tmp;
    list_for_each(&t->d->templates, it, tmp)
    {
        tpl_t *o = list_entry(it, tpl_t, node);
        if (o == t)
            break;
        if (strcmp(o->name, t->name) == 0 && strcmp(o->kind, t->kind) == 0)
            retire_one(o);
    }
    retire_one(t);
}

/* Make room under the global cap by dropping the ready databases of the
 * least recently used template with nobody waiting (which then keeps none
 * ready until it is used again). */
static void evict_lru(dbld_t *d)
{
    tpl_t *victim = NULL;
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (pool_count(t->pool, SLOT_READY) > 0 && t->pool->waiters.count == 0 &&
            (!victim || t->last_used_ms < victim->last_used_ms))
            victim = t;
    }
    if (!victim)
        return;
    log_info("tpl", "at max_databases (%d): evicting %zu ready databases of template %s, the "
                    "least recently used",
             d->limits.max, pool_count(victim->pool, SLOT_READY), victim->name);
    victim->pool->cold = true;
    pool_drain(victim->pool, util_now_ms());
}

bool tpl_reserve_db(tpl_t *t)
{
    dbld_t *d = t->d;
    /* Counted from now on, so refilling pools cannot take the room that
     * evicting makes: the claim gets it first. */
    if (t->dbs_held == 0)
        hold_dbs(t, 1);
    if (d->limits.total <= d->limits.max)
        return true;
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        if (pool_count(list_entry(it, tpl_t, node)->pool, SLOT_DROPPING) > 0)
            return false; /* room is being made: one eviction at a time */
    }
    evict_lru(d);
    return false;
}

/* The global cap keeps a pool with waiters from growing: make room. */
static void evict_for_waiters(dbld_t *d)
{
    if (d->limits.total < d->limits.max)
        return;
    bool starved = false;
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        pool_t *p = list_entry(it, tpl_t, node)->pool;
        /* A pool that is down (its template being read or built) could not
         * use the room. */
        starved |= p->up && p->waiters.count > 0 && pool_count(p, SLOT_CREATING) == 0 &&
                   pool_total(p) < p->max_total;
    }
    if (starved)
        evict_lru(d);
}

/* Is anyone using client template t: a lease, a claim, a waiter? */
static bool client_busy(const tpl_t *t)
{
    return t->claimer || t->build || !list_empty(&t->waiters) || t->pool->waiters.count > 0 ||
           pool_count(t->pool, SLOT_LEASED) > 0 || pool_count(t->pool, SLOT_ROTATING) > 0;
}

/* Client templates nobody used for client_template_idle_s retire, so
 * their databases (template and ready clones) are freed. Those waiting
 * for room under max_databases to claim one are offered it again. */
static void client_janitor(dbld_t *d)
{
    uint64_t now = util_now_ms(), idle_ms = (uint64_t)d->cfg.client_template_idle_s * 1000;
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (t->source != TPL_CLIENT || t->state == TPL_RETIRING)
            continue;
        if (t->state == TPL_PENDING && !t->claimer && !list_empty(&t->waiters) &&
            d->pg->state == INST_RUNNING)
            offer_waiters(t); /* they wait for room (tpl_reserve_db) */
        if (t->state == TPL_PENDING && list_empty(&t->waiters))
            hold_dbs(t, 0); /* nobody waits to claim it any more */
        if (client_busy(t)) {
            t->last_used_ms = now;
            continue;
        }
        if (idle_ms == 0 || now - t->last_used_ms < idle_ms)
            continue;
        log_info("tpl", "client template %s (%.12s) unused for %d s: retiring it",
                 t->name, t->hash, d->cfg.client_template_idle_s);
        snprintf(t->error, sizeof t->error,
                 "it was unused for %d s (client_template_idle_s) and was dropped; run "
                 "`dblease template migrate` again",
                 d->cfg.client_template_idle_s);
        retire_one(t);
    }
}

void tpl_janitor(dbld_t *d)
{
    evict_for_waiters(d);
    client_janitor(d);
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        /* A retiring version's only build is its drop. */
        if (t->state != TPL_RETIRING || pool_total(t->pool) != 0 || t->build)
            continue;
        if (strcmp(t->kind, "postgres") != 0 || d->pg->state != INST_RUNNING ||
            tpl_build_drop(t) < 0)
            tpl_free(t); /* its databases went with the server */
    }
}

bool tpl_wait_reason(const tpl_t *t, char *buf, size_t n)
{
    if (strcmp(t->kind, "postgres") != 0)
        return false; /* redis servers are per pool: their pool reports */
    if (t->d->pg->state != INST_RUNNING) {
        snprintf(buf, n, "the PostgreSQL server is not running yet (%s); retry shortly",
                 inst_state_name(t->d->pg->state));
        return true;
    }
    if (t->state == TPL_BUILDING && t->source == TPL_CLIENT && t->claimer) {
        snprintf(buf, n,
                 "template %s (%.12s) is still being migrated by a client (uid %u, pid %d); "
                 "leases wait until it is finalized: raise wait_ms, or check that migration",
                 t->name, t->hash, (unsigned)t->claimer_uid, (int)t->claimer_pid);
        return true;
    }
    if (t->state == TPL_SCANNING || t->state == TPL_BUILDING || t->state == TPL_PENDING) {
        snprintf(buf, n, "template %s is still %s; raise wait_ms, or see `dblease status`",
                 t->name, tpl_state_name(t->state));
        return true;
    }
    return false;
}

void tpl_dropped(tpl_t *t)
{
    tpl_free(t);
}

void tpl_free_all(dbld_t *d)
{
    while (!list_empty(&d->templates)) {
        tpl_t *t = list_entry(list_first(&d->templates), tpl_t, node);
        tpl_free(t);
    }
}

const char *tpl_isolation(const tpl_t *t)
{
    if (strcmp(t->kind, "redis") == 0)
        return t->pool->ops == &rd_db_slot_ops ? "db" : "instance";
    return t->schema ? "schema" : "database";
}

json_object *tpl_status_json(const tpl_t *t)
{
    static const char *const sources[] = {"builtin", "config", "client"};
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(t->name));
    json_object_object_add(o, "hash", json_object_new_string(t->hash));
    json_object_object_add(o, "state", json_object_new_string(tpl_state_name(t->state)));
    json_object_object_add(o, "source", json_object_new_string(sources[t->source]));
    json_object_object_add(o, "kind", json_object_new_string(t->kind));
    json_object_object_add(o, "isolation", json_object_new_string(tpl_isolation(t)));
    json_object_object_add(o, "dbname", json_object_new_string(t->dbname));
    if (t->state == TPL_FAILED && t->error[0])
        json_object_object_add(o, "error", json_object_new_string(t->error));
    return o;
}
