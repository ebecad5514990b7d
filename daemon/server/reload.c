#include "reload.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "notify.h"
#include "tpl.h"
#include "util.h"

static void resize(dbld_t *d, const char *kind, const char *name, int min_ready, int max_total)
{
    tpl_t *t = tpl_current(d, kind, name);
    if (!t || t->source == TPL_CLIENT) /* client templates: tpl_client_resize */
        return;
    if (t->pool->min_ready != min_ready || t->pool->max_total != max_total)
        log_info("reload", "pool %s/%s: min_ready %d -> %d, max_total %d -> %d", kind, name,
                 t->pool->min_ready, min_ready, t->pool->max_total, max_total);
    t->pool->min_ready = min_ready;
    t->pool->max_total = max_total;
}

static const tpl_cfg_t *find_tc(const config_t *c, const char *name)
{
    for (int i = 0; i < c->n_templates; i++)
        if (strcmp(c->templates[i].name, name) == 0)
            return &c->templates[i];
    return NULL;
}

static void warn_if_changed(const char *key, const char *old, const char *new_)
{
    if (strcmp(old, new_) != 0)
        log_warn("reload", "%s changed (%s -> %s): restart dbleased to apply it", key, old, new_);
}

void reload_config(dbld_t *d)
{
    notify_reloading(d);
    config_t *nc = malloc(sizeof *nc);
    char err[1024];
    if (!nc) {
        log_error("reload", "out of memory; keeping the running configuration");
        notify_reloaded(d);
        return;
    }
    config_defaults(nc);
    int rc = d->config_path[0] ? config_load(nc, d->config_path, err, sizeof err) : 0;
    /* What the command line and start-up decided stays. */
    memcpy(nc->socket, d->cfg.socket, sizeof nc->socket);
    memcpy(nc->state_dir, d->cfg.state_dir, sizeof nc->state_dir);
    if (!nc->cache_dir[0])
        memcpy(nc->cache_dir, d->cfg.cache_dir, sizeof nc->cache_dir);
    if (rc == 0)
        rc = config_validate(nc, err, sizeof err);
    if (rc < 0) {
        log_error("reload", "%s; keeping the running configuration", err);
        free(nc);
        notify_reloaded(d);
        return;
    }
    warn_if_changed("[daemon] run_as", d->cfg.run_as, nc->run_as);
    warn_if_changed("[daemon] cache_dir", d->cfg.cache_dir, nc->cache_dir);
    warn_if_changed("[daemon] metrics_listen", d->cfg.metrics_listen, nc->metrics_listen);
    warn_if_changed("[postgres] bin_dir", d->cfg.postgres.bin_dir, nc->postgres.bin_dir);
    warn_if_changed("[redis] bin_dir", d->cfg.redis.bin_dir, nc->redis.bin_dir);
    warn_if_changed("[postgres] isolation", d->cfg.postgres.isolation, nc->postgres.isolation);
    warn_if_changed("[redis] isolation", d->cfg.redis.isolation, nc->redis.isolation);

    /* Templates gone from the file retire; their leases go on. A section
     * without sql_dir only sized a client template, which stays. */
    for (int i = 0; i < d->cfg.n_templates; i++) {
        const char *name = d->cfg.templates[i].name;
        if (d->cfg.templates[i].sql_dir[0] && !find_tc(nc, name)) {
            tpl_t *t = tpl_current(d, "postgres", name);
            log_info("reload", "template %s removed from the configuration: retiring it", name);
            if (t)
                tpl_retire(t);
        }
    }
    /* Plain settings. */
    d->cfg.max_clients = nc->max_clients;
    d->cfg.max_leases_per_uid = nc->max_leases_per_uid;
    d->cfg.max_clients_per_uid = nc->max_clients_per_uid;
    d->cfg.max_templates_per_uid = nc->max_templates_per_uid;
    d->cfg.postgres.lease_connection_limit = nc->postgres.lease_connection_limit;
    d->cfg.default_ttl_s = nc->default_ttl_s;
    d->cfg.max_ttl_s = nc->max_ttl_s;
    d->cfg.default_wait_ms = nc->default_wait_ms;
    d->cfg.drain_timeout_s = nc->drain_timeout_s;
    d->cfg.health_interval_ms = nc->health_interval_ms;
    d->cfg.health_timeout_ms = nc->health_timeout_ms;
    d->cfg.client_template_idle_s = nc->client_template_idle_s;
    d->cfg.max_databases = nc->max_databases;
    d->limits.max = nc->max_databases;
    memcpy(d->cfg.log_level, nc->log_level, sizeof d->cfg.log_level);
    log_level_t level = LOG_INFO;
    log_level_parse(d->cfg.log_level, &level);
    log_set_level(level);
    resize(d, "postgres", "default", nc->postgres.min_ready, nc->postgres.max_total);
    resize(d, "redis", "default", nc->redis.min_ready, nc->redis.max_total);
    d->cfg.postgres.min_ready = nc->postgres.min_ready;
    d->cfg.postgres.max_total = nc->postgres.max_total;
    d->cfg.redis.min_ready = nc->redis.min_ready;
    d->cfg.redis.max_total = nc->redis.max_total;

    /* Templates: new ones are built, changed files or isolation make a new
     * version (tpl_rescan), sizes apply to the current version. */
    memcpy(d->cfg.templates, nc->templates, sizeof nc->templates);
    d->cfg.n_templates = nc->n_templates;
    for (int i = 0; i < nc->n_templates; i++) {
        const tpl_cfg_t *tc = &nc->templates[i];
        tpl_t *t = tpl_current(d, "postgres", tc->name);
        bool schema = strcmp(tc->k.isolation, "schema") == 0;
        if (t && t->source == TPL_CONFIG &&
            (t->schema != schema || strcmp(t->sql_dir, tc->sql_dir) != 0)) {
            log_info("reload", "template %s: isolation or sql_dir changed: new version", tc->name);
            tpl_retire(t);
        }
    }
    tpl_rescan(d);
    for (int i = 0; i < nc->n_templates; i++)
        resize(d, "postgres", nc->templates[i].name, nc->templates[i].k.min_ready,
               nc->templates[i].k.max_total);
    tpl_client_resize(d);
    free(nc);

    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
        pool_refill(list_entry(it, tpl_t, node)->pool, util_now_ms());
    log_info("reload", "configuration reloaded");
    notify_reloaded(d);
}
