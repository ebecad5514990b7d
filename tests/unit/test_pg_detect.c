/* The detector's verdict (daemon/engine/pg_detect.c): which differences
 * make a released database dirty, which only need its rows reloaded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pg_detect.h"

static pgd_rel_t rel(unsigned relid, unsigned target, const char *tup, const char *maint)
{
    pgd_rel_t r = {.relid = relid, .target = target};
    strcpy(r.tup, tup);
    strcpy(r.maint, maint);
    return r;
}

static pgd_seq_t seq(unsigned oid, const char *value)
{
    pgd_seq_t q = {.oid = oid};
    strcpy(q.value, value);
    return q;
}

/* The baseline: two tables with counters, two sequences. */
static pgd_rel_t base_rels[] = {{16400, 16400, "200:0:1", "0:0"}, {16410, 16410, "1000:0:5", "0:0"}};
static pgd_seq_t base_seqs[] = {{16390, "200:true", "public.t01_id_seq"},
                                 {16395, "1:false", "app.\"Odd seq\""}};
static const pgd_state_t base = {"cafe", base_rels, 2, base_seqs, 2};

/* The state at release, and what the comparison said about it. */
typedef struct {
    pgd_rel_t rels[4];
    pgd_seq_t seqs[4];
    pgd_state_t s;
    int k;          /* tables to reload */
    unsigned first; /* the first of them */
    bool seqs_moved;
} now_t;

static void start_from_base(now_t *n)
{
    memcpy(n->rels, base_rels, sizeof base_rels);
    memcpy(n->seqs, base_seqs, sizeof base_seqs);
    n->s = (pgd_state_t){"cafe", n->rels, 2, n->seqs, 2};
}

static void add_rel(now_t *n, pgd_rel_t r)
{
    n->rels[n->s.nrels++] = r;
}

static reset_verdict_t verdict(now_t *n)
{
    unsigned *changed;
    reset_verdict_t v = pgd_compare(&base, &n->s, &changed, &n->k, &n->seqs_moved);
    n->first = n->k ? changed[0] : 0;
    free(changed);
    return v;
}

static void nothing_changed_is_clean(void **state)
{
    (void)state;
    now_t n;
    start_from_base(&n);
    assert_int_equal(verdict(&n), VERDICT_CLEAN);
    assert_int_equal(n.k, 0);
    assert_false(n.seqs_moved);
}

static void catalog_or_maintenance_changes_are_dirty(void **state)
{
    (void)state;
    now_t n;
    start_from_base(&n);
    strcpy(n.s.catalogs, "beef"); /* DDL, temp tables, large objects, TRUNCATE */
    assert_int_equal(verdict(&n), VERDICT_DIRTY);
    start_from_base(&n);
    strcpy(n.rels[0].maint, "1:0"); /* VACUUM: planner statistics a reload cannot restore */
    assert_int_equal(verdict(&n), VERDICT_DIRTY);
    start_from_base(&n);
    n.s.nrels = 1; /* a relation's counters vanished: dropped */
    assert_int_equal(verdict(&n), VERDICT_DIRTY);
    start_from_base(&n);
    n.seqs[2] = seq(16500, "1:false"); /* a new sequence */
    n.s.nseqs = 3;
    assert_int_equal(verdict(&n), VERDICT_DIRTY);
    start_from_base(&n);
    add_rel(&n, rel(16600, 16600, "0:0:0", "0:1")); /* ANALYZE of a table untouched so far */
    assert_int_equal(verdict(&n), VERDICT_DIRTY);
}

static void written_rows_are_reloaded_table_by_table(void **state)
{
    (void)state;
    now_t n;
    start_from_base(&n);
    strcpy(n.rels[1].tup, "1001:0:5");
    assert_int_equal(verdict(&n), VERDICT_ROWS);
    assert_int_equal(n.k, 1);
    assert_int_equal(n.first, 16410);
    assert_false(n.seqs_moved);
    /* a toast table's counters name its parent table */
    start_from_base(&n);
    add_rel(&n, rel(16420, 16410, "3:0:0", "0:0"));
    assert_int_equal(verdict(&n), VERDICT_ROWS);
    assert_int_equal(n.k, 1);
    assert_int_equal(n.first, 16410);
    /* a table with no counters at baseline that was written */
    start_from_base(&n);
    add_rel(&n, rel(16700, 16700, "1:0:1", "0:0"));
    assert_int_equal(verdict(&n), VERDICT_ROWS);
    assert_int_equal(n.first, 16700);
}

/* setval(seq, n, false) on a never-called sequence shows only here. */
static void moved_sequences_are_rows(void **state)
{
    (void)state;
    now_t n;
    start_from_base(&n);
    strcpy(n.seqs[1].value, "5:false");
    assert_int_equal(verdict(&n), VERDICT_ROWS);
    assert_int_equal(n.k, 0);
    assert_true(n.seqs_moved);
    start_from_base(&n);
    strcpy(n.seqs[0].value, "200:false");
    assert_int_equal(verdict(&n), VERDICT_ROWS);
}

static void shared_state_must_match_with_no_sessions(void **state)
{
    (void)state;
    pgd_shared_t a = {"2026-11-29 10:00", "d1", 0, "0:0:0"}, b = a;
    assert_true(pgd_shared_equal(&a, &b, false));
    assert_true(pgd_shared_equal(&a, &b, true));
    b.sessions = 1;
    assert_false(pgd_shared_equal(&a, &b, false));
    b = a;
    strcpy(b.epoch, "2026-11-29 11:00"); /* a crash-restart threw the counters away */
    assert_false(pgd_shared_equal(&a, &b, false));
    b = a;
    strcpy(b.digest, "d2");
    assert_false(pgd_shared_equal(&a, &b, false));
}

/* The built-in template is checked from outside the database: any tuple a
 * lease inserted, updated or deleted there (catalogs too: a table, a temp
 * table, a large object) moves the database's counters. */
static void database_counters_count_only_when_asked(void **state)
{
    (void)state;
    pgd_shared_t a = {"2026-11-29 10:00", "d1", 0, "0:0:0"}, b = a;
    strcpy(b.dbtup, "14:3:0");
    assert_true(pgd_shared_equal(&a, &b, false)); /* rows: the in-database part decides */
    assert_false(pgd_shared_equal(&a, &b, true));
    b.dbtup[0] = '\0'; /* the database is gone from pg_stat_database */
    assert_false(pgd_shared_equal(&a, &b, true));
}

/* A result as the detector's queries return it: kind, key, a, b, target. */
static PGresult *result_of(const char *rows[][5], int n)
{
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc att[5] = {{0}};
    const char *names[5] = {"k", "key", "a", "b", "target"};
    for (int i = 0; i < 5; i++) {
        att[i].name = (char *)names[i];
        att[i].typid = 25;
        att[i].typlen = -1;
        att[i].atttypmod = -1;
    }
    assert_true(PQsetResultAttrs(res, 5, att));
    for (int r = 0; r < n; r++)
        for (int c = 0; c < 5; c++)
            assert_true(PQsetvalue(res, r, c, (char *)rows[r][c], (int)strlen(rows[r][c])));
    return res;
}

/* The shared row carries the database's counters in its last column. */
static void the_shared_row_parses_the_database_counters(void **state)
{
    (void)state;
    const char *rows[1][5] = {{"x", "epoch1", "abc", "0", "7:1:2"}};
    PGresult *res = result_of(rows, 1);
    pgd_shared_t sh = {0};
    assert_int_equal(pgd_parse(res, &sh, NULL), 0);
    assert_string_equal(sh.epoch, "epoch1");
    assert_string_equal(sh.dbtup, "7:1:2");
    PQclear(res);
}

/* A sequence row carries the sequence's name (regclass text), and the
 * check of a database with known sequences reads each by that name: no
 * per-sequence statement to plan, so it can be prepared. */
static void sequences_are_read_by_the_names_the_baseline_saw(void **state)
{
    (void)state;
    const char *rows[2][5] = {{"c", "", "d41d8", "", ""},
                              {"s", "16390", "200:true", "", "public.t01_id_seq"}};
    PGresult *res = result_of(rows, 2);
    pgd_state_t st = {0};
    assert_int_equal(pgd_parse(res, NULL, &st), 0);
    assert_int_equal(st.nseqs, 1);
    assert_string_equal(st.seqs[0].name, "public.t01_id_seq");
    pgd_state_free(&st);
    PQclear(res);

    char *sql = pgd_indb_sql(&base);
    assert_non_null(sql);
    assert_non_null(strstr(sql, "FROM public.t01_id_seq"));
    assert_non_null(strstr(sql, "FROM app.\"Odd seq\""));
    assert_null(strstr(sql, "query_to_xml"));
    free(sql);
    pgd_state_t none = {"cafe", base_rels, 2, NULL, 0};
    sql = pgd_indb_sql(&none);
    assert_non_null(sql);
    assert_null(strstr(sql, "'s'"));
    free(sql);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nothing_changed_is_clean),
        cmocka_unit_test(catalog_or_maintenance_changes_are_dirty),
        cmocka_unit_test(written_rows_are_reloaded_table_by_table),
        cmocka_unit_test(moved_sequences_are_rows),
        cmocka_unit_test(shared_state_must_match_with_no_sessions),
        cmocka_unit_test(database_counters_count_only_when_asked),
        cmocka_unit_test(the_shared_row_parses_the_database_counters),
        cmocka_unit_test(sequences_are_read_by_the_names_the_baseline_saw),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
