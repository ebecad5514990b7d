/* The external runtime: a PostgreSQL server someone else runs (a CI
 * service container, a shared dev server), given by [postgres] url. We
 * never start or stop it; we only create, reset and drop our own
 * databases and roles in it, all named with [postgres] name_prefix. */
#include "rt_external.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rt_ext_start(inst_t *i)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(i->d->cfg.postgres.url, &errmsg);
    if (!opts) {
        inst_start_failed(i, "[postgres] url is not a connection string: %s",
                          errmsg ? errmsg : "out of memory");
        PQfreemem(errmsg);
        return;
    }
    const char *host = NULL, *port = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (strcmp(o->keyword, "host") == 0 && o->val && *o->val)
            host = o->val;
        else if (strcmp(o->keyword, "port") == 0 && o->val && *o->val)
            port = o->val;
    }
    /* Leases reach the server where we do. */
    snprintf(i->host, sizeof i->host, "%s", host ? host : "localhost");
    i->port = port ? atoi(port) : 5432;
    snprintf(i->url, sizeof i->url, "%s", i->d->cfg.postgres.url);
    PQconninfoFree(opts);
    inst_spawned(i); /* nothing to run: connect */
}
