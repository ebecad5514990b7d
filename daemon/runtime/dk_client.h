/* A Docker Engine API client on the libuv loop: libcurl's multi interface
 * driven by uv_poll/uv_timer, JSON bodies with json-c. Endpoints
 * unix:///path and tcp://host:port, the latter with TLS client
 * certificates (DOCKER_HOST style). Works against Podman's Docker API. */
#ifndef DBL_DK_CLIENT_H
#define DBL_DK_CLIENT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <uv.h>

#include "dk_owner.h"

typedef struct dk dk_t;

/* status: the HTTP status, or < 0 (-errno) when there was no answer (err
 * says why). body: the parsed JSON answer or NULL; freed after the call. */
typedef void (*dk_cb)(void *ud, long status, json_object *body, const char *err);

/* Where the engine is and how to reach it, as the docker CLI reads
 * DOCKER_HOST, DOCKER_TLS_VERIFY and DOCKER_CERT_PATH. */
typedef struct dk_endpoint {
    char host[512];      /* unix:///path or tcp://host:port */
    bool tls;            /* tcp:// over TLS: verify the engine against ca.pem, present cert.pem */
    char cert_path[512]; /* holds ca.pem, cert.pem, key.pem */
} dk_endpoint_t;

/* Fill ep from the config's values ("" when unset), else the environment,
 * else the local default. 0, or -EINVAL with *err saying what to fix. */
int dk_endpoint_resolve(dk_endpoint_t *ep, const char *conf_host, const char *conf_tls_verify,
                        const char *conf_cert_path, const char **err);
/* "host" of tcp://host:port (IPv6 in brackets as given), or "" for unix://. */
void dk_endpoint_hostname(const dk_endpoint_t *ep, char *out, size_t len);

/* NULL with *err set when the endpoint is not usable. */
dk_t *dk_new(uv_loop_t *loop, const dk_endpoint_t *ep, const char **err);
/* Send a request; body is serialised (not stolen), may be NULL. timeout_ms
 * 0 means none (long polls such as /wait). 0 or -errno (cb not called). */
int dk_request(dk_t *dk, const char *method, const char *path, json_object *body, long timeout_ms,
               dk_cb cb, void *ud);
/* Cancel everything pending (callbacks run with -ECANCELED), remove the
 * beacon (a last request, 20 s at most: the loop runs on until it ends) and free. */
void dk_free(dk_t *dk);
/* Start removing, now and every beat_s seconds, the containers of daemons
 * that are provably dead (dk_reaper.h), and beating our own heartbeat
 * (dk_beacon.h, a container from image); both stop with dk_free, which
 * then removes the beacon before it frees. 0 or -ENOMEM. */
int dk_reap_start(dk_t *dk, const char *image, int beat_s);
const dk_endpoint_t *dk_ep(const dk_t *dk);
/* This daemon run's identity, which its containers' labels carry. */
const dk_owner_t *dk_self(const dk_t *dk);
/* The API path prefix, e.g. "/v1.41". */
const char *dk_api(const dk_t *dk);
/* A one-line reason from an error answer ({"message": …}) or status. */
void dk_error_text(long status, json_object *body, const char *err, char *out, size_t len);

#endif
