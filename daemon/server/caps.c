#include "caps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease.h"
#include "log.h"
#include "tpl.h"

typedef struct usage {
    uid_t uid;
    int leases;  /* held: attached or detached */
    int waiting; /* lease requests queued for a database */
    int clients; /* connections, closing ones too: each holds its buffers */
} usage_t;

/* A client template name uid owns, counted once whatever its versions. */
static bool owns_name(dbld_t *d, const tpl_t *t, uid_t uid)
{
    if (t->source != TPL_CLIENT || t->state == TPL_RETIRING || t->owner_uid != uid)
        return false;
    return tpl_newest(d, t->kind, t->name) == t;
}

/* The client template names uid owns; the first of them into names
 * (", "-separated) when given. Not on the lease path: only a new name
 * and an admin's status count them. */
static int templates_of(dbld_t *d, uid_t uid, char *names, size_t len)
{
    int n = 0;
    size_t off = 0;
    list_node_t *it, *tmp;
    list_for_each(&d->templates, it, tmp)
    {
        const tpl_t *t = list_entry(it, tpl_t, node);
        if (!owns_name(d, t, uid))
            continue;
        n++;
        if (names && off < len)
            off += (size_t)snprintf(names + off, len - off, "%s%s", off ? ", " : "", t->name);
    }
    return n;
}

static void add_usage(dbld_t *d, uid_t uid, usage_t *u)
{
    *u = (usage_t){.uid = uid};
    list_node_t *it, *tmp;
    list_for_each(&d->leases, it, tmp)
    {
        u->leases += list_entry(it, lease_t, node)->uid == uid;
    }
    list_for_each(&d->sessions, it, tmp)
    {
        const sess_t *s = list_entry(it, sess_t, node);
        if (s->uid != uid)
            continue;
        u->clients++;
        u->waiting += (int)s->pending.count;
    }
}

bool caps_admit_client(sess_t *s)
{
    dbld_t *d = s->d;
    bool admin = dbld_is_admin(d, s->uid);
    int cap = d->cfg.max_clients_per_uid;
    usage_t u;
    add_usage(d, s->uid, &u);
    if (!admin && cap > 0 && u.clients > cap) {
        log_warn("server",
                 "refusing client pid %d: uid %d has %d connections open "
                 "(max_clients_per_uid %d)",
                 (int)s->pid, (int)s->uid, u.clients - 1, cap);
        sess_reply_error(s, NULL, DBL_E_TOO_MANY_CLIENTS,
                         "uid %d already has %d connections to dbleased, the most "
                         "max_clients_per_uid allows; close some, or ask whoever runs "
                         "dbleased to raise [daemon] max_clients_per_uid",
                         (int)s->uid, cap);
        /* One flooding uid: past twice its cap no last reply lingers. */
        sess_refuse(s, u.clients <= 2 * cap);
        return false;
    }
    size_t max = (size_t)d->cfg.max_clients + (admin ? CAPS_ADMIN_RESERVE : 0);
    if (d->sessions.count <= max)
        return true;
    log_warn("server", "refusing client pid %d: too many clients (max_clients)", (int)s->pid);
    sess_reply_error(s, NULL, DBL_E_TOO_MANY_CLIENTS,
                     "dbleased has max_clients (%d) connections open; retry later, or ask "
                     "whoever runs it to raise [daemon] max_clients",
                     d->cfg.max_clients);
    sess_refuse(s, true);
    return false;
}

bool caps_admit_lease(sess_t *s, json_object *id)
{
    dbld_t *d = s->d;
    int cap = d->cfg.max_leases_per_uid;
    if (cap == 0 || dbld_is_admin(d, s->uid))
        return true;
    usage_t u;
    add_usage(d, s->uid, &u);
    if (u.leases + u.waiting < cap)
        return true;
    sess_reply_error(s, id, DBL_E_TOO_MANY_LEASES,
                     "uid %d holds %d leases and waits for %d, the most max_leases_per_uid "
                     "(%d) allows; release one (dblease release), or ask whoever runs dbleased "
                     "to raise [daemon] max_leases_per_uid",
                     (int)s->uid, u.leases, u.waiting, cap);
    return false;
}

bool caps_admit_template(sess_t *s, json_object *id)
{
    dbld_t *d = s->d;
    int cap = d->cfg.max_templates_per_uid;
    if (cap == 0 || dbld_is_admin(d, s->uid))
        return true;
    char names[256] = "";
    int n = templates_of(d, s->uid, names, sizeof names);
    if (n < cap)
        return true;
    sess_reply_error(s, id, DBL_E_TOO_MANY_TEMPLATES,
                     "uid %d owns %d client templates (%s), the most max_templates_per_uid "
                     "(%d) allows; drop one you no longer need (dblease template drop NAME), "
                     "migrate a new version of one of them instead, or ask whoever runs "
                     "dbleased to raise [daemon] max_templates_per_uid",
                     (int)s->uid, n, names, cap);
    return false;
}

static bool seen(json_object *arr, uid_t uid)
{
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *o = json_object_array_get_idx(arr, i), *v;
        if (json_object_object_get_ex(o, "uid", &v) && json_object_get_int64(v) == (int64_t)uid)
            return true;
    }
    return false;
}

static void add_uid(dbld_t *d, json_object *arr, uid_t uid)
{
    if (seen(arr, uid))
        return;
    usage_t u;
    add_usage(d, uid, &u);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "uid", json_object_new_int64((int64_t)uid));
    json_object_object_add(o, "leases", json_object_new_int(u.leases));
    json_object_object_add(o, "waiting", json_object_new_int(u.waiting));
    json_object_object_add(o, "clients", json_object_new_int(u.clients));
    json_object_object_add(o, "templates", json_object_new_int(templates_of(d, uid, NULL, 0)));
    json_object_array_add(arr, o);
}

json_object *caps_usage_json(dbld_t *d)
{
    json_object *arr = json_object_new_array();
    list_node_t *it, *tmp;
    list_for_each(&d->sessions, it, tmp)
    {
        add_uid(d, arr, list_entry(it, sess_t, node)->uid);
    }
    list_for_each(&d->leases, it, tmp)
    {
        add_uid(d, arr, list_entry(it, lease_t, node)->uid);
    }
    return arr;
}
