#include "tpl.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
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
    [TPL_PENDING] = "pending", [TPL_BUILDING] = "building", [TPL_READY] = "ready",
    [TPL_FAILED] = "failed",   [TPL_RETIRING] = "retiring",
};

static const unsigned allowed[TPL__COUNT] = {
    [TPL_PENDING] = FSM_TO(TPL_BUILDING) | FSM_TO(TPL_READY) | FSM_TO(TPL_RETIRING),
    [TPL_BUILDING] =
        FSM_TO(TPL_READY) | FSM_TO(TPL_FAILED) | FSM_TO(TPL_PENDING) | FSM_TO(TPL_RETIRING),
    [TPL_READY] = FSM_TO(TPL_PENDING) | FSM_TO(TPL_RETIRING),
    [TPL_FAILED] = FSM_TO(TPL_PENDING) | FSM_TO(TPL_BUILDING) | FSM_TO(TPL_RETIRING),
    [TPL_RETIRING] = 0,
};

static const fsm_def_t tpl_fsm = {"tpl", TPL__COUNT, state_names, allowed};

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

void tpl_set_state(tpl_t *t, tpl_state_t to)
{
    char who[96];
    snprintf(who, sizeof who, "template %s (%.12s)", t->name, t->hash);
    t->state = (tpl_state_t)fsm_step(&tpl_fsm, (int)t->state, (int)to, who);
    uint64_t now = util_now_ms();
    switch (to) {
    case TPL_READY:
        pool_set_up(t->pool, true, now);
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
    if (to != TPL_BUILDING && to != TPL_PENDING)
        notify_waiters(t);
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

static void free_list(char **v, int n);

static void free_files(tpl_t *t)
{
    free_list(t->files, t->nfiles);
    free_list(t->texts, t->nfiles);
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
                      tpl_source_t source, const char *isolation, int min_ready, int max_total)
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
    t->schema = schema;
    snprintf(t->kind, sizeof t->kind, "%s", kind);
    list_init(&t->waiters);
    if (source == TPL_BUILTIN) {
        snprintf(t->dbname, sizeof t->dbname, "template0");
    } else {
        snprintf(t->dbname, sizeof t->dbname, "%st%d", d->cfg.postgres.name_prefix, t->id);
        snprintf(t->owner, sizeof t->owner, "%so%d", d->cfg.postgres.name_prefix, t->id);
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
    tpl_build_abort(t);
    tpl_shared_close(t);
    rd_free(t);
    notify_waiters(t);
    list_remove(&t->d->templates, &t->node);
    pool_free(t->pool);
    free_files(t);
    free(t);
}

tpl_t *tpl_current(dbld_t *d, const char *kind, const char *name)
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

static bool file_is_sql(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 4 && strcmp(e->d_name + n - 4, ".sql") == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The whole file, NUL-terminated; NULL (errno set) on failure. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 8192, len = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown)
                free(buf);
            buf = grown;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static void free_list(char **v, int n)
{
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int tpl_hash_dir(const char *dir, int major, char hex[65], char ***names_out, char ***texts_out,
                 int *n_out, char *err, size_t errlen)
{
    DIR *dh = opendir(dir);
    if (!dh) {
        snprintf(err, errlen, "cannot read sql_dir %s: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (!file_is_sql(e))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **grown = realloc(names, (size_t)cap * sizeof *names);
            if (!grown)
                break;
            names = grown;
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(dh);
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    char **texts = calloc((size_t)n + 1, sizeof *texts);

    /* The contents hashed are the contents applied: they are kept, so an
     * edit after hashing makes a new version instead of a mixed one. */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    int rc = texts ? 0 : -1;
    for (int i = 0; i < n && rc == 0; i++) {
        char path[CFG_PATH];
        if (util_path(path, sizeof path, "%s/%s", dir, names[i]) < 0 || !(texts[i] = slurp(path))) {
            snprintf(err, errlen, "cannot read %s/%s: %s", dir, names[i], strerror(errno));
            rc = -1;
            break;
        }
        EVP_DigestUpdate(md, names[i], strlen(names[i]) + 1);
        EVP_DigestUpdate(md, texts[i], strlen(texts[i]) + 1);
    }
    char ver[32];
    snprintf(ver, sizeof ver, "postgres %d", major);
    EVP_DigestUpdate(md, ver, strlen(ver));
    unsigned char digest[32];
    EVP_DigestFinal_ex(md, digest, NULL);
    EVP_MD_CTX_free(md);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    if (rc < 0) {
        free_list(names, n);
        free_list(texts, n);
        return -1;
    }
    *names_out = names;
    *texts_out = texts;
    *n_out = n;
    return 0;
}

/* A config template's current version, or a new one if its files changed. */
static void refresh_config_template(dbld_t *d, const tpl_cfg_t *tc)
{
    char hash[65] = "", err[512];
    char **files = NULL, **texts = NULL;
    int nfiles = 0;
    if (tc->sql_dir[0] && tpl_hash_dir(tc->sql_dir, d->pg->major, hash, &files, &texts, &nfiles,
                                       err, sizeof err) < 0) {
        log_error("tpl", "template %s: %s", tc->name, err);
        snprintf(hash, sizeof hash, "unreadable");
    }
    tpl_t *cur = tpl_current(d, "postgres", tc->name);
    if (cur && strcmp(cur->hash, hash) == 0) {
        free_list(files, nfiles);
        free_list(texts, nfiles);
        return;
    }
    tpl_t *t = tpl_new(d, "postgres", tc->name, hash, TPL_CONFIG, tc->k.isolation,
                       tc->k.min_ready, tc->k.max_total);
    if (!t)
        return;
    snprintf(t->sql_dir, sizeof t->sql_dir, "%s", tc->sql_dir);
    t->files = files;
    t->texts = texts;
    t->nfiles = nfiles;
    if (strcmp(hash, "unreadable") == 0) {
        tpl_set_state(t, TPL_FAILED);
        snprintf(t->error, sizeof t->error, "%s", err);
    }
    if (cur) {
        log_info("tpl", "template %s changed (%.12s -> %.12s): building the new version",
                 tc->name, cur->hash, hash);
        /* Leases taken from now on wait for the new version. */
        pool_t *old = cur->pool;
        while (!list_empty(&old->waiters)) {
            pool_waiter_t *w = list_entry(list_first(&old->waiters), pool_waiter_t, node);
            pool_cancel_wait(w);
            pool_wait(t->pool, w, w->cb, w->ud);
        }
        tpl_retire(cur);
    }
    if (t->state == TPL_PENDING && d->pg->state == INST_RUNNING)
        tpl_build_start(t);
}

int tpl_setup(dbld_t *d, char *err, size_t errlen)
{
    const kind_cfg_t *pg = &d->cfg.postgres, *rd = &d->cfg.redis;
    if (!tpl_new(d, "postgres", "default", "", TPL_BUILTIN, pg->isolation, pg->min_ready,
                 pg->max_total)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (d->redis_bin[0]) {
        /* Cold until the first redis lease: no servers for those who never
         * use Redis. */
        tpl_t *r = tpl_new(d, "redis", "default", "", TPL_BUILTIN, rd->isolation, rd->min_ready,
                           rd->max_total);
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

tpl_t *tpl_client(dbld_t *d, const char *name, const char *hash)
{
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (t->state != TPL_RETIRING && strcmp(t->name, name) == 0 && strcmp(t->hash, hash) == 0)
            return t;
    }
    const kind_cfg_t *pg = &d->cfg.postgres;
    return tpl_new(d, "postgres", name, hash, TPL_CLIENT, "database", pg->min_ready,
                   pg->max_total);
}

void tpl_instance_up(dbld_t *d)
{
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (strcmp(t->kind, "postgres") != 0)
            continue;
        if (t->source == TPL_BUILTIN && !t->schema)
            tpl_set_state(t, TPL_READY);
        else if (t->state == TPL_PENDING && t->source != TPL_CLIENT)
            tpl_build_start(t);
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
        tpl_build_abort(t);
        tpl_shared_close(t);
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

void tpl_rescan(dbld_t *d)
{
    for (int i = 0; i < d->cfg.n_templates; i++)
        refresh_config_template(d, &d->cfg.templates[i]);
}

void tpl_retire(tpl_t *t)
{
    if (t->state == TPL_RETIRING)
        return;
    tpl_build_abort(t); /* a build in flight would otherwise finish it */
    tpl_set_state(t, TPL_RETIRING);
}

/* The global cap keeps a pool with waiters from growing: make room by
 * dropping the ready databases of the least recently used other template
 * (which then keeps none ready until it is used again). */
static void evict_for_waiters(dbld_t *d)
{
    if (d->limits.total < d->limits.max)
        return;
    bool starved = false;
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        pool_t *p = list_entry(it, tpl_t, node)->pool;
        starved |= p->waiters.count > 0 && pool_count(p, SLOT_CREATING) == 0 &&
                   pool_total(p) < p->max_total;
    }
    if (!starved)
        return;
    tpl_t *victim = NULL;
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

void tpl_janitor(dbld_t *d)
{
    evict_for_waiters(d);
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        tpl_t *t = list_entry(it, tpl_t, node);
        if (t->state != TPL_RETIRING || pool_total(t->pool) != 0 || t->dropping)
            continue;
        if (strcmp(t->kind, "postgres") != 0 || d->pg->state != INST_RUNNING ||
            tpl_build_drop(t) < 0)
            tpl_free(t); /* its databases went with the server */
    }
}

void tpl_dropped(tpl_t *t)
{
    tpl_free(t);
}

void tpl_free_all(dbld_t *d)
{
    while (!list_empty(&d->templates)) {
        tpl_t *t = list_entry(list_first(&d->templates), tpl_t, node);
        tpl_build_abort(t);
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
