/* End-to-end test-suite benchmark: W worker threads run N tests; each test
 * gets a fresh isolated database, writes rows, reads them back and returns
 * the database. The same test, by approach:
 *
 *   suite_bench dblease  -s SOCK [-k postgres|redis]   lease from dbleased, release (not clean)
 *   suite_bench clone    -d CONNINFO -H HOST -P PORT   CREATE DATABASE … TEMPLATE template0
 *                                                      per test on one server, DROP after
 *                                                      (the pgtestdb approach)
 *   suite_bench server   -b BINDIR -C DATADIR_CACHE -T TMPDIR [-u USER]
 *                                                      copy an initdb'd data dir, start a
 *                                                      postgres for the test, stop it, delete it
 *                                                      (pg_tmp / Testcontainers without Docker)
 *   suite_bench server   -k redis -b REDIS_SERVER -T TMPDIR [-u USER]
 *                                                      a redis-server per test
 *   suite_bench alone    -s SOCK                      each worker leases one database and runs
 *                                                      all its tests there, each in a transaction
 *                                                      rolled back: the test's own cost, what a
 *                                                      suite would do if a release cost nothing
 *                                                      (the ceiling of any ratio to the others)
 *   suite_bench rawclone -d CONNINFO [-n N]            N CREATE DATABASE … TEMPLATE template0
 *                                                      in a row on one session, then N DROPs:
 *                                                      the server's own clone rate (the floor)
 *
 * Common: [-w WORKERS] [-n TESTS] [-r ROWS] [-t TEMPLATE] [-x items|mixed|read|ddl].
 * -t leases from (dblease) or clones from (clone, rawclone) that template
 * instead of the built-in one. -x picks the tests: items (the default: CREATE
 * TABLE, INSERT, SELECT on an empty database) or, on a template made by
 * bench/gen_template.sh, mixed (40 % read, 40 % write rows, 10 % DDL, 10 %
 * sequence only), read (90 % read, 10 % write) or ddl (every test runs DDL).
 * Prints one JSON object.
 * Servers are started as USER (-u, default nobody when root), as dbleased
 * starts its own: PostgreSQL refuses to run as root. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include "dblease.h"

static const char *mode, *kind = "postgres";
static const char *sock_path, *admin_conninfo, *clone_host = "127.0.0.1", *bindir, *cache_dir,
                  *tmp_dir = "/tmp", *run_user;
static int clone_port = 5432;
/* -t: the template to lease or clone from (template0 / the default pool when
 * absent); -x: the workload mix, for a template made by gen_template.sh. */
static const char *template_name, *mix = "items";
static int workers = 8, tests = 400, rows = 100;
/* alone: every test runs in a transaction that is rolled back. */
static bool in_rollback;
static uid_t run_uid;
static gid_t run_gid;
static atomic_int next_test, failures;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- the test itself ---------------------------------------------------- */

static int exec_ok(PGconn *c, const char *sql, ExecStatusType want)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == want;
    if (!ok)
        fprintf(stderr, "suite_bench: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok ? 0 : -1;
}

/* Tests on a gen_template.sh template, one kind each: a read-only report,
 * rows written (t45..t46 are outside the foreign-key chain), DDL, or only a
 * sequence advanced. Each kind checks what it read. */
static int test_read(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT count(*) FROM t01 JOIN t02 ON t02.parent_id = t01.id "
                            "JOIN t03 ON t03.parent_id = t02.id WHERE t01.flag");
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) > 0;
    PQclear(r);
    if (ok &&
        exec_ok(c, "SELECT * FROM v_totals ORDER BY total DESC LIMIT 10", PGRES_TUPLES_OK) < 0)
        ok = 0;
    if (!ok)
        fprintf(stderr, "suite_bench: read test saw no seed rows\n");
    return ok ? 0 : -1;
}

static int test_write(PGconn *c)
{
    char ins[256];
    snprintf(
        ins, sizeof ins,
        "INSERT INTO t45 (id, name) SELECT 100000 + g, 'new ' || g FROM generate_series(1, %d) g",
        rows);
    if (exec_ok(c, ins, PGRES_COMMAND_OK) < 0 ||
        exec_ok(c, "UPDATE t46 SET amount = amount + 1 WHERE id <= 50", PGRES_COMMAND_OK) < 0 ||
        exec_ok(c, "DELETE FROM t46 WHERE id > 190", PGRES_COMMAND_OK) < 0)
        return -1;
    PGresult *r = PQexec(c, "SELECT (SELECT count(*) FROM t45), (SELECT count(*) FROM t46)");
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) == 200 + rows &&
             atoi(PQgetvalue(r, 0, 1)) == 190;
    PQclear(r);
    if (!ok)
        fprintf(stderr, "suite_bench: write test: the database did not start from the template\n");
    return ok ? 0 : -1;
}

static int test_ddl(PGconn *c)
{
    return exec_ok(c, "CREATE TABLE extra (id int PRIMARY KEY, note text)", PGRES_COMMAND_OK) < 0 ||
                   exec_ok(c, "ALTER TABLE t47 ADD COLUMN note text", PGRES_COMMAND_OK) < 0 ||
                   exec_ok(c, "CREATE INDEX ON t48 (amount)", PGRES_COMMAND_OK) < 0
               ? -1
               : 0;
}

static int test_seq(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT nextval('t01_id_seq')");
    /* 200 seed rows: a fresh database hands out 201 next. */
    int ok = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) == 201;
    PQclear(r);
    if (!ok)
        fprintf(stderr, "suite_bench: sequence test: not the template's sequence value\n");
    return ok ? 0 : -1;
}

/* Which kind test number t is, in a mix: out of every 10 tests, mixed has
 * 4 read, 4 write, 1 DDL, 1 sequence; read has 9 read, 1 write; ddl all DDL. */
static int (*test_of(int t))(PGconn *)
{
    int k = t % 10;
    if (strcmp(mix, "ddl") == 0)
        return test_ddl;
    if (strcmp(mix, "read") == 0)
        return k < 9 ? test_read : test_write;
    return k < 4 ? test_read : k < 8 ? test_write : k < 9 ? test_ddl : test_seq;
}

/* Create a table, insert rows, read them back (-x items, the default); or
 * test t of a -x mix. */
static int pg_test(const char *conninfo, int t)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "suite_bench: connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return -1;
    }
    if (in_rollback && exec_ok(c, "BEGIN", PGRES_COMMAND_OK) < 0) {
        PQfinish(c);
        return -1;
    }
    if (strcmp(mix, "items") != 0) {
        int rc = test_of(t)(c);
        if (rc == 0 && in_rollback)
            rc = exec_ok(c, "ROLLBACK", PGRES_COMMAND_OK);
        PQfinish(c);
        return rc;
    }
    char ins[256];
    snprintf(ins, sizeof ins,
             "INSERT INTO items (id, name) SELECT g, 'item ' || g FROM generate_series(1, %d) g",
             rows);
    int rc = exec_ok(c, "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)",
                     PGRES_COMMAND_OK);
    if (rc == 0)
        rc = exec_ok(c, ins, PGRES_COMMAND_OK);
    if (rc == 0) {
        PGresult *r = PQexec(c, "SELECT count(*), sum(id) FROM items");
        long long want = (long long)rows * (rows + 1) / 2;
        if (PQresultStatus(r) != PGRES_TUPLES_OK || atoi(PQgetvalue(r, 0, 0)) != rows ||
            atoll(PQgetvalue(r, 0, 1)) != want) {
            fprintf(stderr, "suite_bench: wrong rows read back\n");
            rc = -1;
        }
        PQclear(r);
    }
    if (rc == 0 && in_rollback)
        rc = exec_ok(c, "ROLLBACK", PGRES_COMMAND_OK);
    PQfinish(c);
    return rc;
}

static int redis_test(const char *host, int port, const char *password)
{
    redisContext *c = redisConnect(host, port);
    if (!c || c->err) {
        fprintf(stderr, "suite_bench: redis connect: %s\n", c ? c->errstr : "oom");
        redisFree(c);
        return -1;
    }
    int rc = 0;
    redisReply *r;
    if (password) {
        r = redisCommand(c, "AUTH %s", password);
        if (!r || r->type == REDIS_REPLY_ERROR)
            rc = -1;
        freeReplyObject(r);
    }
    for (int i = 0; i < rows && rc == 0; i++)
        redisAppendCommand(c, "SET item:%d %d", i, i);
    for (int i = 0; i < rows && rc == 0; i++) {
        if (redisGetReply(c, (void **)&r) != REDIS_OK || r->type == REDIS_REPLY_ERROR)
            rc = -1;
        freeReplyObject(r);
    }
    if (rc == 0) {
        r = redisCommand(c, "DBSIZE");
        if (!r || r->type != REDIS_REPLY_INTEGER || r->integer != rows) {
            fprintf(stderr, "suite_bench: redis: wrong key count\n");
            rc = -1;
        }
        freeReplyObject(r);
        r = redisCommand(c, "GET item:%d", rows - 1);
        if (!r || r->type != REDIS_REPLY_STRING || atoi(r->str) != rows - 1)
            rc = -1;
        freeReplyObject(r);
    }
    if (rc < 0)
        fprintf(stderr, "suite_bench: redis test failed\n");
    redisFree(c);
    return rc;
}

/* ---- child processes ---------------------------------------------------- */

/* fork + (as run user) exec; stdout/stderr to log (or /dev/null). */
static pid_t spawn(char *const argv[], int as_user, const char *log)
{
    int fd = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (as_user && run_uid)
        (void)fchown(fd, run_uid, run_gid);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        if (as_user && run_uid != getuid() &&
            (setgroups(0, NULL) < 0 || setgid(run_gid) < 0 || setuid(run_uid) < 0))
            _exit(126);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd);
    return pid;
}

static int run_wait(char *const argv[], int as_user)
{
    pid_t pid = spawn(argv, as_user, NULL);
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* One test against a server started for it alone. */
static int server_test(int w, int t)
{
    char dir[512], data[600], log[600], port_s[16];
    snprintf(dir, sizeof dir, "%s/srv-%d-%d", tmp_dir, w, t);
    snprintf(data, sizeof data, "%s/data", dir);
    snprintf(log, sizeof log, "%s/server.log", dir);
    if (mkdir(dir, 0700) < 0 || chown(dir, run_uid, run_gid) < 0) {
        perror("suite_bench: mkdir");
        return -1;
    }
    int port = free_port(), rc = -1;
    snprintf(port_s, sizeof port_s, "%d", port);
    pid_t pid = -1;
    if (strcmp(kind, "redis") == 0) {
        /* A port free when chosen may be taken by the time the server
         * binds it (other tests pick ports too): then try another. */
        int up = 0;
        for (int attempt = 0; attempt < 3 && !up; attempt++) {
            if (attempt) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                port = free_port();
                snprintf(port_s, sizeof port_s, "%d", port);
            }
            char *argv[] = {(char *)bindir, "--port", port_s, "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", dir, NULL};
            pid = spawn(argv, 1, log);
            for (int i = 0; pid > 0 && i < 2000 && !up; i++) {
                redisContext *c = redisConnect("127.0.0.1", port);
                up = c && !c->err;
                redisFree(c);
                if (!up)
                    sleep_ms(1);
            }
        }
        rc = redis_test("127.0.0.1", port, NULL);
    } else {
        char *cp[] = {"/bin/cp", "-a", (char *)cache_dir, data, NULL};
        if (run_wait(cp, 1) < 0) {
            fprintf(stderr, "suite_bench: copying %s failed\n", cache_dir);
            return -1;
        }
        char postgres[512];
        snprintf(postgres, sizeof postgres, "%s/postgres", bindir);
        /* The flags dbleased gives its servers. */
        char *argv[] = {postgres, "-D", data, "-k", dir, "-p", port_s,
                        "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                        "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                        "-c", "dynamic_shared_memory_type=mmap", "-c", "log_min_messages=warning",
                        NULL};
        pid = spawn(argv, 1, log);
        char ci[256];
        snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=dblease dbname=postgres connect_timeout=10", port);
        for (int i = 0; pid > 0 && i < 30000 && PQping(ci) != PQPING_OK; i++)
            sleep_ms(1);
        rc = pg_test(ci, t);
    }
    if (pid > 0) { /* stop it the way test harnesses do, and wait */
        kill(pid, strcmp(kind, "redis") == 0 ? SIGTERM : SIGINT);
        waitpid(pid, NULL, 0);
    }
    char *rm[] = {"/bin/rm", "-rf", dir, NULL};
    run_wait(rm, 0);
    return rc;
}

/* ---- workers ------------------------------------------------------------ */

typedef struct worker {
    pthread_t t;
    int idx;
    double *lat; /* per test, tests entries, NaN-free: only done ones counted */
    int done;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    dbl_ctx_t *c = NULL;
    PGconn *admin = NULL;
    dbl_lease_t *held = NULL; /* alone: the worker's one database */
    int is_redis = strcmp(kind, "redis") == 0;
    if (strcmp(mode, "dblease") == 0 || strcmp(mode, "alone") == 0) {
        char name[32];
        snprintf(name, sizeof name, "suite_bench %d", w->idx);
        c = dbl_connect(&(dbl_options_t){.socket_path = sock_path, .client_name = name});
        if (!c || c->err) {
            fprintf(stderr, "suite_bench: %s\n", c ? c->errstr : "oom");
            atomic_fetch_add(&failures, 1);
            dbl_free(c);
            return NULL;
        }
        dbl_lease_opts_t o = {.kind = kind, .template_name = template_name, .wait_ms = 60000};
        if (in_rollback && dbl_lease(c, &o, &held) < 0) {
            fprintf(stderr, "suite_bench: lease: %s\n", c->errstr);
            atomic_fetch_add(&failures, 1);
            dbl_free(c);
            return NULL;
        }
    } else if (strcmp(mode, "clone") == 0) {
        admin = PQconnectdb(admin_conninfo);
        if (PQstatus(admin) != CONNECTION_OK) {
            fprintf(stderr, "suite_bench: admin connect: %s", PQerrorMessage(admin));
            atomic_fetch_add(&failures, 1);
            PQfinish(admin);
            return NULL;
        }
    }
    for (;;) {
        int t = atomic_fetch_add(&next_test, 1);
        if (t >= tests)
            break;
        double t0 = now_us();
        int rc = -1;
        if (held) {
            rc = pg_test(held->url, t);
        } else if (c) {
            dbl_lease_t *l;
            dbl_lease_opts_t o = {.kind = kind, .template_name = template_name, .wait_ms = 60000};
            if (dbl_lease(c, &o, &l) < 0) {
                fprintf(stderr, "suite_bench: lease: %s\n", c->errstr);
            } else {
                rc = is_redis ? redis_test(l->host, l->port, l->password) : pg_test(l->url, t);
                if (dbl_release(c, l->id, false) < 0)
                    rc = -1;
                dbl_lease_free(l);
            }
        } else if (admin) {
            char sql[256], ci[256];
            snprintf(sql, sizeof sql,
                     "CREATE DATABASE bench_%d_%d TEMPLATE \"%s\" STRATEGY FILE_COPY", w->idx, t,
                     template_name ? template_name : "template0");
            if (exec_ok(admin, sql, PGRES_COMMAND_OK) == 0) {
                snprintf(ci, sizeof ci, "host=%s port=%d user=dblease dbname=bench_%d_%d",
                         clone_host, clone_port, w->idx, t);
                rc = pg_test(ci, t);
                snprintf(sql, sizeof sql, "DROP DATABASE bench_%d_%d", w->idx, t);
                if (exec_ok(admin, sql, PGRES_COMMAND_OK) < 0)
                    rc = -1;
            }
        } else {
            rc = server_test(w->idx, t);
        }
        if (rc < 0) {
            atomic_fetch_add(&failures, 1);
            break;
        }
        w->lat[w->done++] = now_us() - t0;
    }
    if (held) {
        if (dbl_release(c, held->id, false) < 0)
            atomic_fetch_add(&failures, 1);
        dbl_lease_free(held);
    }
    dbl_free(c);
    PQfinish(admin);
    return NULL;
}

static int run_suite(void)
{
    worker_t *w = calloc((size_t)workers, sizeof *w);
    double t0 = now_us();
    for (int i = 0; i < workers; i++) {
        w[i].idx = i;
        w[i].lat = calloc((size_t)tests, sizeof(double));
        pthread_create(&w[i].t, NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < workers; i++)
        pthread_join(w[i].t, NULL);
    double wall = (now_us() - t0) / 1e6;
    if (atomic_load(&failures)) {
        fprintf(stderr, "suite_bench: %d test(s) failed\n", atomic_load(&failures));
        return 1;
    }
    double *all = calloc((size_t)tests, sizeof(double));
    size_t n = 0;
    for (int i = 0; i < workers; i++) {
        memcpy(all + n, w[i].lat, (size_t)w[i].done * sizeof(double));
        n += (size_t)w[i].done;
        free(w[i].lat);
    }
    qsort(all, n, sizeof *all, cmp);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += all[i];
    printf(
        "{\"bench\":\"suite\",\"approach\":\"%s\",\"kind\":\"%s\",\"mix\":\"%s\",\"tests\":%d,"
        "\"workers\":%d,"
        "\"rows\":%d,\"wall_s\":%.3f,\"tests_per_s\":%.1f,\"test_ms\":{\"mean\":%.2f,\"p50\":%.2f,"
        "\"p99\":%.2f}}\n",
        mode, kind, mix, tests, workers, rows, wall, tests / wall, sum / (double)n / 1e3,
        all[n / 2] / 1e3, all[(size_t)(n * 0.99) < n ? (size_t)(n * 0.99) : n - 1] / 1e3);
    free(all);
    free(w);
    return 0;
}

/* The server's own clone rate on one session: the floor for any pool. */
static int run_rawclone(void)
{
    PGconn *c = PQconnectdb(admin_conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "suite_bench: %s", PQerrorMessage(c));
        return 1;
    }
    char sql[128];
    double t0 = now_us();
    for (int i = 0; i < tests; i++) {
        snprintf(sql, sizeof sql, "CREATE DATABASE rawclone_%d TEMPLATE \"%s\" STRATEGY FILE_COPY",
                 i, template_name ? template_name : "template0");
        if (exec_ok(c, sql, PGRES_COMMAND_OK) < 0)
            return 1;
    }
    double t1 = now_us();
    for (int i = 0; i < tests; i++) {
        snprintf(sql, sizeof sql, "DROP DATABASE rawclone_%d", i);
        if (exec_ok(c, sql, PGRES_COMMAND_OK) < 0)
            return 1;
    }
    double t2 = now_us();
    PQfinish(c);
    printf("{\"bench\":\"rawclone\",\"databases\":%d,\"create_per_s\":%.1f,\"create_ms\":%.2f,"
           "\"drop_ms\":%.2f,\"create_drop_per_s\":%.1f}\n",
           tests, tests / ((t1 - t0) / 1e6), (t1 - t0) / tests / 1e3, (t2 - t1) / tests / 1e3,
           tests / ((t2 - t0) / 1e6));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: suite_bench dblease|alone|clone|server|rawclone [options]; see the source\n");
        return 2;
    }
    mode = argv[1];
    optind = 2;
    int opt;
    while ((opt = getopt(argc, argv, "s:k:d:H:P:b:C:T:u:w:n:r:t:x:")) != -1) {
        switch (opt) {
        case 's': sock_path = optarg; break;
        case 'k': kind = optarg; break;
        case 'd': admin_conninfo = optarg; break;
        case 'H': clone_host = optarg; break;
        case 'P': clone_port = atoi(optarg); break;
        case 'b': bindir = optarg; break;
        case 'C': cache_dir = optarg; break;
        case 'T': tmp_dir = optarg; break;
        case 'u': run_user = optarg; break;
        case 'w': workers = atoi(optarg); break;
        case 'n': tests = atoi(optarg); break;
        case 'r': rows = atoi(optarg); break;
        case 't': template_name = optarg; break;
        case 'x': mix = optarg; break;
        default: return 2;
        }
    }
    if (workers <= 0 || tests <= 0 || rows <= 0)
        return 2;
    run_uid = getuid();
    run_gid = getgid();
    if (getuid() == 0) {
        struct passwd *pw = getpwnam(run_user ? run_user : "nobody");
        if (!pw) {
            fprintf(stderr, "suite_bench: no user %s\n", run_user ? run_user : "nobody");
            return 2;
        }
        run_uid = pw->pw_uid;
        run_gid = pw->pw_gid;
    }
    if (strcmp(mode, "rawclone") == 0)
        return admin_conninfo ? run_rawclone() : 2;
    if (strcmp(mode, "alone") == 0) {
        /* A rollback undoes all but a sequence's nextval. */
        if (!sock_path || strcmp(kind, "postgres") != 0 || strcmp(mix, "mixed") == 0) {
            fprintf(stderr, "suite_bench: alone needs -s SOCK and PostgreSQL, and a mix without "
                            "sequence tests (-x read, ddl or items): a rollback does not undo "
                            "nextval\n");
            return 2;
        }
        in_rollback = true;
        return run_suite();
    }
    if (strcmp(mode, "dblease") == 0 || strcmp(mode, "clone") == 0 ||
        strcmp(mode, "server") == 0) {
        if ((strcmp(mode, "clone") == 0 && !admin_conninfo) ||
            (strcmp(mode, "server") == 0 && (!bindir || (!cache_dir && strcmp(kind, "redis") != 0)))) {
            fprintf(stderr, "suite_bench: missing options for %s\n", mode);
            return 2;
        }
        return run_suite();
    }
    fprintf(stderr, "suite_bench: unknown mode %s\n", mode);
    return 2;
}
