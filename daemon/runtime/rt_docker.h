/* The docker runtime for PostgreSQL: the server runs in a container made
 * through the Docker Engine API (or Podman's), from an image with the
 * official postgres image's interface (POSTGRES_PASSWORD / POSTGRES_USER in
 * the environment, extra arguments passed to postgres), on the host network
 * at a port we choose. Every container carries labels naming this daemon
 * run and how to prove it dead, so any daemon on the engine removes what a
 * dead one left (dk_reaper.h). */
#ifndef DBL_RT_DOCKER_H
#define DBL_RT_DOCKER_H

#include "inst.h"

/* The label value naming this daemon run (dk_owner.h): random, so daemons
 * with the same state dir on two hosts sharing an engine never collide. */
void rt_dk_daemon_id(const dbld_t *d, char *out, size_t len);
void rt_dk_start(inst_t *i);
/* Remove the container (force: it is killed); its exit follows. */
void rt_dk_stop(inst_t *i);

#endif
