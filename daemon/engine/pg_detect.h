/* The detector "B3" (docs: /work/shared/research/reset-study.md, section 3):
 * what a lease changed in its database, read from the server's cumulative
 * statistics and shared catalogs once every session of the lease is gone
 * (a backend flushes its counters before its pg_stat_activity row clears).
 *
 * A baseline is taken where the database was last made pristine (the
 * session that finished its clone, or its rows reset); a release compares:
 *   - stats epoch, sessions, digest of the shared catalogs the lease can
 *     change (its pg_database row, settings, comments, role, memberships):
 *     any difference is dirty;
 *   - per-relation counters of catalogs (hashed): dirty;
 *   - VACUUM/ANALYZE counts of user tables: dirty (a reload cannot restore
 *     planner statistics);
 *   - tuple counters of user tables and each sequence's (last_value,
 *     is_called), read from the sequence itself: rows.
 * Pure parsing and comparing, plus the SQL texts; no I/O here. */
#ifndef DBL_PG_DETECT_H
#define DBL_PG_DETECT_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "pool.h" /* reset_verdict_t (pool/reset_policy.h) */

typedef struct pgd_rel {
    unsigned relid, target; /* target: the table to reload (a toast table's parent) */
    char tup[64];           /* n_tup_ins:upd:del */
    char maint[32];         /* vacuum_count:analyze_count */
} pgd_rel_t;

typedef struct pgd_seq {
    unsigned oid;
    char value[48]; /* last_value:is_called */
    char name[272]; /* schema-qualified, quoted (two quoted NAMEDATALEN names) */
} pgd_seq_t;

/* In-database state (from PGD_INDB_SQL). */
typedef struct pgd_state {
    char catalogs[33];
    pgd_rel_t *rels;
    int nrels;
    pgd_seq_t *seqs;
    int nseqs;
} pgd_state_t;

/* Shared state (from pgd_shared_sql). */
typedef struct pgd_shared {
    char epoch[64];
    char digest[33];
    long sessions;
    char dbtup[80]; /* pg_stat_database tup_inserted:updated:deleted of the database */
} pgd_shared_t;

/* A slot's baseline (slot->engine), and the superuser session pg_reset.c
 * keeps in the database between leases (NULL: none). */
typedef struct pgd_base {
    pgd_shared_t shared;
    pgd_state_t indb;
    struct pgc *kept;
} pgd_base_t;

/* Every row: kind, key, a, b, target. For a database whose sequences are
 * not known yet (the first clone of a template version). */
extern const char PGD_INDB_SQL[];
/* The same rows, for a database with base's sequences, read by name: no
 * statement planned per sequence, so the whole can be prepared once per
 * session. malloc'd, or NULL. Names come from PGD_INDB_SQL's own rows
 * (regclass text), never from a lease. */
char *pgd_indb_sql(const pgd_state_t *base);

/* The shared-state query for database/role name and the template's owner
 * role ("" if none); prefix-named identifiers, never user input. */
void pgd_shared_sql(char *buf, size_t len, const char *name, const char *owner);

/* The holder's sessions, as pg_stat_activity lists them: any of the lease
 * role, and with in_database anyone's in its database but our own user's
 * (the kept session, a check's). what: the select list, e.g. "count(*)". */
void pgd_sessions_sql(char *buf, size_t len, const char *name, bool in_database, const char *what);

/* Parse rows of either query (a result may hold both). 0, or -1 on a
 * malformed result (treat as dirty). */
int pgd_parse(const PGresult *res, pgd_shared_t *shared, pgd_state_t *indb);
void pgd_state_free(pgd_state_t *s);
int pgd_state_copy(pgd_state_t *dst, const pgd_state_t *src);

/* db_counters: also the database's tuple counters, which on the built-in
 * template (no tables, no sequences) move with anything a lease creates,
 * writes or deletes, catalogs included: checked from outside the database. */
bool pgd_shared_equal(const pgd_shared_t *base, const pgd_shared_t *now, bool db_counters);
/* Verdict of the in-database part. For ROWS, *changed (malloc'd, *nchanged)
 * lists the tables to reload, *seqs whether any sequence moved. */
reset_verdict_t pgd_compare(const pgd_state_t *base, const pgd_state_t *now, unsigned **changed,
                            int *nchanged, bool *seqs);

/* ---- a template version's seed rows (pool->engine_data) ------------------ */

typedef struct pgd_table {
    unsigned oid;
    char *name;   /* schema-qualified, quoted */
    char *cols;   /* insertable columns, quoted, comma-separated */
    char *fields; /* (x).col for each of them */
    char *rows;   /* array literal of row literals, in physical order; NULL: no rows */
} pgd_table_t;

typedef enum pgd_seed_state {
    SEED_UNKNOWN, /* not needed yet */
    SEED_WANTED,  /* a rows verdict needed it: take it at the next clone */
    SEED_FETCHING,
    SEED_READY,
} pgd_seed_state_t;

typedef struct pgd_seed {
    /* the in-database state of any untouched clone of this version (every
     * counter zero, the template's sequence values), read once from the
     * first clone when no session ran in the clone at create */
    bool pristine_known;
    pgd_state_t pristine;
    pgd_seed_state_t state;
    bool reloadable; /* no ENABLE ALWAYS/REPLICA triggers or rules */
    pgd_table_t *tables;
    int ntables;
} pgd_seed_t;

/* The template's tables: oid, name, cols, fields, always_triggers. */
extern const char PGD_TABLES_SQL[];
int pgd_seed_tables(pgd_seed_t *seed, const PGresult *res);
/* The query reading every table's rows (oid, array literal); NULL if none. */
char *pgd_seed_rows_sql(const pgd_seed_t *seed);
int pgd_seed_rows(pgd_seed_t *seed, const PGresult *res);
const pgd_table_t *pgd_seed_find(const pgd_seed_t *seed, unsigned oid);
void pgd_seed_free(void *seed);
/* Forget a failed or partial fetch of the rows: back to SEED_UNKNOWN. */
void pgd_seed_clear(pgd_seed_t *seed);

#endif
