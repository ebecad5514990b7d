#!/usr/bin/env bash
# Write the SQL files of a migrated template like an application's, for
# [template.X] sql_dir = DIR: TABLES tables (default 50) with primary keys,
# foreign keys chaining the first 31 (30 FKs), an index on every name and
# every FK column (80 with the defaults), 5 serial sequences, 3 views,
# 3 functions, 1 trigger, and ROWS seed rows per table (200: 10k in all).
#
#   bench/gen_template.sh DIR [TABLES] [ROWS]
set -euo pipefail
dir=${1:?usage: bench/gen_template.sh DIR [TABLES] [ROWS]}
tables=${2:-50}
rows=${3:-200}
[ "$tables" -ge 6 ] || { echo "gen_template: at least 6 tables" >&2; exit 2; }
mkdir -p "$dir"
t() { printf 't%02d' "$1"; }
fks=$(( tables > 31 ? 30 : tables - 1 ))

{
    for i in $(seq 1 "$tables"); do
        if [ "$i" -le 5 ]; then id="id serial PRIMARY KEY"; else id="id int PRIMARY KEY"; fi
        parent=""
        if [ "$i" -ge 2 ] && [ "$i" -le $((fks + 1)) ]; then
            parent=", parent_id int REFERENCES $(t $((i - 1))) (id)"
        fi
        echo "CREATE TABLE $(t "$i") ($id$parent, name text NOT NULL, amount numeric(12,2) NOT NULL DEFAULT 0,"
        echo "    flag boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL DEFAULT now());"
    done
} >"$dir/001_tables.sql"

{
    for i in $(seq 1 "$tables"); do
        echo "CREATE INDEX $(t "$i")_name ON $(t "$i") (name);"
        if [ "$i" -ge 2 ] && [ "$i" -le $((fks + 1)) ]; then
            echo "CREATE INDEX $(t "$i")_parent ON $(t "$i") (parent_id);"
        fi
    done
} >"$dir/002_indexes.sql"

{
    for i in $(seq 1 "$tables"); do
        cols="name, amount, flag" vals="'row ' || g, g * 1.5, g % 2 = 0"
        if [ "$i" -gt 5 ]; then cols="id, $cols" vals="g, $vals"; fi
        if [ "$i" -ge 2 ] && [ "$i" -le $((fks + 1)) ]; then cols="$cols, parent_id" vals="$vals, g"; fi
        echo "INSERT INTO $(t "$i") ($cols) SELECT $vals FROM generate_series(1, $rows) g;"
        echo "ANALYZE $(t "$i");" # its own tables only: the owner may not analyze catalogs
    done
} >"$dir/003_seed.sql"

cat >"$dir/004_logic.sql" <<SQL
CREATE VIEW v_totals AS SELECT $(t 1).id, sum($(t 2).amount) AS total
    FROM $(t 1) JOIN $(t 2) ON $(t 2).parent_id = $(t 1).id GROUP BY $(t 1).id;
CREATE VIEW v_flagged AS SELECT * FROM $(t 3) WHERE flag;
CREATE VIEW v_recent AS SELECT id, name FROM $(t 4) ORDER BY created_at DESC LIMIT 10;
CREATE FUNCTION add_amount(a numeric, b numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT a + b';
CREATE FUNCTION row_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM $(t 1)';
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
    \$\$BEGIN NEW.created_at := now(); RETURN NEW; END\$\$;
CREATE TRIGGER $(t 5)_touch BEFORE UPDATE ON $(t 5) FOR EACH ROW EXECUTE FUNCTION touch();
SQL
chmod -R a+rX "$dir"
