/* The docker runtime for PostgreSQL: the server runs in a container made
 * through the Docker Engine API (or Podman's), from an image with the
 * official postgres image's interface (POSTGRES_PASSWORD / POSTGRES_USER in
 * the environment, extra arguments passed to postgres), on the host network
 * at a port we choose. Every container carries labels naming this daemon
 * run and how to prove it dead, so any daemon on the engine removes what a
 * dead one left (dk_reaper.h). */
#ifndef DBL_RT_DOCKER_H
#define DBL_RT_DOCKER_H

#include <json-c/json.h>
#include <stdbool.h>

#include "dk_client.h"
#include "inst.h"

/* The label value naming this daemon run (dk_owner.h): random, so daemons
 * with the same state dir on two hosts sharing an engine never collide. */
void rt_dk_daemon_id(const dbld_t *d, char *out, size_t len);
void rt_dk_start(inst_t *i);
/* Shared with the Redis containers (rd_server.c). Whether a kind's servers
 * publish their port on a bridge network (a remote engine, or
 * advertise_host) rather than share the host's; where clients then reach
 * them; HostConfig's network part (and the body's ExposedPorts) for a
 * server listening on port `inner` inside; and the host port the engine
 * chose, read from an inspect reply (or -1 and why). */
bool rt_dk_publishing(const dbld_t *d, const kind_cfg_t *k);
void rt_dk_reach_host(const dbld_t *d, const kind_cfg_t *k, char *out, size_t len);
json_object *rt_dk_network(const dbld_t *d, const kind_cfg_t *k, json_object *body, int inner);
int rt_dk_inspect(const dbld_t *d, const char *id, dk_cb cb, void *ud); /* GET its json */
int rt_dk_published_port(long status, json_object *body, const char *err, int inner, char *why,
                         size_t len);
/* Remove the container (force: it is killed); its exit follows. */
void rt_dk_stop(inst_t *i);

#endif
