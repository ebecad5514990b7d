/* Where the time of preparing one lease database goes, step by step, on
 * one server and one template: the way dbleased prepared them before issue
 * 12 ("reassign": role, clone, revoke, then a new session into the clone for
 * REASSIGN OWNED + DROP OWNED) and now ("member": the role is granted the
 * template's owner role; clone closed to connections, revoke, open), next to
 * a bare CREATE DATABASE … TEMPLATE. The three ways alternate within every
 * repetition; medians per step are printed as one JSON object.
 *
 *   prep_bench -d ADMIN_CONNINFO -t TEMPLATE_DB -o OWNER_ROLE [-n REPS]
 *
 * ADMIN_CONNINFO must name a superuser; the clones and roles it makes are
 * dropped again (prep_bench_*). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

enum { BARE, REASSIGN, MEMBER, WAYS };
enum { S_ROLE, S_CLONE, S_REVOKE, S_OPEN, S_CONNECT, S_TAKEOVER, S_TOTAL, STEPS };
static const char *const way_names[WAYS] = {"bare", "reassign", "member"};
static const char *const step_names[STEPS] = {"role",    "clone",     "revoke", "revoke_open",
                                              "connect", "take_over", "total"};

static const char *admin_ci, *tpl, *owner;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void run(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "prep_bench: %s: %s", sql, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
}

/* Format and run one statement. */
#define RUN(c, ...)                                                                                \
    do {                                                                                           \
        char q_[512];                                                                              \
        snprintf(q_, sizeof q_, __VA_ARGS__);                                                      \
        run(c, q_);                                                                                \
    } while (0)

/* The same, adding its time to step s. */
#define TIMED(t, s, c, ...)                                                                        \
    do {                                                                                           \
        double t0_ = now_ms();                                                                     \
        RUN(c, __VA_ARGS__);                                                                       \
        (t)[s] += now_ms() - t0_;                                                                  \
    } while (0)

static void prepare(PGconn *c, int way, const char *name, double *t)
{
    double t0 = now_ms();
    if (way == BARE) {
        TIMED(t, S_CLONE, c, "CREATE DATABASE \"%s\" TEMPLATE \"%s\" STRATEGY FILE_COPY", name,
              tpl);
        t[S_TOTAL] = now_ms() - t0;
        return;
    }
    /* No real password: the SCRAM hashing is the same either way. As the
     * daemon sends them: the member way's role and grant in one string,
     * its revoke and opening in another. */
    if (way == MEMBER)
        TIMED(t, S_ROLE, c,
              "CREATE ROLE \"%s\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
              "NOBYPASSRLS; GRANT \"%s\" TO \"%s\"",
              name, owner, name);
    else
        TIMED(t, S_ROLE, c,
              "CREATE ROLE \"%s\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
              "NOBYPASSRLS",
              name);
    TIMED(t, S_CLONE, c, "CREATE DATABASE \"%s\" OWNER \"%s\" TEMPLATE \"%s\" STRATEGY FILE_COPY%s",
          name, name, tpl, way == MEMBER ? " ALLOW_CONNECTIONS false" : "");
    if (way == MEMBER) {
        TIMED(t, S_OPEN, c,
              "REVOKE CONNECT, TEMPORARY ON DATABASE \"%s\" FROM PUBLIC; "
              "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS true",
              name, name);
    } else {
        TIMED(t, S_REVOKE, c, "REVOKE CONNECT, TEMPORARY ON DATABASE \"%s\" FROM PUBLIC", name);
        double t1 = now_ms();
        char ci[1024];
        snprintf(ci, sizeof ci, "%s dbname=%s", admin_ci, name);
        PGconn *in = PQconnectdb(ci);
        if (PQstatus(in) != CONNECTION_OK) {
            fprintf(stderr, "prep_bench: %s", PQerrorMessage(in));
            exit(1);
        }
        t[S_CONNECT] += now_ms() - t1;
        TIMED(t, S_TAKEOVER, in, "REASSIGN OWNED BY \"%s\" TO \"%s\"", owner, name);
        TIMED(t, S_TAKEOVER, in, "DROP OWNED BY \"%s\"", owner);
        PQfinish(in);
    }
    t[S_TOTAL] = now_ms() - t0;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int reps = 20, opt;
    while ((opt = getopt(argc, argv, "d:t:o:n:")) != -1) {
        switch (opt) {
        case 'd':
            admin_ci = optarg;
            break;
        case 't':
            tpl = optarg;
            break;
        case 'o':
            owner = optarg;
            break;
        case 'n':
            reps = atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    if (!admin_ci || !tpl || !owner || reps <= 0) {
        fprintf(stderr, "usage: prep_bench -d ADMIN_CONNINFO -t TEMPLATE_DB -o OWNER [-n REPS]\n");
        return 2;
    }
    PGconn *c = PQconnectdb(admin_ci);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "prep_bench: %s", PQerrorMessage(c));
        return 1;
    }
    RUN(c, "SET client_min_messages = warning");
    double *t = calloc((size_t)(WAYS * STEPS * reps), sizeof *t);
    for (int r = 0; r < reps; r++) {
        for (int k = 0; k < WAYS; k++) {
            int way = (k + r) % WAYS; /* rotate the order: no way always goes first */
            char name[64];
            snprintf(name, sizeof name, "prep_bench_%s_%d", way_names[way], r);
            prepare(c, way, name, &t[(way * STEPS) * reps + r * STEPS]);
            RUN(c, "DROP DATABASE \"%s\"", name);
            RUN(c, "DROP ROLE IF EXISTS \"%s\"", name);
        }
    }
    PQfinish(c);
    printf("{\"bench\":\"prep_steps\",\"template\":\"%s\",\"reps\":%d", tpl, reps);
    double *col = calloc((size_t)reps, sizeof *col);
    for (int w = 0; w < WAYS; w++) {
        printf(",\"%s\":{", way_names[w]);
        for (int s = 0; s < STEPS; s++) {
            for (int r = 0; r < reps; r++)
                col[r] = t[(w * STEPS) * reps + r * STEPS + s];
            qsort(col, (size_t)reps, sizeof *col, cmp);
            printf("%s\"%s_ms\":%.2f", s ? "," : "", step_names[s], col[reps / 2]);
        }
        printf("}");
    }
    printf("}\n");
    free(col);
    free(t);
    return 0;
}
