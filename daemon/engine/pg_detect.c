#include "pg_detect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Catalogs (oid < 16384) are hashed together, without pg_statistic (which
 * autoanalyze writes on its own) and without shared catalogs (every
 * database sees their counters move when any role or database changes;
 * the shared digest covers them). Only relations whose counters moved at
 * all are listed: a fresh clone has none, and a relation created or
 * dropped shows as catalog changes. The counters are pg_stat_all_tables'
 * (same relkinds, same functions) read straight from pg_class: the view
 * groups by every relation to count index scans, which costs more than
 * the rest of the check. */
#define RELS_STATS(cond)                                                                          \
    "(SELECT c.oid, pg_stat_get_tuples_inserted(c.oid) i, pg_stat_get_tuples_updated(c.oid) u, "  \
    "pg_stat_get_tuples_deleted(c.oid) d, pg_stat_get_vacuum_count(c.oid) v, "                    \
    "pg_stat_get_analyze_count(c.oid) a FROM pg_class c WHERE c.relkind IN ('r', 't', 'm', 'p') " \
    "AND " cond " OFFSET 0) s"
#define MOVED " WHERE s.i + s.u + s.d + s.v + s.a > 0"

#define RELS_SQL                                                                                  \
    "SELECT 'c', '', md5(coalesce(string_agg(concat_ws(':', s.oid, s.i, s.u, s.d, s.v, s.a), ',' " \
    "ORDER BY s.oid), '')), NULL, NULL FROM " RELS_STATS(                                         \
        "c.oid < 16384 AND NOT c.relisshared AND c.oid <> 'pg_catalog.pg_statistic'::regclass")   \
    MOVED " UNION ALL SELECT 'u', s.oid::text, concat_ws(':', s.i, s.u, s.d), concat_ws(':', s.v, s.a), " \
    "coalesce(p.oid, s.oid)::text FROM " RELS_STATS("c.oid >= 16384")                             \
    " LEFT JOIN pg_class p ON p.reltoastrelid = s.oid" MOVED

/* Sequences are read from the sequence itself (pg_sequences shows NULL for
 * is_called = false), with their names (our sessions search pg_catalog
 * only, so regclass prints them schema-qualified and quoted): a check
 * names them in its own text (pgd_indb_sql), where this query, for a
 * database whose sequences are not known yet, writes a query per sequence
 * and plans each. */
const char PGD_INDB_SQL[] =
    RELS_SQL " UNION ALL "
    "SELECT 's', c.oid::text, concat_ws(':', substring(x FROM '<last_value>(.*)</last_value>'), "
    "substring(x FROM '<is_called>(.*)</is_called>')), NULL, c.oid::regclass::text "
    "FROM pg_class c, LATERAL (SELECT query_to_xml(format('SELECT last_value, is_called FROM %s', "
    "c.oid::regclass), false, true, '')::text) q(x) WHERE c.relkind = 'S'";

char *pgd_indb_sql(const pgd_state_t *base)
{
    char *sql = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&sql, &len);
    if (!f)
        return NULL;
    fputs(RELS_SQL, f);
    /* A sequence dropped since makes the statement fail (dirty); one
     * created or renamed moves the catalogs' counters (dirty too). */
    for (int i = 0; i < base->nseqs; i++)
        fprintf(f,
                " UNION ALL SELECT 's', '%u', concat_ws(':', last_value, is_called::text), NULL, "
                "'%u'::regclass::text FROM %s",
                base->seqs[i].oid, base->seqs[i].oid, base->seqs[i].name);
    if (fclose(f) != 0) {
        free(sql);
        return NULL;
    }
    return sql;
}

/* The lease role and the template's owner role (a lease may act as the
 * owner: its settings, password and comment would reach the next holders):
 * pg_authid without the lease's password and LOGIN (the release sets both),
 * but whether the owner has a password at all. The owner's members are
 * every lease of the template: only the memberships of these two roles
 * count, and grants of the lease role. The statistics come from their
 * functions, not the pg_stat_* views: a view expands to every column's
 * function, which a fresh session must look up and plan. */
void pgd_shared_sql(char *buf, size_t len, const char *name, const char *owner)
{
    char sessions[512];
    pgd_sessions_sql(sessions, sizeof sessions, name, true, "count(*)");
    snprintf(buf, len,
             "WITH d AS (SELECT oid FROM pg_database WHERE datname = '%1$s'), "
             "r AS (SELECT oid, rolname = '%1$s' AS lease FROM pg_authid "
             "WHERE rolname IN ('%1$s', '%2$s')) "
             "SELECT 'x', pg_stat_get_bgwriter_stat_reset_time()::text, md5(concat_ws('|', "
             "(SELECT row(oid, datdba, encoding, datcollate, datctype, datistemplate, datallowconn, "
             "datconnlimit, dattablespace, datacl)::text FROM pg_database WHERE oid = (SELECT oid "
             "FROM d)), "
             "(SELECT string_agg(row(setdatabase, setrole, setconfig)::text, ',' ORDER BY "
             "setdatabase, setrole) FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM d) "
             "OR setrole IN (SELECT oid FROM r)), "
             "(SELECT string_agg(row(objoid, classoid, description)::text, ',' ORDER BY classoid, "
             "objoid) FROM pg_shdescription WHERE objoid IN (SELECT oid FROM d UNION ALL SELECT oid "
             "FROM r)), "
             "(SELECT string_agg(row(a.oid, rolsuper, rolinherit, rolcreaterole, rolcreatedb, "
             "rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil, "
             "CASE WHEN r.lease THEN NULL ELSE (rolcanlogin, rolpassword IS NULL) END)::text, ',' "
             "ORDER BY a.oid) FROM pg_authid a JOIN r ON r.oid = a.oid), "
             "(SELECT string_agg(row(roleid, member, grantor, admin_option)::text, ',' ORDER BY "
             "roleid, member) FROM pg_auth_members WHERE member IN (SELECT oid FROM r) OR roleid IN "
             "(SELECT oid FROM r WHERE lease)))), "
             "(%3$s)::text, "
             "(SELECT concat_ws(':', pg_stat_get_db_tuples_inserted(oid), "
             "pg_stat_get_db_tuples_updated(oid), pg_stat_get_db_tuples_deleted(oid)) FROM d)",
             name, owner, sessions);
}

void pgd_sessions_sql(char *buf, size_t len, const char *name, bool in_database, const char *what)
{
    /* pg_stat_activity's rows, without its joins: a session's database and
     * role by oid (none for background processes, which never match).
     * pg_roles, not pg_authid: an external server's admin may not be a
     * superuser. */
    if (in_database)
        snprintf(buf, len,
                 "SELECT %3$s FROM pg_stat_get_activity(NULL) a WHERE (a.datid = (SELECT oid FROM "
                 "pg_database WHERE datname = '%1$s') AND a.usesysid <> (SELECT oid FROM pg_roles "
                 "WHERE rolname = current_user)) OR a.usesysid = (SELECT oid FROM pg_roles WHERE "
                 "rolname = '%2$s')",
                 name, name, what);
    else
        snprintf(buf, len,
                 "SELECT %2$s FROM pg_stat_get_activity(NULL) a WHERE a.usesysid = (SELECT oid FROM "
                 "pg_roles WHERE rolname = '%1$s')",
                 name, what);
}

static void copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

void pgd_state_free(pgd_state_t *s)
{
    free(s->rels);
    free(s->seqs);
    memset(s, 0, sizeof *s);
}

int pgd_state_copy(pgd_state_t *dst, const pgd_state_t *src)
{
    pgd_state_free(dst);
    memcpy(dst->catalogs, src->catalogs, sizeof dst->catalogs);
    dst->rels = calloc((size_t)src->nrels + 1, sizeof *dst->rels);
    dst->seqs = calloc((size_t)src->nseqs + 1, sizeof *dst->seqs);
    if (!dst->rels || !dst->seqs)
        return -1;
    memcpy(dst->rels, src->rels, (size_t)src->nrels * sizeof *dst->rels);
    memcpy(dst->seqs, src->seqs, (size_t)src->nseqs * sizeof *dst->seqs);
    dst->nrels = src->nrels;
    dst->nseqs = src->nseqs;
    return 0;
}

int pgd_parse(const PGresult *res, pgd_shared_t *shared, pgd_state_t *indb)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 5)
        return -1;
    int n = PQntuples(res);
    if (indb) {
        pgd_state_free(indb);
        indb->rels = calloc((size_t)n + 1, sizeof *indb->rels);
        indb->seqs = calloc((size_t)n + 1, sizeof *indb->seqs);
        if (!indb->rels || !indb->seqs)
            return -1;
    }
    bool seen_x = false, seen_c = false;
    for (int r = 0; r < n; r++) {
        char kind = PQgetvalue(res, r, 0)[0];
        const char *key = PQgetvalue(res, r, 1), *a = PQgetvalue(res, r, 2);
        const char *b = PQgetvalue(res, r, 3), *target = PQgetvalue(res, r, 4);
        if (kind == 'x' && shared) {
            copy(shared->epoch, sizeof shared->epoch, key);
            copy(shared->digest, sizeof shared->digest, a);
            shared->sessions = strtol(b, NULL, 10);
            copy(shared->dbtup, sizeof shared->dbtup, target);
            seen_x = true;
        } else if (kind == 'c' && indb) {
            copy(indb->catalogs, sizeof indb->catalogs, a);
            seen_c = true;
        } else if (kind == 'u' && indb) {
            pgd_rel_t *rel = &indb->rels[indb->nrels++];
            rel->relid = (unsigned)strtoul(key, NULL, 10);
            rel->target = (unsigned)strtoul(target, NULL, 10);
            copy(rel->tup, sizeof rel->tup, a);
            copy(rel->maint, sizeof rel->maint, b);
        } else if (kind == 's' && indb) {
            pgd_seq_t *q = &indb->seqs[indb->nseqs++];
            q->oid = (unsigned)strtoul(key, NULL, 10);
            copy(q->value, sizeof q->value, a);
            copy(q->name, sizeof q->name, target);
        }
    }
    return (shared && !seen_x) || (indb && !seen_c) ? -1 : 0;
}

bool pgd_shared_equal(const pgd_shared_t *base, const pgd_shared_t *now, bool db_counters)
{
    return now->sessions == 0 && strcmp(base->epoch, now->epoch) == 0 &&
           strcmp(base->digest, now->digest) == 0 &&
           (!db_counters || (now->dbtup[0] && strcmp(base->dbtup, now->dbtup) == 0));
}

static const pgd_rel_t *find_rel(const pgd_state_t *s, unsigned relid)
{
    for (int i = 0; i < s->nrels; i++)
        if (s->rels[i].relid == relid)
            return &s->rels[i];
    return NULL;
}

static const pgd_seq_t *find_seq(const pgd_state_t *s, unsigned oid)
{
    for (int i = 0; i < s->nseqs; i++)
        if (s->seqs[i].oid == oid)
            return &s->seqs[i];
    return NULL;
}

static void add_changed(unsigned *changed, int *n, unsigned oid)
{
    for (int i = 0; i < *n; i++)
        if (changed[i] == oid)
            return;
    changed[(*n)++] = oid;
}

reset_verdict_t pgd_compare(const pgd_state_t *base, const pgd_state_t *now, unsigned **changed,
                            int *nchanged, bool *seqs)
{
    *changed = NULL;
    *nchanged = 0;
    *seqs = false;
    if (strcmp(base->catalogs, now->catalogs) != 0 || base->nseqs != now->nseqs)
        return VERDICT_DIRTY;
    /* A relation whose counters vanished was dropped (or its stats reset). */
    for (int i = 0; i < base->nrels; i++)
        if (!find_rel(now, base->rels[i].relid))
            return VERDICT_DIRTY;
    unsigned *list = calloc((size_t)now->nrels + 1, sizeof *list);
    if (!list)
        return VERDICT_DIRTY;
    int n = 0;
    for (int i = 0; i < now->nrels; i++) {
        const pgd_rel_t *r = &now->rels[i], *b = find_rel(base, r->relid);
        const char *btup = b ? b->tup : "0:0:0", *bmaint = b ? b->maint : "0:0";
        if (strcmp(bmaint, r->maint) != 0) {
            free(list);
            return VERDICT_DIRTY;
        }
        if (strcmp(btup, r->tup) != 0)
            add_changed(list, &n, r->target);
    }
    for (int i = 0; i < now->nseqs; i++) {
        const pgd_seq_t *b = find_seq(base, now->seqs[i].oid);
        if (!b) {
            free(list);
            return VERDICT_DIRTY;
        }
        if (strcmp(b->value, now->seqs[i].value) != 0)
            *seqs = true;
    }
    if (n == 0 && !*seqs) {
        free(list);
        return VERDICT_CLEAN;
    }
    *changed = list;
    *nchanged = n;
    return VERDICT_ROWS;
}

/* ---- seed rows -------------------------------------------------------- */

const char PGD_TABLES_SQL[] =
    "SELECT c.oid::text, format('%I.%I', n.nspname, c.relname), "
    "(SELECT string_agg(quote_ident(attname), ',' ORDER BY attnum) FROM pg_attribute "
    "WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped AND attgenerated = ''), "
    "(SELECT string_agg('(x).' || quote_ident(attname), ',' ORDER BY attnum) FROM pg_attribute "
    "WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped AND attgenerated = ''), "
    "((SELECT count(*) FROM pg_trigger WHERE tgenabled IN ('A', 'R') AND NOT tgisinternal) + "
    "(SELECT count(*) FROM pg_rewrite WHERE ev_enabled IN ('A', 'R')))::text "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind = 'r' AND c.oid >= 16384 AND n.nspname <> 'information_schema' "
    "AND n.nspname !~ '^pg_' ORDER BY c.oid";

static char *dup_or_null(const PGresult *res, int r, int c)
{
    return PQgetisnull(res, r, c) ? NULL : strdup(PQgetvalue(res, r, c));
}

int pgd_seed_tables(pgd_seed_t *seed, const PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 5)
        return -1;
    int n = PQntuples(res);
    seed->tables = calloc((size_t)n + 1, sizeof *seed->tables);
    if (!seed->tables)
        return -1;
    seed->reloadable = true;
    for (int r = 0; r < n; r++) {
        pgd_table_t *t = &seed->tables[seed->ntables++];
        t->oid = (unsigned)strtoul(PQgetvalue(res, r, 0), NULL, 10);
        t->name = strdup(PQgetvalue(res, r, 1));
        t->cols = dup_or_null(res, r, 2);
        t->fields = dup_or_null(res, r, 3);
        if (strcmp(PQgetvalue(res, r, 4), "0") != 0)
            seed->reloadable = false;
        if (!t->name)
            return -1;
    }
    return 0;
}

char *pgd_seed_rows_sql(const pgd_seed_t *seed)
{
    size_t len = 1;
    for (int i = 0; i < seed->ntables; i++)
        len += strlen(seed->tables[i].name) + 128;
    char *sql = seed->ntables ? malloc(len) : NULL;
    if (!sql)
        return NULL;
    size_t off = 0;
    for (int i = 0; i < seed->ntables; i++)
        off += (size_t)snprintf(sql + off, len - off,
                                "%sSELECT '%u', (SELECT array_agg(t::text)::text FROM ONLY %s t), "
                                "'', '', ''",
                                i ? " UNION ALL " : "", seed->tables[i].oid, seed->tables[i].name);
    return sql;
}

int pgd_seed_rows(pgd_seed_t *seed, const PGresult *res)
{
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        return -1;
    for (int r = 0; r < PQntuples(res); r++) {
        unsigned oid = (unsigned)strtoul(PQgetvalue(res, r, 0), NULL, 10);
        pgd_table_t *t = (pgd_table_t *)pgd_seed_find(seed, oid);
        if (!t)
            return -1;
        t->rows = dup_or_null(res, r, 1);
        /* rows the reload could not insert (no insertable column) */
        if (t->rows && !t->cols)
            seed->reloadable = false;
    }
    return 0;
}

const pgd_table_t *pgd_seed_find(const pgd_seed_t *seed, unsigned oid)
{
    for (int i = 0; i < seed->ntables; i++)
        if (seed->tables[i].oid == oid)
            return &seed->tables[i];
    return NULL;
}

void pgd_seed_clear(pgd_seed_t *seed)
{
    for (int i = 0; i < seed->ntables; i++) {
        free(seed->tables[i].name);
        free(seed->tables[i].cols);
        free(seed->tables[i].fields);
        free(seed->tables[i].rows);
    }
    free(seed->tables);
    seed->tables = NULL;
    seed->ntables = 0;
    seed->reloadable = false;
    seed->state = SEED_UNKNOWN;
}

void pgd_seed_free(void *p)
{
    pgd_seed_t *seed = p;
    if (seed) {
        pgd_seed_clear(seed);
        pgd_state_free(&seed->pristine);
    }
    free(seed);
}
