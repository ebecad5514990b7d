/* The daemon's configuration (daemon/base/config.c): built-in defaults, INI files
 * over them, cross-key validation, and --check-config's dump. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

typedef struct fixture {
    config_t cfg;
    char path[64]; /* the temp file of this test, if any */
    char err[512];
} fixture_t;

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    config_defaults(&fx->cfg);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    if (fx->path[0])
        unlink(fx->path);
    free(fx);
    return 0;
}

/* Write text to this test's temp file and load it over fx->cfg. */
static int load(fixture_t *fx, const char *text)
{
    if (!fx->path[0]) {
        snprintf(fx->path, sizeof fx->path, "/tmp/dblease-test-config-XXXXXX");
        int fd = mkstemp(fx->path);
        assert_true(fd >= 0);
        close(fd);
    }
    FILE *f = fopen(fx->path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    fx->err[0] = '\0';
    return config_load(&fx->cfg, fx->path, fx->err, sizeof fx->err);
}

/* Loading text fails with an error that contains each of the strings given. */
static void assert_load_fails(fixture_t *fx, const char *text, ...) __attribute__((sentinel));
static void assert_load_fails(fixture_t *fx, const char *text, ...)
{
    assert_int_equal(load(fx, text), -1);
    va_list ap;
    va_start(ap, text);
    for (const char *want; (want = va_arg(ap, const char *));) {
        if (!strstr(fx->err, want))
            fail_msg("error \"%s\" lacks \"%s\"", fx->err, want);
    }
    va_end(ap);
}

static void assert_invalid(const config_t *cfg, const char *want)
{
    char err[512] = "";
    assert_int_equal(config_validate(cfg, err, sizeof err), -1);
    if (!strstr(err, want))
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

/* "path:line: " as the error should start. */
static const char *at(const fixture_t *fx, int line)
{
    static char buf[96];
    snprintf(buf, sizeof buf, "%s:%d: ", fx->path, line);
    return buf;
}

/* Validation fails with an error that starts "path:line: " and says what. */
static void assert_invalid_at(const fixture_t *fx, int line, const char *what)
{
    char want[256];
    snprintf(want, sizeof want, "%s%s", at(fx, line), what);
    assert_invalid(&fx->cfg, want);
}

/* ---- Defaults ------------------------------------------------------------ */

static void test_daemon_defaults(void **state)
{
    const config_t *c = &((fixture_t *)*state)->cfg;
    assert_string_equal(c->socket, "");    /* resolved later, by the usual rule */
    assert_string_equal(c->state_dir, ""); /* likewise */
    assert_string_equal(c->run_as, "");
    assert_string_equal(c->socket_group, "");
    assert_string_equal(c->metrics_listen, ""); /* off */
    assert_string_equal(c->log_level, "info");
    assert_int_equal(c->socket_mode, 0660);
    assert_int_equal(c->max_databases, 200);
    assert_int_equal(c->max_clients, 1024);
    assert_int_equal(c->max_leases_per_uid, 16);  /* tenants: below a pool's max_total */
    assert_int_equal(c->max_clients_per_uid, 64);
    assert_int_equal(c->postgres.lease_connection_limit, 0); /* a fair share */
    assert_int_equal(c->default_ttl_s, 900);
    assert_int_equal(c->max_ttl_s, 86400);
    assert_int_equal(c->default_wait_ms, 10000);
    assert_int_equal(c->shutdown_timeout_s, 10);
}

static void test_kind_defaults(void **state)
{
    const config_t *c = &((fixture_t *)*state)->cfg;
    const kind_cfg_t *kinds[] = {&c->postgres, &c->redis};
    for (size_t i = 0; i < 2; i++) {
        const kind_cfg_t *k = kinds[i];
        assert_string_equal(k->runtime, "process");
        assert_string_equal(k->bin_dir, "");
        assert_string_equal(k->command, "");
        assert_string_equal(k->docker_host, "");
        assert_string_equal(k->url, "");
        assert_string_equal(k->clone_strategy, "file_copy");
        assert_int_equal(k->min_ready, 4);
        assert_int_equal(k->max_total, 32);
        assert_int_equal(k->server_max_connections, 300);
        assert_int_equal(k->start_timeout_s, 60);
    }
    assert_string_equal(c->postgres.image, "postgres:16"); /* the official images */
    assert_string_equal(c->redis.image, "redis:7");
    assert_string_equal(c->postgres.name_prefix, "dbl_");
    assert_string_equal(c->postgres.isolation, "database");
    assert_string_equal(c->redis.isolation, "instance");
}

static void test_defaults_are_valid(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(config_validate(&fx->cfg, fx->err, sizeof fx->err), 0);
}

/* ---- Loading ------------------------------------------------------------- */

static void test_file_overrides_only_the_keys_it_names(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(load(fx, "; a comment\n"
                              "# another\n"
                              "\n"
                              "[daemon]\n"
                              "socket = /tmp/x/dblease.sock\n"
                              "max_databases=50\n"
                              "  log_level   =   debug  \n"
                              "[postgres]\n"
                              "min_ready = 2 ; inline comment\n"
                              "bin_dir = /usr/lib/postgresql/16/bin\n"
                              "[redis]\n"
                              "max_total = 7\n"),
                     0);
    const config_t *c = &fx->cfg;
    assert_string_equal(c->socket, "/tmp/x/dblease.sock");
    assert_int_equal(c->max_databases, 50);
    assert_string_equal(c->log_level, "debug");
    assert_int_equal(c->postgres.min_ready, 2);
    assert_string_equal(c->postgres.bin_dir, "/usr/lib/postgresql/16/bin");
    assert_int_equal(c->redis.max_total, 7);
    /* [postgres] and [redis] share key names, not values */
    assert_int_equal(c->postgres.max_total, 32);
    assert_int_equal(c->redis.min_ready, 4);
    assert_int_equal(c->default_ttl_s, 900);
}

/* inih would take an indented line for a continuation of the previous value,
 * so run_as would silently become "log_level = debug". */
static void test_indented_key_is_a_key_of_its_own(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(load(fx, "[daemon]\nrun_as = x\n    log_level = debug\n\tmax_clients = 5\n"),
                     0);
    assert_string_equal(fx->cfg.run_as, "x");
    assert_string_equal(fx->cfg.log_level, "debug");
    assert_int_equal(fx->cfg.max_clients, 5);
}

static void test_empty_value_clears_a_string(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(load(fx, "[postgres]\nruntime =\n"), 0);
    assert_string_equal(fx->cfg.postgres.runtime, "");
}

static void test_missing_file_is_an_error_naming_it(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(config_load(&fx->cfg, "/nonexistent/dbleased.conf", fx->err, sizeof fx->err),
                     -1);
    assert_non_null(strstr(fx->err, "/nonexistent/dbleased.conf"));
}

static void test_unknown_key_is_named_with_file_and_line(void **state)
{
    fixture_t *fx = *state;
    assert_load_fails(fx, "[daemon]\nmax_databases = 10\nmax_database = 10\n",
                      "unknown key 'max_database' in [daemon]", NULL);
    assert_non_null(strstr(fx->err, at(fx, 3)));
}

static void test_unknown_section_is_an_error(void **state)
{
    fixture_t *fx = *state;
    assert_load_fails(fx, "[deamon]\nsocket = /tmp/s\n", "unknown section [deamon]", "[daemon]",
                      NULL);
    assert_non_null(strstr(fx->err, at(fx, 2)));
}

static void test_key_outside_any_section_is_an_error(void **state)
{
    fixture_t *fx = *state;
    assert_load_fails(fx, "socket = /tmp/s\n", "'socket' is outside any section", "[daemon]",
                      NULL);
}

static void test_syntax_error_is_reported_with_its_line(void **state)
{
    fixture_t *fx = *state;
    assert_load_fails(fx, "[daemon]\n\nthis is not a key\n", "syntax error", NULL);
    assert_non_null(strstr(fx->err, at(fx, 3)));
}

static void test_bad_integer_error_states_the_range(void **state)
{
    fixture_t *fx = *state;
    assert_load_fails(fx, "[postgres]\nmin_ready = lots\n",
                      "min_ready must be an integer from 0 to 100000, got 'lots'", NULL);
}

static void test_out_of_range_integer_error_states_the_range(void **state)
{
    fixture_t *fx = *state;
    assert_load_fails(fx, "[daemon]\nmax_databases = 0\n", "from 1 to 100000", NULL);
    assert_load_fails(fx, "[daemon]\nmax_databases = 100001\n", "from 1 to 100000", NULL);
    assert_load_fails(fx, "[daemon]\nmax_databases = 99999999999999999999\n", "from 1 to 100000",
                      NULL);
}

static void test_integer_with_trailing_junk_is_rejected(void **state)
{
    fixture_t *fx = *state;
    assert_load_fails(fx, "[redis]\nmax_total = 12abc\n", "max_total", NULL);
    assert_load_fails(fx, "[redis]\nmax_total =\n", "max_total", NULL);
    assert_int_equal(fx->cfg.redis.max_total, 32);
}

static void test_socket_mode_is_octal(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(load(fx, "[daemon]\nsocket_mode = 0600\n"), 0);
    assert_int_equal(fx->cfg.socket_mode, 0600);
    assert_int_equal(load(fx, "[daemon]\nsocket_mode = 770\n"), 0);
    assert_int_equal(fx->cfg.socket_mode, 0770);
}

static void test_socket_mode_rejects_non_octal_and_out_of_range(void **state)
{
    fixture_t *fx = *state;
    static const char *const bad[] = {"0668", "01777", "-1", "rw-rw----", "0x1b0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "[daemon]\nsocket_mode = %s\n", bad[i]);
        assert_load_fails(fx, text, "socket_mode must be an octal mode from 0000 to 0777", NULL);
    }
}

static void test_too_long_string_is_rejected(void **state)
{
    fixture_t *fx = *state;
    assert_load_fails(fx,
                      "[daemon]\nrun_as = "
                      "a123456789b123456789c123456789d123456789e123456789f123456789g1234\n",
                      "run_as is too long (at most 63 bytes)", NULL);
}

static void test_template_section_inherits_postgres_keys_given_after_it(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(load(fx, "[template.app]\nsql_dir = /srv/app/sql\nmax_total = 7\n"
                              "[postgres]\nmin_ready = 2\nisolation = schema\n"),
                     0);
    assert_int_equal(fx->cfg.n_templates, 1);
    const tpl_cfg_t *t = &fx->cfg.templates[0];
    assert_string_equal(t->name, "app");
    assert_string_equal(t->kind, "postgres");
    assert_string_equal(t->sql_dir, "/srv/app/sql");
    assert_int_equal(t->k.max_total, 7);  /* its own */
    assert_int_equal(t->k.min_ready, 2);  /* from [postgres], which came later */
    assert_string_equal(t->k.isolation, "schema");
}

static void test_template_section_with_bad_name_or_key_is_an_error(void **state)
{
    fixture_t *fx = *state;
    assert_load_fails(fx, "[template.no spaces]\nkind = postgres\n", "template name", NULL);
    assert_load_fails(fx, "[template.app]\nsql_dri = /x\n", "unknown key 'sql_dri'",
                      "[template.app]", NULL);
    assert_non_null(strstr(fx->err, at(fx, 2)));
}

static void test_template_named_default_is_invalid(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(load(fx, "[template.default]\nmin_ready = 1\n"), 0);
    assert_invalid(&fx->cfg, "names the built-in empty template");
}

static void test_template_with_relative_sql_dir_is_invalid(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(load(fx, "[template.app]\nsql_dir = migrations\n"), 0);
    assert_invalid(&fx->cfg, "sql_dir must be an absolute path");
}

/* The release path is chosen per template; the default detects (auto). */
static void test_reset_policy_is_per_template_with_auto_default(void **state)
{
    fixture_t *fx = *state;
    assert_string_equal(fx->cfg.postgres.reset, "auto");
    assert_int_equal(fx->cfg.postgres.release_grace_ms, 300);
    assert_int_equal(load(fx, "[template.ddl]\nreset = clone\nrelease_grace_ms = 50\n"
                              "[template.app]\nsql_dir = /srv\n"),
                     0);
    assert_string_equal(fx->cfg.templates[0].k.reset, "clone");
    assert_int_equal(fx->cfg.templates[0].k.release_grace_ms, 50);
    assert_string_equal(fx->cfg.templates[1].k.reset, "auto");
    strcpy(fx->cfg.templates[1].k.reset, "sometimes");
    assert_invalid(&fx->cfg, "reset must be auto, detect or clone, got 'sometimes'");
}

/* Redis memory per lease: on by default, 0 turns it off, nonsense is named. */
static void test_redis_maxmemory_has_a_default_and_a_range(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(fx->cfg.redis.maxmemory_mb, 64);
    assert_int_equal(load(fx, "[redis]\nmaxmemory_mb = 0\n"), 0);
    assert_int_equal(fx->cfg.redis.maxmemory_mb, 0);
    assert_int_equal(load(fx, "[redis]\nmaxmemory_mb = -1\n"), -1);
    assert_non_null(strstr(fx->err, "maxmemory_mb must be an integer from 0 to 1048576"));
}

/* The first problem is the one reported, with its own line: later ones must
 * not overwrite its message. */
static void test_first_error_is_reported_with_its_line(void **state)
{
    fixture_t *fx = *state;
    assert_load_fails(fx, "[daemon]\nbogus = 1\nmax_databases = 0\nalso_bogus = 2\n",
                      "unknown key 'bogus'", NULL);
    assert_non_null(strstr(fx->err, at(fx, 2)));
}

static void test_syntax_error_before_a_bad_key_is_the_one_reported(void **state)
{
    fixture_t *fx = *state;
    assert_load_fails(fx, "[daemon]\nnot a key\nbogus = 1\n", "syntax error", NULL);
    assert_non_null(strstr(fx->err, at(fx, 2)));
}

/* inih reads at most 199 characters a line; longer ones must not be split
 * into a truncated value and a bogus next line. */
static void test_overlong_line_is_an_error_with_its_line(void **state)
{
    fixture_t *fx = *state;
    char text[600];
    snprintf(text, sizeof text, "[postgres]\nurl = postgresql://%0250d\nbogus = 1\n", 0);
    assert_load_fails(fx, text, "longer than", NULL);
    assert_non_null(strstr(fx->err, at(fx, 2)));
    assert_string_equal(fx->cfg.postgres.url, "");
}

static void test_overlong_comment_is_ignored(void **state)
{
    fixture_t *fx = *state;
    char text[600];
    snprintf(text, sizeof text, "[postgres]\n; %0300d\nmin_ready = 3\n", 0);
    assert_int_equal(load(fx, text), 0);
    assert_int_equal(fx->cfg.postgres.min_ready, 3);
}

static void test_line_filling_the_parser_buffer_exactly_is_read_whole(void **state)
{
    fixture_t *fx = *state;
    char text[600];
    /* "bin_dir = /" is 11 characters; with 188 more the line is 199. */
    snprintf(text, sizeof text, "[postgres]\nbin_dir = /%0188d\nbogus = 1\n", 0);
    assert_load_fails(fx, text, "unknown key 'bogus'", NULL);
    assert_non_null(strstr(fx->err, at(fx, 3)));
    assert_int_equal(strlen(fx->cfg.postgres.bin_dir), 189);
}

/* ---- Validation ---------------------------------------------------------- */

static void test_min_ready_above_max_total_is_invalid(void **state)
{
    config_t *c = &((fixture_t *)*state)->cfg;
    c->postgres.min_ready = 33;
    assert_invalid(c, "[postgres] min_ready (33) must not exceed max_total (32)");
}

static void test_redis_limits_are_validated_too(void **state)
{
    config_t *c = &((fixture_t *)*state)->cfg;
    c->redis.min_ready = 40;
    assert_invalid(c, "[redis] min_ready (40) must not exceed max_total (32)");
}

static void test_min_ready_above_max_databases_is_invalid(void **state)
{
    config_t *c = &((fixture_t *)*state)->cfg;
    c->max_databases = 3;
    assert_invalid(c, "must not exceed [daemon] max_databases (3)");
}

static void test_default_ttl_above_max_ttl_is_invalid(void **state)
{
    config_t *c = &((fixture_t *)*state)->cfg;
    c->default_ttl_s = 100;
    c->max_ttl_s = 99;
    assert_invalid(c, "default_ttl_s (100) must not exceed max_ttl_s (99)");
}

static void test_unsupported_runtime_is_invalid(void **state)
{
    config_t *c = &((fixture_t *)*state)->cfg;
    strcpy(c->postgres.runtime, "kubernetes");
    assert_invalid(c, "runtime = kubernetes is not supported by this version; use runtime = "
                      "process, external or docker");
    config_defaults(c);
    strcpy(c->redis.runtime, "external");
    assert_invalid(c, "[redis] runtime = external is not supported by this version; use runtime "
                      "= process");
}

static void test_external_runtime_needs_a_url(void **state)
{
    config_t *c = &((fixture_t *)*state)->cfg;
    strcpy(c->postgres.runtime, "external");
    assert_invalid(c, "runtime = external needs url =");
    strcpy(c->postgres.url, "postgresql://u:p@db:5432/postgres");
    char err[256];
    assert_int_equal(config_validate(c, err, sizeof err), 0);
}

static void test_name_prefix_must_be_a_plain_identifier(void **state)
{
    config_t *c = &((fixture_t *)*state)->cfg;
    strcpy(c->postgres.name_prefix, "Bad-Prefix");
    assert_invalid(c, "name_prefix must be 1 to 20 of a-z 0-9 _");
}

static void test_unknown_isolation_is_invalid(void **state)
{
    config_t *c = &((fixture_t *)*state)->cfg;
    strcpy(c->postgres.isolation, "table");
    assert_invalid(c, "[postgres] isolation must be database or schema, got 'table'");
}

static void test_bad_log_level_is_invalid(void **state)
{
    config_t *c = &((fixture_t *)*state)->cfg;
    strcpy(c->log_level, "verbose");
    assert_invalid(c, "log_level must be debug, info, warn or error, got 'verbose'");
}

/* ---- Dump ---------------------------------------------------------------- */

static char *dump(const config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    config_dump(cfg, f);
    fclose(f);
    return buf;
}

/* Dump, load the dump over fresh defaults, dump again: same text. */
static void assert_round_trips(fixture_t *fx)
{
    char *first = dump(&fx->cfg);
    config_defaults(&fx->cfg);
    if (load(fx, first) != 0)
        fail_msg("reloading the dump failed: %s", fx->err);
    char *second = dump(&fx->cfg);
    assert_string_equal(second, first);
    free(first);
    free(second);
}

static void test_dump_of_defaults_reloads_to_the_same_config(void **state)
{
    fixture_t *fx = *state;
    assert_round_trips(fx);
    assert_int_equal(fx->cfg.socket_mode, 0660);
    assert_string_equal(fx->cfg.redis.isolation, "instance");
}

static void test_dump_of_every_key_changed_reloads_to_the_same_config(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(load(fx, "[daemon]\n"
                              "socket = /run/x/d.sock\n"
                              "state_dir = /var/lib/x\n"
                              "run_as = dblease\n"
                              "socket_mode = 0600\n"
                              "socket_group = ci\n"
                              "metrics_listen = 127.0.0.1:9187\n"
                              "log_level = warn\n"
                              "max_databases = 7\n"
                              "max_clients = 8\n"
                              "default_ttl_s = 9\n"
                              "max_ttl_s = 10\n"
                              "default_wait_ms = 0\n"
                              "shutdown_timeout_s = 12\n"
                              "[postgres]\n"
                              "runtime = docker\n"
                              "bin_dir = /opt/pg/bin\n"
                              "image = postgres:16\n"
                              "command = postgres -c fsync=off\n"
                              "docker_host = unix:///run/docker.sock\n"
                              "url = postgresql://u:p@h:5432/db?sslmode=disable\n"
                              "isolation = schema\n"
                              "clone_strategy = wal_log\n"
                              "min_ready = 1\n"
                              "max_total = 2\n"
                              "max_connections = 30\n"
                              "start_timeout_s = 5\n"
                              "[redis]\n"
                              "runtime = external\n"
                              "url = redis://h:6379\n"
                              "isolation = db\n"
                              "min_ready = 0\n"),
                     0);
    assert_round_trips(fx);
    assert_int_equal(fx->cfg.socket_mode, 0600);
    assert_string_equal(fx->cfg.postgres.command, "postgres -c fsync=off");
    assert_string_equal(fx->cfg.redis.isolation, "db");
    assert_string_equal(fx->cfg.postgres.clone_strategy, "wal_log");
    assert_int_equal(fx->cfg.redis.min_ready, 0);
}

/* ---- Errors found after loading still name FILE:LINE (issue 14) --------- */

static void test_bad_enum_value_names_file_and_line(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(load(fx, "[daemon]\nmax_databases = 10\n[postgres]\nisolation = rows\n"), 0);
    assert_invalid_at(fx, 4, "[postgres] isolation must be");
}

static void test_template_key_names_its_own_line(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(load(fx, "[postgres]\nmax_total = 8\n[template.app]\nmin_ready = 9\n"), 0);
    assert_invalid_at(fx, 4, "[template.app] min_ready (9) must not exceed");
}

static void test_metrics_listen_needs_an_address_and_a_port(void **state)
{
    fixture_t *fx = *state;
    char host[64], err[256];
    int port = -1;
    assert_int_equal(config_parse_listen("127.0.0.1:9187", host, sizeof host, &port, err, sizeof err), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9187);
    assert_int_equal(config_parse_listen("[::1]:0", host, sizeof host, &port, err, sizeof err), 0);
    assert_string_equal(host, "::1");
    const char *bad[] = {"127.0.0.1", "127.0.0.1:", ":9187", "127.0.0.1:70000", "localhost:9187",
                         "127.0.0.1:91x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(config_parse_listen(bad[i], host, sizeof host, &port, err, sizeof err), -1);
    assert_int_equal(load(fx, "[daemon]\n\nmetrics_listen = 127.0.0.1\n"), 0);
    assert_invalid_at(fx, 3, "[daemon] metrics_listen must be ADDRESS:PORT");
}

static void test_dump_shows_no_url_password(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(load(fx, "[postgres]\nurl = postgresql://admin:hunter2@db:5432/postgres\n"), 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_dump(&fx->cfg, f);
    fclose(f);
    assert_null(strstr(text, "hunter2"));
    assert_non_null(strstr(text, "url = postgresql://admin:***@db:5432/postgres\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_daemon_defaults),
        T(test_kind_defaults),
        T(test_defaults_are_valid),
        T(test_file_overrides_only_the_keys_it_names),
        T(test_indented_key_is_a_key_of_its_own),
        T(test_empty_value_clears_a_string),
        T(test_missing_file_is_an_error_naming_it),
        T(test_unknown_key_is_named_with_file_and_line),
        T(test_unknown_section_is_an_error),
        T(test_key_outside_any_section_is_an_error),
        T(test_syntax_error_is_reported_with_its_line),
        T(test_bad_integer_error_states_the_range),
        T(test_out_of_range_integer_error_states_the_range),
        T(test_integer_with_trailing_junk_is_rejected),
        T(test_socket_mode_is_octal),
        T(test_socket_mode_rejects_non_octal_and_out_of_range),
        T(test_too_long_string_is_rejected),
        T(test_template_section_inherits_postgres_keys_given_after_it),
        T(test_template_section_with_bad_name_or_key_is_an_error),
        T(test_template_named_default_is_invalid),
        T(test_template_with_relative_sql_dir_is_invalid),
        T(test_first_error_is_reported_with_its_line),
        T(test_syntax_error_before_a_bad_key_is_the_one_reported),
        T(test_overlong_line_is_an_error_with_its_line),
        T(test_overlong_comment_is_ignored),
        T(test_line_filling_the_parser_buffer_exactly_is_read_whole),
        T(test_min_ready_above_max_total_is_invalid),
        T(test_redis_limits_are_validated_too),
        T(test_min_ready_above_max_databases_is_invalid),
        T(test_default_ttl_above_max_ttl_is_invalid),
        T(test_unsupported_runtime_is_invalid),
        T(test_external_runtime_needs_a_url),
        T(test_name_prefix_must_be_a_plain_identifier),
        T(test_unknown_isolation_is_invalid),
        T(test_bad_log_level_is_invalid),
        T(test_reset_policy_is_per_template_with_auto_default),
        T(test_redis_maxmemory_has_a_default_and_a_range),
        T(test_dump_of_defaults_reloads_to_the_same_config),
        T(test_dump_of_every_key_changed_reloads_to_the_same_config),
        T(test_bad_enum_value_names_file_and_line),
        T(test_template_key_names_its_own_line),
        T(test_metrics_listen_needs_an_address_and_a_port),
        T(test_dump_shows_no_url_password),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
