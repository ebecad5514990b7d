/* Who made a container, and whether that daemon is provably dead. Every
 * container of ours carries its owner's identity in labels: a random
 * instance id (one per daemon run, so two daemons never share one, whatever
 * their state dirs) and what proves it alive on the host it runs on: the
 * kernel's boot id, its pid namespace, its pid and that process's start
 * time. A daemon that shares the boot and the pid namespace can look the
 * pid up; anyone else cannot tell, and leaves the containers alone. */
#ifndef DBL_DK_OWNER_H
#define DBL_DK_OWNER_H

#include <json-c/json.h>
#include <stdbool.h>

typedef struct dk_owner {
    char id[17];     /* random, per daemon run: 16 hex digits */
    char boot[40];   /* /proc/sys/kernel/random/boot_id */
    char pidns[40];  /* /proc/self/ns/pid, e.g. "pid:[4026531836]" */
    char pid[16];
    char start[24];  /* field 22 of /proc/PID/stat: clock ticks after boot */
    char host[64];   /* for people reading `docker ps` */
} dk_owner_t;

typedef enum {
    DK_OWNER_SELF,    /* ours */
    DK_OWNER_ALIVE,   /* its process is there */
    DK_OWNER_DEAD,    /* same boot and pid namespace, and that process is gone */
    DK_OWNER_UNKNOWN, /* another host, namespace or boot; or not our labels */
} dk_verdict_t;

/* This process; 0 or -errno. */
int dk_owner_self(dk_owner_t *out);
/* Add the owner's labels to a Labels object. */
void dk_owner_labels(const dk_owner_t *o, json_object *labels);
/* Read them back; false when a label is missing (not ours, or older). */
bool dk_owner_from_labels(json_object *labels, dk_owner_t *out);
/* start_of(pid, buf, len): the start time of pid as in the label, or
 * false when there is no such process (tests pass their own). */
typedef bool (*dk_start_fn)(const char *pid, char *buf, size_t len);
dk_verdict_t dk_owner_verdict(const dk_owner_t *self, const dk_owner_t *other, dk_start_fn start_of);
/* The real one, from /proc. */
bool dk_owner_proc_start(const char *pid, char *buf, size_t len);
const char *dk_verdict_name(dk_verdict_t v);

#endif
