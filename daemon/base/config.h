/* Daemon configuration: built-in defaults, an optional INI file, then the
 * command line. One static table (config.c) drives parsing, defaults and
 * --check-config's listing. */
#ifndef DBL_CONFIG_H
#define DBL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define CFG_STR 256
#define CFG_PATH 4096

/* Keys shared by [postgres] and [redis]. */
typedef struct kind_cfg {
    char runtime[16];   /* process | docker | external */
    char bin_dir[CFG_PATH];
    char image[CFG_STR];
    char command[CFG_PATH];
    char docker_host[CFG_STR];
    char url[CFG_PATH];
    char isolation[16];
    char clone_strategy[16]; /* postgres 15+: file_copy | wal_log */
    char name_prefix[24];    /* of every database and role we create */
    int min_ready;
    int max_total;
    int server_max_connections; /* postgres max_connections per instance */
    int start_timeout_s;
    /* postgres, database isolation: what a release does (auto | detect |
     * clone; pool/reset_policy.h) and how long the holder's sessions may
     * go on closing by themselves before they are terminated */
    char reset[16];
    int release_grace_ms;
    /* postgres: CONNECTION LIMIT of each lease role (0: a fair share of
     * max_connections, pg_slots.c; -1: none) */
    int lease_connection_limit;
    int temp_file_limit_mb; /* postgres: each session's temporary files; -1: none */
    /* runtime = docker on a remote engine (issue 16): TLS as the docker CLI
     * (yes/no, "" follows DOCKER_TLS_VERIFY), the dir of ca.pem, cert.pem,
     * key.pem; the host put in lease URLs, which also publishes ports */
    char docker_tls_verify[8];
    char docker_cert_path[CFG_PATH];
    char advertise_host[CFG_STR];
    int docker_heartbeat_s; /* beacon renames and sweeps this often (dk_beacon.h) */
    /* redis: memory per lease, MB (0: no limit); a full lease gets OOM errors */
    int maxmemory_mb;
} kind_cfg_t;

/* A [template.NAME] section: a pool of its own, started from the SQL in
 * sql_dir (or empty), with any [postgres] key overridden. */
typedef struct tpl_cfg {
    char name[64];
    char kind[16];
    char sql_dir[CFG_PATH];
    kind_cfg_t k;
    unsigned long long set; /* bit i: kind key i was given in this section */
} tpl_cfg_t;

#define CFG_MAX_TEMPLATES 16

/* Where the file set a key (or opened a section, key ""), so that an error
 * found after loading still names FILE:LINE. */
typedef struct cfg_where {
    char section[72];
    char key[32];
    int line;
} cfg_where_t;

#define CFG_MAX_WHERE 256

typedef struct config {
    char socket[108]; /* sun_path */
    char state_dir[CFG_PATH];
    char cache_dir[CFG_PATH]; /* initialised data dirs, reusable across runs */
    char run_as[64];
    char socket_group[64];
    char metrics_listen[64];
    char log_level[8];
    int socket_mode;
    int max_databases;
    int max_clients;
    int default_ttl_s;
    int max_ttl_s;
    int default_wait_ms;
    int shutdown_timeout_s;
    int drain_timeout_s;    /* SIGTERM: how long attached leases may go on */
    int stuck_client_timeout_s; /* a client that reads none of its replies this long is closed */
    int health_interval_ms; /* how often each server is probed */
    int health_timeout_ms;  /* a probe unanswered this long: the server hangs */
    int max_leases_per_uid;  /* leases one non-admin uid may hold or wait for (0: no cap) */
    int max_clients_per_uid; /* connections one non-admin uid may have open (0: no cap) */
    int max_templates_per_uid; /* client template names one non-admin uid may own (0: no cap) */
    int dead_logs_kept;     /* logs of servers that died, kept in <state>/logs */
    int disk_reserve_mb;    /* no new clone below this much free space */
    int client_template_idle_s; /* unused client templates retire after this; 0: never */
    kind_cfg_t postgres;
    kind_cfg_t redis;
    tpl_cfg_t templates[CFG_MAX_TEMPLATES];
    int n_templates;
    char file[CFG_PATH]; /* the file loaded, "" for built-in defaults */
    cfg_where_t where[CFG_MAX_WHERE];
    int n_where;
} config_t;

/* Is name a valid template (or hash) name: 1–63 of [A-Za-z0-9_.-]? */
bool config_name_ok(const char *name, size_t max);

/* Fill every key with its built-in default. */
void config_defaults(config_t *cfg);
/* Apply an INI file over cfg. 0, or -1 with a message naming file and line. */
int config_load(config_t *cfg, const char *path, char *err, size_t errlen);
/* Check cross-key rules (limits, supported runtimes). 0 or -1 with message. */
int config_validate(const config_t *cfg, char *err, size_t errlen);
/* Print the effective configuration as INI (for --check-config), with the
 * password of a url key shown as ***. */
void config_dump(const config_t *cfg, void *file);
/* "FILE:LINE: " for where [section] key was set (else its section, else
 * ""), to put before a message about it. */
const char *config_where(const config_t *cfg, const char *section, const char *key, char *buf,
                         size_t len);
/* metrics_listen's HOST:PORT (an IPv4 or IPv6 address, port 0-65535); 0,
 * or -1 with what to write instead in err. */
int config_parse_listen(const char *spec, char *host, size_t hostlen, int *port, char *err,
                        size_t errlen);
/* --check-config: what start-up would fail on outside the file itself (a
 * template's sql_dir missing, not a directory, unreadable). 0, or -1 with
 * what to fix in err. */
int config_check_paths(const config_t *cfg, char *err, size_t errlen);

#endif
