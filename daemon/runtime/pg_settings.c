#include "pg_settings.h"

#include <stdio.h>

static void add(pg_settings_t *s, const char *v)
{
    if (s->n < PG_SETTINGS_MAX)
        s->v[s->n++] = v;
}

void pg_settings_for(const config_t *cfg, pg_settings_t *s)
{
    int maxc = cfg->postgres.server_max_connections;
    s->n = 0;
    snprintf(s->max_connections, sizeof s->max_connections, "max_connections=%d", maxc);
    add(s, s->max_connections);
    /* Slots no lease can take, for the daemon's superuser connections
     * (admin, health probe, release checks): a tenth, from 3 to 10. */
    snprintf(s->reserved, sizeof s->reserved, "superuser_reserved_connections=%d",
             maxc / 10 < 3 ? 3 : maxc / 10 > 10 ? 10 : maxc / 10);
    add(s, s->reserved);
    /* Test databases trade durability for speed: nothing here must survive
     * a crash, and the daemon rebuilds everything at start. */
    add(s, "fsync=off");
    add(s, "synchronous_commit=off");
    add(s, "full_page_writes=off");
    add(s, "max_wal_size=1GB");
    add(s, "password_encryption=scram-sha-256");
    add(s, "log_min_messages=warning");
    /* statements carry lease passwords: never log them */
    add(s, "log_min_error_statement=panic");
    add(s, "log_statement=none");
    add(s, "authentication_timeout=" PG_AUTH_TIMEOUT);
    add(s, PG_TITLES);
    add(s, PG_NO_CLUSTER_NAME);
    /* a lease's sorts and hashes cannot fill the disk every other lease
     * shares (superuser-only: leases cannot lift it) */
    if (cfg->postgres.temp_file_limit_mb >= 0) {
        snprintf(s->temp_file_limit, sizeof s->temp_file_limit, "temp_file_limit=%dMB",
                 cfg->postgres.temp_file_limit_mb);
        add(s, s->temp_file_limit);
    }
}
