#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef enum { T_STR, T_INT, T_MODE } key_type_t;

typedef struct key_def {
    const char *section; /* "daemon", or "kind" for [postgres] and [redis] alike */
    const char *key;
    key_type_t type;
    size_t offset; /* in config_t, or in kind_cfg_t for "kind" keys */
    size_t size;   /* for T_STR */
    int min, max;  /* for T_INT */
    const char *def;
} key_def_t;

#define D(key, type, field, min, max, def)                                                         \
    {"daemon", key, type, offsetof(config_t, field), sizeof(((config_t *)0)->field), min, max, def}
#define K(key, type, field, min, max, def)                                                         \
    {"kind", key, type, offsetof(kind_cfg_t, field), sizeof(((kind_cfg_t *)0)->field), min, max, def}

static const key_def_t keys[] = {
    D("socket", T_STR, socket, 0, 0, ""),
    D("state_dir", T_STR, state_dir, 0, 0, ""),
    D("cache_dir", T_STR, cache_dir, 0, 0, ""),
    D("run_as", T_STR, run_as, 0, 0, ""),
    D("socket_mode", T_MODE, socket_mode, 0, 0777, "0660"),
    D("socket_group", T_STR, socket_group, 0, 0, ""),
    D("metrics_listen", T_STR, metrics_listen, 0, 0, ""),
    D("log_level", T_STR, log_level, 0, 0, "info"),
    D("max_databases", T_INT, max_databases, 1, 100000, "200"),
    D("max_clients", T_INT, max_clients, 1, 100000, "1024"),
    D("default_ttl_s", T_INT, default_ttl_s, 1, 31536000, "900"),
    D("max_ttl_s", T_INT, max_ttl_s, 1, 31536000, "86400"),
    D("default_wait_ms", T_INT, default_wait_ms, 0, 600000, "10000"),
    D("shutdown_timeout_s", T_INT, shutdown_timeout_s, 1, 3600, "10"),
    D("drain_timeout_s", T_INT, drain_timeout_s, 0, 86400, "30"),
    D("stuck_client_timeout_s", T_INT, stuck_client_timeout_s, 1, 86400, "30"),
    D("health_interval_ms", T_INT, health_interval_ms, 50, 600000, "1000"),
    D("health_timeout_ms", T_INT, health_timeout_ms, 100, 600000, "3000"),
    /* tenants (server/caps.c): 0 = no cap; root and the daemon's uid are exempt */
    D("max_leases_per_uid", T_INT, max_leases_per_uid, 0, 100000, "16"),
    D("max_clients_per_uid", T_INT, max_clients_per_uid, 0, 100000, "64"),
    D("max_templates_per_uid", T_INT, max_templates_per_uid, 0, 100000, "8"),
    D("dead_logs_kept", T_INT, dead_logs_kept, 0, 1000, "10"),
    D("disk_reserve_mb", T_INT, disk_reserve_mb, 0, 1048576, "64"),
    /* client templates nobody leased, migrated or ensured this long are
     * retired, freeing their databases; 0: never */
    D("client_template_idle_s", T_INT, client_template_idle_s, 0, 31536000, "3600"),
    K("runtime", T_STR, runtime, 0, 0, "process"),
    K("bin_dir", T_STR, bin_dir, 0, 0, ""),
    K("image", T_STR, image, 0, 0, "postgres:16"),
    K("command", T_STR, command, 0, 0, ""),
    K("docker_host", T_STR, docker_host, 0, 0, ""),
    K("url", T_STR, url, 0, 0, ""),
    K("isolation", T_STR, isolation, 0, 0, ""),
    K("clone_strategy", T_STR, clone_strategy, 0, 0, "file_copy"),
    K("name_prefix", T_STR, name_prefix, 0, 0, "dbl_"),
    K("min_ready", T_INT, min_ready, 0, 100000, "4"),
    K("max_total", T_INT, max_total, 1, 100000, "32"),
    K("max_connections", T_INT, server_max_connections, 10, 100000, "300"),
    K("start_timeout_s", T_INT, start_timeout_s, 1, 3600, "60"),
    K("reset", T_STR, reset, 0, 0, "auto"),
    K("release_grace_ms", T_INT, release_grace_ms, 0, 60000, "300"),
    /* postgres: each lease role's CONNECTION LIMIT; 0 = a fair share (pg_slots.c), -1 = none */
    K("lease_connection_limit", T_INT, lease_connection_limit, -1, 100000, "0"),
    K("temp_file_limit_mb", T_INT, temp_file_limit_mb, -1, 1048576, "4096"),
    K("docker_tls_verify", T_STR, docker_tls_verify, 0, 0, ""),
    K("docker_cert_path", T_STR, docker_cert_path, 0, 0, ""),
    K("advertise_host", T_STR, advertise_host, 0, 0, ""),
    K("docker_heartbeat_s", T_INT, docker_heartbeat_s, 1, 600, "10"),
    K("maxmemory_mb", T_INT, maxmemory_mb, 0, 1048576, "64"),
};

#define N_KEYS (sizeof keys / sizeof keys[0])

bool config_name_ok(const char *name, size_t max)
{
    size_t n = strlen(name);
    return n > 0 && n <= max && strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                             "0123456789_.-") == n;
}

static void *field_ptr(config_t *cfg, const char *section, const key_def_t *k)
{
    char *base;
    if (strcmp(k->section, "daemon") == 0)
        base = (char *)cfg;
    else if (strcmp(section, "postgres") == 0)
        base = (char *)&cfg->postgres;
    else
        base = (char *)&cfg->redis;
    return base + k->offset;
}

static const key_def_t *find_key(const char *section, const char *key)
{
    bool is_kind = strcmp(section, "postgres") == 0 || strcmp(section, "redis") == 0;
    if (!is_kind && strcmp(section, "daemon") != 0)
        return NULL;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(keys[i].section, is_kind ? "kind" : "daemon") == 0 &&
            strcmp(keys[i].key, key) == 0)
            return &keys[i];
    }
    return NULL;
}

static int set_value(void *ptr, const key_def_t *k, const char *value, char *err, size_t errlen)
{
    char *end;
    long v;
    switch (k->type) {
    case T_STR:
        if (strlen(value) >= k->size) {
            snprintf(err, errlen, "%s is too long (at most %zu bytes)", k->key, k->size - 1);
            return -1;
        }
        strcpy(ptr, value);
        return 0;
    case T_INT:
    case T_MODE:
        errno = 0;
        v = strtol(value, &end, k->type == T_MODE ? 8 : 10);
        if (errno || end == value || *end || v < k->min || v > k->max) {
            if (k->type == T_MODE)
                snprintf(err, errlen,
                         "%s must be an octal mode from 0000 to %04o such as 0660, got '%s'",
                         k->key, k->max, value);
            else
                snprintf(err, errlen, "%s must be an integer from %d to %d, got '%s'", k->key,
                         k->min, k->max, value);
            return -1;
        }
        *(int *)ptr = (int)v;
        return 0;
    }
    return -1;
}

void config_defaults(config_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    char err[256];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const key_def_t *k = &keys[i];
        if (strcmp(k->section, "daemon") == 0) {
            set_value(field_ptr(cfg, "daemon", k), k, k->def, err, sizeof err);
        } else {
            set_value(field_ptr(cfg, "postgres", k), k, k->def, err, sizeof err);
            set_value(field_ptr(cfg, "redis", k), k, k->def, err, sizeof err);
        }
    }
    strcpy(cfg->postgres.isolation, "database");
    strcpy(cfg->redis.isolation, "instance");
    strcpy(cfg->redis.image, "redis:7");
}

typedef struct load_ctx {
    config_t *cfg;
    FILE *f;
    int line;     /* the line inih is on */
    int err_line; /* of the first error found here, 0 if none */
    char *err;
    size_t errlen;
} load_ctx_t;

/* inih's line reader, doing what the library cannot be configured to do
 * at run time (it is built with multi-line values on, a 200-byte line
 * buffer and no stop on the first error):
 * - strip leading blanks, so an indented "key = value" is a key of its own
 *   and not a continuation that silently becomes the previous key's value;
 * - refuse lines longer than the buffer, which inih would split into a
 *   truncated value and a bogus next line (long comments are just skipped);
 * - count lines, and stop once an error is recorded, so the message kept
 *   is the first one and names its own line. */
static char *read_line(char *str, int num, void *stream)
{
    load_ctx_t *lc = stream;
    if (lc->err_line || !fgets(str, num, lc->f))
        return NULL;
    lc->line++;
    size_t len = strlen(str);
    if (len > 0 && len == (size_t)num - 1 && str[len - 1] != '\n') {
        bool longer = false; /* the newline alone may not have fitted */
        for (int c; (c = fgetc(lc->f)) != EOF && c != '\n';)
            longer = true;
        char first = str[strspn(str, " \t")];
        if (longer && (first != ';' && first != '#')) {
            lc->err_line = lc->line;
            snprintf(lc->err, lc->errlen,
                     "line is longer than %d characters, the most the INI parser reads; "
                     "shorten it",
                     num - 1);
            return NULL;
        }
    }
    size_t blanks = strspn(str, " \t");
    memmove(str, str + blanks, strlen(str + blanks) + 1);
    return str;
}

static tpl_cfg_t *template_section(load_ctx_t *lc, const char *name)
{
    config_t *cfg = lc->cfg;
    for (int i = 0; i < cfg->n_templates; i++)
        if (strcmp(cfg->templates[i].name, name) == 0)
            return &cfg->templates[i];
    if (!config_name_ok(name, 63)) {
        snprintf(lc->err, lc->errlen,
                 "[template.%s]: a template name is 1 to 63 of A-Z a-z 0-9 _ . -", name);
        return NULL;
    }
    if (cfg->n_templates == CFG_MAX_TEMPLATES) {
        snprintf(lc->err, lc->errlen, "too many templates (at most %d)", CFG_MAX_TEMPLATES);
        return NULL;
    }
    tpl_cfg_t *t = &cfg->templates[cfg->n_templates++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    strcpy(t->kind, "postgres");
    return t;
}

static int on_template_key(load_ctx_t *lc, const char *section, const char *name,
                           const char *value)
{
    tpl_cfg_t *t = template_section(lc, section + 9);
    if (!t)
        return 0;
    if (strcmp(name, "kind") == 0 || strcmp(name, "sql_dir") == 0) {
        char *dst = name[0] == 'k' ? t->kind : t->sql_dir;
        size_t size = name[0] == 'k' ? sizeof t->kind : sizeof t->sql_dir;
        if (strlen(value) >= size) {
            snprintf(lc->err, lc->errlen, "%s is too long (at most %zu bytes)", name, size - 1);
            return 0;
        }
        strcpy(dst, value);
        return 1;
    }
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(keys[i].section, "kind") == 0 && strcmp(keys[i].key, name) == 0) {
            if (set_value((char *)&t->k + keys[i].offset, &keys[i], value, lc->err,
                          lc->errlen) < 0)
                return 0;
            t->set |= 1ull << i;
            return 1;
        }
    }
    snprintf(lc->err, lc->errlen,
             "unknown key '%s' in [%s]; a template takes kind, sql_dir and the [postgres] keys",
             name, section);
    return 0;
}

/* Keys a template section did not give come from its kind's section,
 * wherever that section stands in the file. */
static void inherit_template_keys(config_t *cfg)
{
    for (int t = 0; t < cfg->n_templates; t++) {
        tpl_cfg_t *tc = &cfg->templates[t];
        const kind_cfg_t *from = strcmp(tc->kind, "redis") == 0 ? &cfg->redis : &cfg->postgres;
        for (size_t i = 0; i < N_KEYS; i++) {
            if (strcmp(keys[i].section, "kind") != 0 || (tc->set & (1ull << i)))
                continue;
            memcpy((char *)&tc->k + keys[i].offset, (const char *)from + keys[i].offset,
                   keys[i].size);
        }
    }
}

static void remember_where(config_t *cfg, const char *section, const char *key, int line)
{
    if (cfg->n_where == CFG_MAX_WHERE)
        return; /* errors about the rest just lack a line */
    cfg_where_t *w = &cfg->where[cfg->n_where++];
    snprintf(w->section, sizeof w->section, "%s", section);
    snprintf(w->key, sizeof w->key, "%s", key);
    w->line = line;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    load_ctx_t *lc = user;
    remember_where(lc->cfg, section, name, lc->line);
    lc->err_line = lc->line; /* cleared below if all is well */
    if (strncmp(section, "template.", 9) == 0) {
        if (!on_template_key(lc, section, name, value))
            return 0;
        lc->err_line = 0;
        return 1;
    }
    const key_def_t *k = find_key(section, name);
    if (!k) {
        if (!section[0])
            snprintf(lc->err, lc->errlen,
                     "'%s' is outside any section; put it under [daemon], [postgres] or [redis]",
                     name);
        else if (strcmp(section, "daemon") && strcmp(section, "postgres") &&
                 strcmp(section, "redis"))
            snprintf(lc->err, lc->errlen,
                     "unknown section [%s]; known: [daemon], [postgres], [redis], "
                     "[template.NAME]",
                     section);
        else
            snprintf(lc->err, lc->errlen, "unknown key '%s' in [%s]", name, section);
        return 0;
    }
    if (set_value(field_ptr(lc->cfg, section, k), k, value, lc->err, lc->errlen) < 0)
        return 0;
    lc->err_line = 0;
    return 1;
}

int config_load(config_t *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return -1;
    }
    char msg[512] = "";
    load_ctx_t lc = {.cfg = cfg, .f = f, .err = msg, .errlen = sizeof msg};
    snprintf(cfg->file, sizeof cfg->file, "%s", path);
    int rc = ini_parse_stream(read_line, &lc, on_ini, &lc);
    fclose(f);
    int line = lc.err_line;
    if (rc < 0) {
        snprintf(err, errlen, "%s: cannot parse: out of memory", path);
        return -1;
    }
    /* inih reports its own (syntax) errors only by line number. */
    if (rc > 0 && (!line || rc < line)) {
        line = rc;
        snprintf(msg, sizeof msg, "syntax error (expected [section] or key = value)");
    }
    if (line) {
        snprintf(err, errlen, "%s:%d: %s", path, line, msg);
        return -1;
    }
    inherit_template_keys(cfg);
    return 0;
}

const char *config_where(const config_t *cfg, const char *section, const char *key, char *buf,
                         size_t len)
{
    const cfg_where_t *found = NULL;
    /* the last setting wins, as in loading; else any line of the section */
    for (int i = 0; i < cfg->n_where; i++)
        if (strcmp(cfg->where[i].section, section) == 0 &&
            (strcmp(cfg->where[i].key, key) == 0 || !found || strcmp(found->key, key) != 0))
            found = &cfg->where[i];
    if (!found && strncmp(section, "template.", 9) == 0) /* inherited from [postgres] */
        return config_where(cfg, "postgres", key, buf, len);
    if (found)
        snprintf(buf, len, "%s:%d: ", cfg->file, found->line);
    else
        snprintf(buf, len, "%s", "");
    return buf;
}

/* A message about [section] key, after the FILE:LINE that set it. */
static int fail_at(const config_t *cfg, const char *section, const char *key, char *err,
                   size_t errlen, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int fail_at(const config_t *cfg, const char *section, const char *key, char *err,
                   size_t errlen, const char *fmt, ...)
{
    char where[CFG_PATH + 32], msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s%s", config_where(cfg, section, key, where, sizeof where), msg);
    return -1;
}

int config_parse_listen(const char *spec, char *host, size_t hostlen, int *port, char *err,
                        size_t errlen)
{
    const char *colon = strrchr(spec, ':');
    char *end;
    unsigned char addr[16];
    long p = colon ? strtol(colon + 1, &end, 10) : -1;
    size_t hlen = colon ? (size_t)(colon - spec) : 0;
    if (hlen >= 2 && spec[0] == '[' && spec[hlen - 1] == ']') { /* [::1]:9187 */
        spec++;
        hlen -= 2;
    }
    bool ok = colon && colon[1] && !*end && p >= 0 && p <= 65535 && hlen > 0 && hlen < hostlen;
    if (ok) {
        snprintf(host, hostlen, "%.*s", (int)hlen, spec);
        ok = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    }
    if (!ok) {
        snprintf(err, errlen,
                 "[daemon] metrics_listen must be ADDRESS:PORT such as 127.0.0.1:9187 or "
                 "[::1]:9187 (port 0: any free port), got '%s'",
                 spec);
        return -1;
    }
    *port = (int)p;
    return 0;
}

static int validate_kind(const char *name, const kind_cfg_t *k, const config_t *cfg, char *err,
                         size_t errlen)
{
    bool pg = strcmp(name, "redis") != 0;
    bool known = strcmp(k->runtime, "process") == 0 || strcmp(k->runtime, "docker") == 0 ||
                 (pg && strcmp(k->runtime, "external") == 0);
    if (!known) {
        return fail_at(
            cfg, name, "runtime", err, errlen,
            "[%s] runtime = %s is not supported by this version; use runtime = process%s", name,
            k->runtime, pg ? ", external or docker" : " or docker");
    }
    if (strcmp(k->runtime, "external") == 0 && !k->url[0]) {
        return fail_at(
            cfg, name, "url", err, errlen,
            "[%s] runtime = external needs url = postgresql://USER:PASSWORD@HOST:PORT/DB "
            "(a role with CREATEDB and CREATEROLE)",
            name);
    }
    if (strcmp(k->reset, "auto") != 0 && strcmp(k->reset, "detect") != 0 &&
        strcmp(k->reset, "clone") != 0) {
        return fail_at(cfg, name, "reset", err, errlen,
                       "[%s] reset must be auto, detect or clone, got '%s'", name, k->reset);
    }
    size_t plen = strlen(k->name_prefix);
    if (plen == 0 || plen > 20 || !(k->name_prefix[0] >= 'a' && k->name_prefix[0] <= 'z') ||
        strspn(k->name_prefix, "abcdefghijklmnopqrstuvwxyz0123456789_") != plen) {
        return fail_at(
            cfg, name, "name_prefix", err, errlen,
            "[%s] name_prefix must be 1 to 20 of a-z 0-9 _, starting with a letter; got '%s'", name,
            k->name_prefix);
    }
    if (k->min_ready > k->max_total) {
        return fail_at(cfg, name, "min_ready", err, errlen,
                       "[%s] min_ready (%d) must not exceed max_total (%d)", name, k->min_ready,
                       k->max_total);
    }
    if (k->min_ready > cfg->max_databases) {
        return fail_at(cfg, name, "min_ready", err, errlen,
                       "[%s] min_ready (%d) must not exceed [daemon] max_databases (%d)", name,
                       k->min_ready, cfg->max_databases);
    }
    return 0;
}

static int validate_templates(const config_t *cfg, char *err, size_t errlen)
{
    for (int i = 0; i < cfg->n_templates; i++) {
        const tpl_cfg_t *t = &cfg->templates[i];
        char section[80];
        snprintf(section, sizeof section, "template.%s", t->name);
        if (strcmp(t->kind, "postgres") != 0) {
            return fail_at(cfg, section, "kind", err, errlen,
                           "[%s] kind = %s: only postgres templates exist; use kind = "
                           "postgres",
                           section, t->kind);
        }
        if (strcmp(t->name, "default") == 0) {
            return fail_at(cfg, section, "", err, errlen,
                           "[%s]: \"default\" names the built-in empty template; pick "
                           "another name",
                           section);
        }
        if (strcmp(t->k.isolation, "database") != 0 && strcmp(t->k.isolation, "schema") != 0) {
            return fail_at(cfg, section, "isolation", err, errlen,
                           "[%s] isolation must be database or schema, got '%s'", section,
                           t->k.isolation);
        }
        if (t->sql_dir[0] && t->sql_dir[0] != '/') {
            return fail_at(cfg, section, "sql_dir", err, errlen,
                           "[%s] sql_dir must be an absolute path, got '%s'", section, t->sql_dir);
        }
        if (validate_kind(section, &t->k, cfg, err, errlen) < 0)
            return -1;
    }
    return 0;
}

int config_validate(const config_t *cfg, char *err, size_t errlen)
{
    if (strcmp(cfg->postgres.clone_strategy, "file_copy") != 0 &&
        strcmp(cfg->postgres.clone_strategy, "wal_log") != 0) {
        return fail_at(cfg, "postgres", "clone_strategy", err, errlen,
                       "[postgres] clone_strategy must be file_copy or wal_log, got '%s'",
                       cfg->postgres.clone_strategy);
    }
    if (strcmp(cfg->postgres.isolation, "database") != 0 &&
        strcmp(cfg->postgres.isolation, "schema") != 0) {
        return fail_at(cfg, "postgres", "isolation", err, errlen,
                       "[postgres] isolation must be database or schema, got '%s'",
                       cfg->postgres.isolation);
    }
    if (strcmp(cfg->redis.isolation, "instance") != 0 && strcmp(cfg->redis.isolation, "db") != 0) {
        return fail_at(cfg, "redis", "isolation", err, errlen,
                       "[redis] isolation must be instance or db, got '%s'", cfg->redis.isolation);
    }
    if (strcmp(cfg->log_level, "debug") && strcmp(cfg->log_level, "info") &&
        strcmp(cfg->log_level, "warn") && strcmp(cfg->log_level, "error")) {
        return fail_at(cfg, "daemon", "log_level", err, errlen,
                       "[daemon] log_level must be debug, info, warn or error, got '%s'",
                       cfg->log_level);
    }
    if (cfg->default_ttl_s > cfg->max_ttl_s) {
        return fail_at(cfg, "daemon", "default_ttl_s", err, errlen,
                       "[daemon] default_ttl_s (%d) must not exceed max_ttl_s (%d)",
                       cfg->default_ttl_s, cfg->max_ttl_s);
    }
    char host[64];
    int port;
    if (cfg->metrics_listen[0] &&
        config_parse_listen(cfg->metrics_listen, host, sizeof host, &port, err, errlen) < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", err);
        return fail_at(cfg, "daemon", "metrics_listen", err, errlen, "%s", msg);
    }
    /* [redis] is not served yet, but its limits must already make sense. */
    if (validate_kind("postgres", &cfg->postgres, cfg, err, errlen) < 0 ||
        validate_kind("redis", &cfg->redis, cfg, err, errlen) < 0)
        return -1;
    return validate_templates(cfg, err, errlen);
}

/* key = value, with a URL's password (scheme://user:PASSWORD@host) as ***:
 * --check-config's output lands in terminals, CI logs and bug reports. */
static void dump_str(FILE *f, const char *key, const char *value)
{
    const char *auth = strstr(value, "://");
    const char *at = auth ? strchr(auth + 3, '@') : NULL;
    const char *colon = at ? memchr(auth + 3, ':', (size_t)(at - auth - 3)) : NULL;
    if (colon)
        fprintf(f, "%s = %.*s***%s\n", key, (int)(colon + 1 - value), value, at);
    else
        fprintf(f, "%s = %s\n", key, value);
}

void config_dump(const config_t *cfg, void *file)
{
    FILE *f = file;
    const char *sections[] = {"daemon", "postgres", "redis"};
    for (size_t s = 0; s < 3; s++) {
        fprintf(f, "%s[%s]\n", s ? "\n" : "", sections[s]);
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            const key_def_t *k = &keys[i];
            if ((s == 0) != (strcmp(k->section, "daemon") == 0))
                continue;
            const void *p = field_ptr((config_t *)cfg, sections[s], k);
            if (k->type == T_STR)
                dump_str(f, k->key, p);
            else if (k->type == T_MODE)
                fprintf(f, "%s = %04o\n", k->key, *(const int *)p);
            else
                fprintf(f, "%s = %d\n", k->key, *(const int *)p);
        }
    }
    for (int t = 0; t < cfg->n_templates; t++) {
        const tpl_cfg_t *tc = &cfg->templates[t];
        fprintf(f, "\n[template.%s]\nkind = %s\nsql_dir = %s\n", tc->name, tc->kind, tc->sql_dir);
        for (size_t i = 0; i < N_KEYS; i++) {
            const key_def_t *k = &keys[i];
            if (strcmp(k->section, "kind") != 0)
                continue;
            const void *p = (const char *)&tc->k + k->offset;
            if (k->type == T_STR)
                dump_str(f, k->key, p);
            else
                fprintf(f, "%s = %d\n", k->key, *(const int *)p);
        }
    }
}

int config_check_paths(const config_t *cfg, char *err, size_t errlen)
{
    for (int i = 0; i < cfg->n_templates; i++) {
        const tpl_cfg_t *t = &cfg->templates[i];
        char section[80];
        snprintf(section, sizeof section, "template.%s", t->name);
        struct stat st;
        if (!t->sql_dir[0])
            continue;
        if (stat(t->sql_dir, &st) < 0) {
            return fail_at(cfg, section, "sql_dir", err, errlen,
                           "[template.%s] sql_dir %s: %s; create it or fix the path", t->name,
                           t->sql_dir, strerror(errno));
        }
        if (!S_ISDIR(st.st_mode)) {
            return fail_at(cfg, section, "sql_dir", err, errlen,
                           "[template.%s] sql_dir %s is not a directory; point it at the directory "
                           "holding the *.sql files",
                           t->name, t->sql_dir);
        }
        if (access(t->sql_dir, R_OK | X_OK) < 0) {
            return fail_at(cfg, section, "sql_dir", err, errlen,
                           "[template.%s] sql_dir %s: %s; let dbleased read it", t->name,
                           t->sql_dir, strerror(errno));
        }
    }
    return 0;
}
