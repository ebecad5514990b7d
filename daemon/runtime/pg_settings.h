/* The settings every PostgreSQL server we run gets, whatever runs it (the
 * process and docker runtimes; an external server is its owner's): the
 * daemon's promises rest on them, so one list serves both, and each
 * runtime adds only where the server listens. Pure: from the config. */
#ifndef DBL_PG_SETTINGS_H
#define DBL_PG_SETTINGS_H

#include "config.h"

/* authentication_timeout for the servers we run: a login left half-done
 * (a SCRAM challenge never answered) holds DROP DATABASE on a
 * ProcSignalBarrier until it times out, so a few seconds, not a minute. */
#define PG_AUTH_TIMEOUT "5s"

/* A release finds logins of its role still under way by their process
 * titles, "postgres: ROLE DB HOST state" (pg_reset.c, reopen): titles on
 * and no cluster name before the role, for the servers we run, whatever a
 * platform's or an image's defaults. */
#define PG_TITLES "update_process_title=on"
#define PG_NO_CLUSTER_NAME "cluster_name="

#define PG_SETTINGS_MAX 16

typedef struct pg_settings {
    const char *v[PG_SETTINGS_MAX]; /* "name=value" */
    int n;
    char max_connections[32], reserved[48], temp_file_limit[48];
} pg_settings_t;

/* Fill s from cfg ([postgres] server_max_connections, temp_file_limit_mb). */
void pg_settings_for(const config_t *cfg, pg_settings_t *s);

#endif
