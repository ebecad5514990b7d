#include "dk_owner.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* Label names: dblease.daemon predates the rest and names the instance. */
static const struct {
    const char *label;
    size_t off, size;
} fields[] = {
#define F(l, f) {l, offsetof(dk_owner_t, f), sizeof(((dk_owner_t *)0)->f)}
    F("dblease.daemon", id),   F("dblease.owner.boot", boot), F("dblease.owner.pidns", pidns),
    F("dblease.owner.pid", pid), F("dblease.owner.start", start), F("dblease.owner.host", host),
#undef F
};
#define N_FIELDS (sizeof fields / sizeof fields[0])

/* The first line of a small /proc file, without its newline. */
static bool read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    return ok && buf[0];
}

bool dk_owner_proc_start(const char *pid, char *buf, size_t len)
{
    char path[64], stat[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    if (!read_line(path, stat, sizeof stat))
        return false;
    /* comm (field 2) may hold spaces and ')': count from the last ')'. */
    char *p = strrchr(stat, ')');
    if (!p)
        return false;
    p++; /* at the space before field 3 (state); each step, the next field */
    for (int field = 3; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    if (!p)
        return false;
    p++;
    size_t n = strcspn(p, " ");
    if (n == 0 || n >= len)
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return true;
}

int dk_owner_self(dk_owner_t *out)
{
    memset(out, 0, sizeof *out);
    if (util_random_hex(out->id, 8) < 0)
        return -EIO;
    snprintf(out->pid, sizeof out->pid, "%ld", (long)getpid());
    ssize_t n = readlink("/proc/self/ns/pid", out->pidns, sizeof out->pidns - 1);
    if (n <= 0 || !read_line("/proc/sys/kernel/random/boot_id", out->boot, sizeof out->boot) ||
        !dk_owner_proc_start(out->pid, out->start, sizeof out->start))
        return -ENOENT; /* no /proc: containers still work, others cannot reap them */
    if (gethostname(out->host, sizeof out->host) < 0)
        snprintf(out->host, sizeof out->host, "?");
    out->host[sizeof out->host - 1] = '\0';
    return 0;
}

void dk_owner_labels(const dk_owner_t *o, json_object *labels)
{
    for (size_t k = 0; k < N_FIELDS; k++) {
        const char *v = (const char *)o + fields[k].off;
        if (v[0])
            json_object_object_add(labels, fields[k].label, json_object_new_string(v));
    }
}

bool dk_owner_from_labels(json_object *labels, dk_owner_t *out)
{
    memset(out, 0, sizeof *out);
    bool all = true;
    for (size_t k = 0; k < N_FIELDS; k++) {
        json_object *v;
        char *dst = (char *)out + fields[k].off;
        if (labels && json_object_object_get_ex(labels, fields[k].label, &v) &&
            json_object_is_type(v, json_type_string))
            snprintf(dst, fields[k].size, "%s", json_object_get_string(v));
        all &= dst[0] != '\0';
    }
    return all;
}

dk_verdict_t dk_owner_verdict(const dk_owner_t *self, const dk_owner_t *other, dk_start_fn start_of)
{
    if (other->id[0] && strcmp(other->id, self->id) == 0)
        return DK_OWNER_SELF;
    /* A pid means something only in the pid namespace of the boot it was
     * taken in: anywhere else it is another process, or none. */
    if (!self->boot[0] || !other->boot[0] || !other->pid[0] || !other->start[0] ||
        strcmp(self->boot, other->boot) != 0 || strcmp(self->pidns, other->pidns) != 0)
        return DK_OWNER_UNKNOWN;
    char start[24];
    if (start_of(other->pid, start, sizeof start) && strcmp(start, other->start) == 0)
        return DK_OWNER_ALIVE;
    return DK_OWNER_DEAD; /* no such pid, or a newer process reusing it */
}

const char *dk_verdict_name(dk_verdict_t v)
{
    switch (v) {
    case DK_OWNER_SELF: return "ours";
    case DK_OWNER_ALIVE: return "alive";
    case DK_OWNER_DEAD: return "dead";
    default: return "unknown";
    }
}
