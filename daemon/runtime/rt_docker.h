/* The docker runtime for PostgreSQL: the server runs in a container made
 * through the Docker Engine API (or Podman's), from an image with the
 * official postgres image's interface (POSTGRES_PASSWORD / POSTGRES_USER in
 * the environment, extra arguments passed to postgres), on the host network
 * at a port we choose. Every container carries labels naming this daemon,
 * so a restarted daemon removes what a crashed one left. */
#ifndef DBL_RT_DOCKER_H
#define DBL_RT_DOCKER_H

#include "inst.h"

/* The label value naming this daemon: stable for one state dir. */
void rt_dk_daemon_id(const dbld_t *d, char *out, size_t len);
void rt_dk_start(inst_t *i);
/* Remove the container (force: it is killed); its exit follows. */
void rt_dk_stop(inst_t *i);

#endif
