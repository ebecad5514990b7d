/* A Docker Engine API client on the libuv loop: libcurl's multi interface
 * driven by uv_poll/uv_timer, JSON bodies with json-c. Endpoint
 * unix:///path (DOCKER_HOST style). Works against Podman's Docker API. */
#ifndef DBL_DK_CLIENT_H
#define DBL_DK_CLIENT_H

#include <json-c/json.h>
#include <uv.h>

typedef struct dk dk_t;

/* status: the HTTP status, or < 0 (-errno) when there was no answer (err
 * says why). body: the parsed JSON answer or NULL; freed after the call. */
typedef void (*dk_cb)(void *ud, long status, json_object *body, const char *err);

/* NULL with *err set when the endpoint is not usable (not unix://…). */
dk_t *dk_new(uv_loop_t *loop, const char *docker_host, const char **err);
/* Send a request; body is serialised (not stolen), may be NULL. timeout_ms
 * 0 means none (long polls such as /wait). 0 or -errno (cb not called). */
int dk_request(dk_t *dk, const char *method, const char *path, json_object *body, long timeout_ms,
               dk_cb cb, void *ud);
/* Cancel everything pending (callbacks run with -ECANCELED) and free. */
void dk_free(dk_t *dk);
/* The API path prefix, e.g. "/v1.41". */
const char *dk_api(const dk_t *dk);
/* A one-line reason from an error answer ({"message": …}) or status. */
void dk_error_text(long status, json_object *body, const char *err, char *out, size_t len);

#endif
