#include "rt_docker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dk_container.h"
#include "log.h"
#include "rt_process.h"
#include "util.h"

void rt_dk_daemon_id(const dbld_t *d, char *out, size_t len)
{
    snprintf(out, len, "%s", dk_self(d->dk)->id);
}

#define PG_PORT 5432 /* inside the container, when its port is published */

/* Publish the server's port on a bridge network rather than share the
 * host's: a remote engine's host network is not ours, and job containers
 * reach published ports (advertise_host: the bridge gateway, say). */
bool rt_dk_publishing(const dbld_t *d, const kind_cfg_t *k)
{
    return strncmp(dk_ep(d->dk)->host, "tcp://", 6) == 0 || k->advertise_host[0];
}

static bool publishing(const dbld_t *d)
{
    return rt_dk_publishing(d, &d->cfg.postgres);
}

/* Where clients reach it: advertise_host, the remote engine's host, or here. */
void rt_dk_reach_host(const dbld_t *d, const kind_cfg_t *k, char *out, size_t len)
{
    if (k->advertise_host[0])
        snprintf(out, len, "%s", k->advertise_host);
    else
        dk_endpoint_hostname(dk_ep(d->dk), out, len);
    if (!out[0])
        snprintf(out, len, "127.0.0.1");
}

/* The URL was left as "postgresql://postgres:PASSWORD@": add where. */
static void serving_at(inst_t *i, const char *host, int port)
{
    i->port = port;
    snprintf(i->host, sizeof i->host, "%s", host);
    size_t n = strlen(i->url);
    snprintf(i->url + n, sizeof i->url - n, "%s%s%s:%d/postgres", strchr(host, ':') ? "[" : "",
             host, strchr(host, ':') ? "]" : "", port);
    log_info("docker", "started container %.12s (%s) on %s:%d", i->container_id,
             i->d->cfg.postgres.image, host, port);
    if (i->state == INST_STARTING)
        inst_spawned(i); /* the engine connects once postgres accepts */
}

int rt_dk_inspect(const dbld_t *d, const char *id, dk_cb cb, void *ud)
{
    char p[300];
    snprintf(p, sizeof p, "%s/containers/%s/json", dk_api(d->dk), id);
    return dk_request(d->dk, "GET", p, NULL, 60000, cb, ud);
}

int rt_dk_published_port(long status, json_object *body, const char *err, int inner, char *why,
                         size_t len)
{
    json_object *ns, *ports, *bind, *hp;
    char key[16];
    snprintf(key, sizeof key, "%d/tcp", inner);
    int port = 0;
    if (status == 200 && json_object_object_get_ex(body, "NetworkSettings", &ns) &&
        json_object_object_get_ex(ns, "Ports", &ports) &&
        json_object_object_get_ex(ports, key, &bind) &&
        json_object_is_type(bind, json_type_array) && json_object_array_length(bind) > 0 &&
        json_object_object_get_ex(json_object_array_get_idx(bind, 0), "HostPort", &hp))
        port = atoi(json_object_get_string(hp));
    if (port > 0 && port <= 65535)
        return port;
    char text[400];
    dk_error_text(status, body, err, text, sizeof text);
    snprintf(why, len, "the engine published no port for %s: %s", key, text);
    return -1;
}

/* The engine chose the published port: read it back. */
static void on_inspected(void *ud, long status, json_object *body, const char *err)
{
    inst_t *i = ud;
    if (status == -ECANCELED || i->state != INST_STARTING || !i->container ||
        strcmp(dkc_id(i->container), i->container_id) != 0)
        return; /* gone meanwhile: its removal reports */
    char why[512];
    int port = rt_dk_published_port(status, body, err, PG_PORT, why, sizeof why);
    if (port < 0) {
        inst_start_failed(i, "%s", why);
        return;
    }
    char host[CFG_STR];
    rt_dk_reach_host(i->d, &i->d->cfg.postgres, host, sizeof host);
    serving_at(i, host, port);
}

static void on_started(void *ud, int err, const char *msg)
{
    inst_t *i = ud;
    if (err) { /* gone() follows */
        inst_start_failed(i, "container from %s: %s (is the image there? `docker pull` or "
                             "`podman pull` it)",
                          i->d->cfg.postgres.image, msg);
        return;
    }
    inst_rt_set(i, RT_SERVING);
    snprintf(i->container_id, sizeof i->container_id, "%s", dkc_id(i->container));
    if (!publishing(i->d)) {
        serving_at(i, "127.0.0.1", i->port);
        return;
    }
    if (rt_dk_inspect(i->d, i->container_id, on_inspected, i) < 0)
        inst_start_failed(i, "cannot reach the container engine");
}

static void on_gone(void *ud, int64_t code)
{
    inst_t *i = ud;
    i->container = NULL;
    inst_rt_set(i, RT_IDLE);
    inst_exited(i, code, 0);
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
    char port[32];
    bool publish = publishing(i->d);
    snprintf(port, sizeof port, "port=%d", publish ? PG_PORT : i->port);
    pg_settings_t set;
    pg_settings_for(&i->d->cfg, &set);
    /* Host network: only loopback, at the port we picked. Published: the
     * container's own address, behind the engine's port mapping. */
    const char *listen[] = {port, publish ? "listen_addresses=*" : "listen_addresses=127.0.0.1"};
    for (int k = 0; k < 2 + set.n; k++) {
        json_object_array_add(cmd, json_object_new_string("-c"));
        json_object_array_add(cmd, json_object_new_string(k < 2 ? listen[k] : set.v[k - 2]));
    }
    return cmd;
}

/* HostConfig's network part (and the body's ExposedPorts when publishing). */
json_object *rt_dk_network(const dbld_t *d, const kind_cfg_t *k, json_object *body, int inner)
{
    json_object *host = json_object_new_object();
    if (!rt_dk_publishing(d, k)) {
        json_object_object_add(host, "NetworkMode", json_object_new_string("host"));
        return host;
    }
    char key[16];
    snprintf(key, sizeof key, "%d/tcp", inner);
    json_object *exposed = json_object_new_object(), *bindings = json_object_new_object();
    json_object_object_add(exposed, key, json_object_new_object());
    json_object *one = json_object_new_object(), *list = json_object_new_array();
    json_object_object_add(one, "HostIp", json_object_new_string(""));
    json_object_object_add(one, "HostPort", json_object_new_string("")); /* the engine picks */
    json_object_array_add(list, one);
    json_object_object_add(bindings, key, list);
    json_object_object_add(body, "ExposedPorts", exposed);
    json_object_object_add(host, "NetworkMode", json_object_new_string("bridge"));
    json_object_object_add(host, "PortBindings", bindings);
    return host;
}

static void create(inst_t *i)
{
    i->port = util_free_port();
    char password[33];
    if (i->port < 0 || util_random_password(password, 32) < 0) {
        inst_start_failed(i, "no free port or no randomness");
        return;
    }
    snprintf(i->url, sizeof i->url, "postgresql://postgres:%s@", password); /* serving_at ends it */
    char envpw[64], daemon_id[32], name[96];
    snprintf(envpw, sizeof envpw, "POSTGRES_PASSWORD=%s", password);
    rt_dk_daemon_id(i->d, daemon_id, sizeof daemon_id);
    json_object *env = json_object_new_array();
    json_object_array_add(env, json_object_new_string(envpw));
    json_object_array_add(env, json_object_new_string("POSTGRES_USER=postgres"));
    /* The official image trusts 127.0.0.1 (initdb's default): on the host
     * network any local client could log in as anyone. Passwords, then,
     * also on the socket inside (the entrypoint's psql sets PGPASSWORD). */
    json_object_array_add(env, json_object_new_string("POSTGRES_INITDB_ARGS=--auth-host=scram-sha-256 "
                                                      "--auth-local=scram-sha-256"));
    json_object *body = json_object_new_object();
    json_object *host = rt_dk_network(i->d, &i->d->cfg.postgres, body, PG_PORT);
    json_object_object_add(body, "Image", json_object_new_string(i->d->cfg.postgres.image));
    json_object_object_add(body, "Env", env);
    json_object_object_add(body, "Cmd", command(i));
    json_object_object_add(body, "Labels", dkc_labels(i->d->dk, "postgres"));
    json_object_object_add(body, "HostConfig", host);
    snprintf(name, sizeof name, "dblease-%s-%s", daemon_id, i->name);
    static const dkc_cbs_t cbs = {.started = on_started, .gone = on_gone};
    i->container = dkc_run(i->d->dk, body, name, &cbs, i);
    json_object_put(body);
    if (!i->container) {
        inst_rt_set(i, RT_IDLE);
        inst_start_failed(i, "cannot reach the container engine");
    }
}

static void on_swept(void *ud, int err, const char *msg)
{
    inst_t *i = ud;
    if (err == 0 && i->state == INST_STARTING) {
        create(i);
        return;
    }
    inst_rt_set(i, RT_IDLE);
    if (err && err != -ECANCELED)
        inst_start_failed(i, "%s; is the engine running at %s?", msg, i->d->docker_host);
    else
        inst_settle(i);
}

void rt_dk_start(inst_t *i)
{
    if (!i->d->dk) {
        inst_start_failed(i, "no container engine endpoint: set [postgres] docker_host or "
                             "DOCKER_HOST to unix:///path/to/docker.sock");
        return;
    }
    i->container_id[0] = '\0';
    /* First what a crashed run of ours left (same labels), then ours. */
    char daemon_id[32];
    rt_dk_daemon_id(i->d, daemon_id, sizeof daemon_id);
    inst_rt_set(i, RT_PREPARING);
    dkc_sweep(i->d->dk, daemon_id, "postgres", on_swept, i);
}

void rt_dk_stop(inst_t *i)
{
    if (i->container)
        dkc_remove(i->container); /* on_gone follows */
}
