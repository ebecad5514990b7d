#include "rt_docker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dk_client.h"
#include "log.h"
#include "util.h"

#define API_TIMEOUT_MS 60000 /* creating may pull nothing, but vfs copies are slow */

void rt_dk_daemon_id(const dbld_t *d, char *out, size_t len)
{
    snprintf(out, len, "%016llx", util_hash_str(d->cfg.state_dir));
}

/* API path for container id plus a suffix ("/start", "?force=true"). */
static void path(char *out, size_t len, const inst_t *i, const char *id, const char *suffix)
{
    snprintf(out, len, "%s/containers/%s%s", dk_api(i->d->dk), id, suffix);
}

static void on_exit_wait(void *ud, long status, json_object *body, const char *err)
{
    inst_t *i = ud;
    if (status == -ECANCELED)
        return;
    i->proc_running = false;
    i->pid = 0;
    json_object *code;
    int64_t exit_code = body && json_object_object_get_ex(body, "StatusCode", &code)
                            ? json_object_get_int64(code)
                            : -1;
    inst_exited(i, exit_code, 0);
}

static void on_started(void *ud, long status, json_object *body, const char *err)
{
    inst_t *i = ud;
    i->helper_running = false;
    if (status == -ECANCELED)
        return;
    if (status != 204 && status != 304) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        inst_start_failed(i, "starting container %.12s: %s", i->container_id, why);
        return;
    }
    if (i->state != INST_STARTING) { /* stopped meanwhile */
        inst_settle(i);
        return;
    }
    i->proc_running = true;
    char p[600];
    path(p, sizeof p, i, i->container_id, "/wait");
    if (dk_request(i->d->dk, "POST", p, NULL, 0, on_exit_wait, i) < 0)
        log_warn("docker", "%s: cannot watch container %.12s", i->name, i->container_id);
    log_info("docker", "started container %.12s (%s) on 127.0.0.1:%d", i->container_id,
             i->d->cfg.postgres.image, i->port);
    inst_spawned(i); /* the engine connects once postgres accepts */
}

static void on_created(void *ud, long status, json_object *body, const char *err)
{
    inst_t *i = ud;
    i->helper_running = false;
    if (status == -ECANCELED)
        return;
    json_object *id;
    if (status != 201 || !body || !json_object_object_get_ex(body, "Id", &id)) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        inst_start_failed(i, "creating a container from %s: %s (is the image there? `docker "
                             "pull` or `podman pull` it)",
                          i->d->cfg.postgres.image, why);
        return;
    }
    snprintf(i->container_id, sizeof i->container_id, "%s", json_object_get_string(id));
    if (i->state != INST_STARTING) { /* stopped meanwhile: it must not stay */
        rt_dk_stop(i);
        return;
    }
    char p[600];
    path(p, sizeof p, i, i->container_id, "/start");
    i->helper_running = true;
    if (dk_request(i->d->dk, "POST", p, NULL, API_TIMEOUT_MS, on_started, i) < 0) {
        i->helper_running = false;
        inst_start_failed(i, "cannot reach the container engine");
    }
}

/* argv for the container: [postgres] command (or "postgres") and ours. */
static json_object *command(inst_t *i)
{
    json_object *cmd = json_object_new_array();
    char base[CFG_PATH];
    snprintf(base, sizeof base, "%s", i->d->cfg.postgres.command[0] ? i->d->cfg.postgres.command
                                                                       : "postgres");
    for (char *save, *w = strtok_r(base, " ", &save); w; w = strtok_r(NULL, " ", &save))
        json_object_array_add(cmd, json_object_new_string(w));
    char port[32], maxconn[48];
    snprintf(port, sizeof port, "port=%d", i->port);
    snprintf(maxconn, sizeof maxconn, "max_connections=%d",
             i->d->cfg.postgres.server_max_connections);
    /* Host network: only loopback, at the port we picked. */
    const char *settings[] = {port, "listen_addresses=127.0.0.1", maxconn, "fsync=off",
                              "synchronous_commit=off", "full_page_writes=off",
                              "log_min_error_statement=panic"};
    for (size_t k = 0; k < sizeof settings / sizeof settings[0]; k++) {
        json_object_array_add(cmd, json_object_new_string("-c"));
        json_object_array_add(cmd, json_object_new_string(settings[k]));
    }
    return cmd;
}

static void create(inst_t *i)
{
    i->port = util_free_port();
    char password[33];
    if (i->port < 0 || util_random_password(password, 32) < 0) {
        inst_start_failed(i, "no free port or no randomness");
        return;
    }
    snprintf(i->host, sizeof i->host, "127.0.0.1");
    snprintf(i->url, sizeof i->url, "postgresql://postgres:%s@127.0.0.1:%d/postgres", password,
             i->port);
    char envpw[64], daemon_id[32];
    snprintf(envpw, sizeof envpw, "POSTGRES_PASSWORD=%s", password);
    rt_dk_daemon_id(i->d, daemon_id, sizeof daemon_id);
    json_object *env = json_object_new_array();
    json_object_array_add(env, json_object_new_string(envpw));
    json_object_array_add(env, json_object_new_string("POSTGRES_USER=postgres"));
    json_object *labels = json_object_new_object();
    json_object_object_add(labels, "dblease.daemon", json_object_new_string(daemon_id));
    json_object_object_add(labels, "dblease.kind", json_object_new_string("postgres"));
    json_object *host = json_object_new_object();
    json_object_object_add(host, "NetworkMode", json_object_new_string("host"));
    json_object *body = json_object_new_object();
    json_object_object_add(body, "Image", json_object_new_string(i->d->cfg.postgres.image));
    json_object_object_add(body, "Env", env);
    json_object_object_add(body, "Cmd", command(i));
    json_object_object_add(body, "Labels", labels);
    json_object_object_add(body, "HostConfig", host);
    char p[600];
    snprintf(p, sizeof p, "%s/containers/create?name=dblease-%s-%s", dk_api(i->d->dk), daemon_id,
             i->name);
    i->helper_running = true;
    int rc = dk_request(i->d->dk, "POST", p, body, API_TIMEOUT_MS, on_created, i);
    json_object_put(body);
    if (rc < 0) {
        i->helper_running = false;
        inst_start_failed(i, "cannot reach the container engine");
    }
}

/* ---- removing what carries our label --------------------------------- */

typedef struct sweep {
    inst_t *i;
    int left;
} sweep_t;

static void on_removed_one(void *ud, long status, json_object *body, const char *err)
{
    sweep_t *w = ud;
    if (status != 204 && status != 404 && status != -ECANCELED) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        log_warn("docker", "removing a leftover container: %s", why);
    }
    if (--w->left > 0)
        return;
    inst_t *i = w->i;
    bool cancelled = status == -ECANCELED;
    free(w);
    i->helper_running = false;
    if (cancelled)
        return;
    if (i->state == INST_STARTING)
        create(i);
    else
        inst_settle(i);
}

static void on_listed(void *ud, long status, json_object *body, const char *err)
{
    inst_t *i = ud;
    if (status == -ECANCELED) {
        i->helper_running = false;
        return;
    }
    if (status != 200 || !body || !json_object_is_type(body, json_type_array)) {
        i->helper_running = false;
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        inst_start_failed(i, "%s; is the engine running at %s?", why, i->d->docker_host);
        return;
    }
    size_t n = json_object_array_length(body);
    if (n == 0) {
        i->helper_running = false;
        create(i);
        return;
    }
    sweep_t *w = calloc(1, sizeof *w);
    if (!w) {
        i->helper_running = false;
        inst_start_failed(i, "out of memory");
        return;
    }
    w->i = i;
    w->left = (int)n;
    for (size_t k = 0; k < n; k++) {
        json_object *c = json_object_array_get_idx(body, k), *id;
        const char *cid = json_object_object_get_ex(c, "Id", &id) ? json_object_get_string(id) : "";
        log_warn("docker", "removing container %.12s left by a previous dbleased", cid);
        char p[600];
        path(p, sizeof p, i, cid, "?force=true");
        if (dk_request(i->d->dk, "DELETE", p, NULL, API_TIMEOUT_MS, on_removed_one, w) < 0)
            on_removed_one(w, 404, NULL, NULL);
    }
}

void rt_dk_start(inst_t *i)
{
    if (!i->d->dk) {
        inst_start_failed(i, "no container engine endpoint: set [postgres] docker_host or "
                             "DOCKER_HOST to unix:///path/to/docker.sock");
        return;
    }
    i->container_id[0] = '\0';
    /* First what a crashed run of ours left (same label), then ours. */
    char daemon_id[32], filter[160], p[400];
    rt_dk_daemon_id(i->d, daemon_id, sizeof daemon_id);
    snprintf(filter, sizeof filter, "%%7B%%22label%%22%%3A%%5B%%22dblease.daemon%%3D%s%%22%%5D%%7D",
             daemon_id); /* {"label":["dblease.daemon=ID"]}, URL-encoded */
    snprintf(p, sizeof p, "%s/containers/json?all=true&filters=%s", dk_api(i->d->dk), filter);
    i->helper_running = true;
    if (dk_request(i->d->dk, "GET", p, NULL, API_TIMEOUT_MS, on_listed, i) < 0) {
        i->helper_running = false;
        inst_start_failed(i, "cannot reach the container engine");
    }
}

static void on_stopped(void *ud, long status, json_object *body, const char *err)
{
    inst_t *i = ud;
    if (status == -ECANCELED)
        return;
    if (status != 204 && status != 404) {
        char why[512];
        dk_error_text(status, body, err, why, sizeof why);
        log_warn("docker", "%s: removing container %.12s: %s", i->name, i->container_id, why);
    }
    /* /wait answers when it exits; if nothing was waiting, settle now. */
    if (!i->proc_running)
        inst_settle(i);
}

void rt_dk_stop(inst_t *i)
{
    if (!i->container_id[0] || !i->d->dk)
        return;
    char p[600];
    path(p, sizeof p, i, i->container_id, "?force=true");
    dk_request(i->d->dk, "DELETE", p, NULL, API_TIMEOUT_MS, on_stopped, i);
}
