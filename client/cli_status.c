/* dblease status: the daemon's status object as tables for people, or as
 * JSON for programs. Fields the daemon leaves out print as "-", so an older
 * or newer daemon still gets a readable table. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "cli.h"

#define MAX_COLS 8
#define CELL_LEN 96

typedef struct table {
    size_t ncols, nrows, cap;
    char (*cells)[MAX_COLS][CELL_LEN];
    const char **notes;      /* per row: text printed under it, or NULL */
    const char *note_prefix; /* e.g. "error: " */
} table_t;

/* Copies what the daemon sent (or a client told it: the hello name) so a
 * terminal shows it and does not obey it: C0 and C1 control characters and
 * DEL become \xNN escapes, cut to fit len. Newlines are kept where multi
 * says so (a server message's DETAIL and HINT lines). */
static void printable(char *out, size_t len, const char *in, bool multi)
{
    size_t o = 0;

    for (const unsigned char *c = (const unsigned char *)in; *c && o + 1 < len; c++) {
        bool c1 = c[0] == 0xc2 && c[1] >= 0x80 && c[1] <= 0x9f; /* U+0080..U+009F */
        int n;

        if ((*c >= 0x20 && *c != 0x7f && !c1) || (multi && *c == '\n')) {
            out[o++] = (char)*c;
            continue;
        }
        n = c1 ? snprintf(out + o, len - o, "\\x%02x", *++c) : snprintf(out + o, len - o, "\\x%02x", *c);
        if (n < 0 || (size_t)n >= len - o)
            break;
        o += (size_t)n;
    }
    out[o] = '\0';
}

/* Adds a row of ncols cells given as printf-ready strings. */
static void table_row(table_t *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        void *p = realloc(t->cells, cap * sizeof(*t->cells));
        void *q = p ? realloc(t->notes, cap * sizeof(*t->notes)) : NULL;

        if (p)
            t->cells = p;
        if (!q)
            return; /* a row short is better than no status at all */
        t->notes = q;
        t->cap = cap;
    }
    t->notes[t->nrows] = NULL;
    for (size_t i = 0; i < t->ncols; i++)
        printable(t->cells[t->nrows][i], CELL_LEN, cells[i] ? cells[i] : "-", false);
    t->nrows++;
}

static void table_print(table_t *t)
{
    size_t width[MAX_COLS] = {0};

    for (size_t r = 0; r < t->nrows; r++)
        for (size_t i = 0; i < t->ncols; i++)
            if (strlen(t->cells[r][i]) > width[i])
                width[i] = strlen(t->cells[r][i]);
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t i = 0; i + 1 < t->ncols; i++)
            printf("%-*s  ", (int)width[i], t->cells[r][i]);
        printf("%s\n", t->cells[r][t->ncols - 1]);
        if (t->notes[r]) {
            char note[4096];

            printable(note, sizeof(note), t->notes[r], true);
            printf("  %s", t->note_prefix ? t->note_prefix : "");
            /* a server message may span lines (DETAIL, HINT): keep them indented */
            for (const char *c = note; *c; c++) {
                putchar(*c);
                if (*c == '\n')
                    fputs("    ", stdout);
            }
            putchar('\n');
        }
    }
    free(t->cells);
    free(t->notes);
}

/* A line under the last row added, printed in full (not cut to a cell);
 * note must outlive the table. */
static void table_note(table_t *t, const char *note)
{
    if (t->nrows > 0)
        t->notes[t->nrows - 1] = note;
}

static json_object *field(json_object *o, const char *key)
{
    json_object *v;

    return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *str(json_object *o, const char *key)
{
    json_object *v = field(o, key);

    return v && !json_object_is_type(v, json_type_null) ? json_object_get_string(v) : NULL;
}

static int64_t num(json_object *o, const char *key)
{
    return json_object_get_int64(field(o, key));
}

/* Length of a JSON array; 0 for anything else (json-c asserts on those). */
static size_t count(json_object *a)
{
    return json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

/* 42s, 5m03s, 2h05m, 3d04h: two units are enough to judge an age. */
static const char *duration(int64_t s, char *buf, size_t len)
{
    if (s < 0)
        s = 0;
    if (s < 60)
        snprintf(buf, len, "%" PRId64 "s", s);
    else if (s < 3600)
        snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", s / 86400, s % 86400 / 3600);
    return buf;
}

static void print_header(json_object *st)
{
    json_object *d = field(st, "daemon");
    char up[32], version[64];

    printable(version, sizeof(version), str(d, "version") ? str(d, "version") : "?", false);
    printf("dbleased %s, pid %" PRId64 ", up %s%s\n", version,
           num(d, "pid"), duration(num(d, "uptime_s"), up, sizeof(up)),
           json_object_get_boolean(field(d, "draining")) ? ", draining (no new leases)" : "");
    if (str(field(d, "redis"), "error")) {
        char why[1024];

        printable(why, sizeof(why), str(field(d, "redis"), "error"), false);
        printf("redis: failed: %s\n", why);
    }
}

static void print_pools(json_object *pools)
{
    static const char *const head[] = {"KIND",     "TEMPLATE", "READY", "LEASED",
                                       "RESETTING", "CREATING", "FAILED"};
    table_t t = {.ncols = 7};
    size_t n = count(pools);

    printf("\nPOOLS\n");
    if (n == 0) {
        printf("no pools\n");
        return;
    }
    table_row(&t, head);
    for (size_t i = 0; i < n; i++) {
        json_object *p = json_object_array_get_idx(pools, i);
        const char *row[7] = {str(p, "kind"),          str(p, "template"),  str(p, "ready"),
                              str(p, "leased"),        str(p, "resetting"), str(p, "creating"),
                              str(p, "failed")};

        table_row(&t, row);
    }
    table_print(&t);
}

/* Templates come before the pools made from them. An older daemon sends no
 * "templates": then there is no section at all, rather than "no templates". */
static void print_templates(json_object *tmpls)
{
    static const char *const head[] = {"KIND", "NAME", "HASH", "STATE", "SOURCE", "ISOLATION"};
    table_t t = {.ncols = 6, .note_prefix = "error: "};
    size_t n = count(tmpls);

    if (!tmpls)
        return;
    printf("\nTEMPLATES\n");
    if (n == 0) {
        printf("no templates\n");
        return;
    }
    table_row(&t, head);
    for (size_t i = 0; i < n; i++) {
        json_object *tp = json_object_array_get_idx(tmpls, i);
        const char *hash = str(tp, "hash");
        char short_hash[16];
        /* Daemons before Redis had only postgres templates, without "kind". */
        const char *kind = str(tp, "kind") ? str(tp, "kind") : "postgres";
        const char *row[6] = {kind, str(tp, "name"), short_hash, str(tp, "state"),
                              str(tp, "source"), str(tp, "isolation")};

        /* 12 hex digits tell versions apart, as git's short hashes do. */
        snprintf(short_hash, sizeof(short_hash), "%.12s", hash && *hash ? hash : "-");
        table_row(&t, row);
        if (str(tp, "error"))
            table_note(&t, str(tp, "error"));
    }
    table_print(&t);
}

static void print_instances(json_object *insts)
{
    static const char *const head[] = {"ID", "KIND", "RUNTIME", "STATE", "ADDRESS", "PID"};
    table_t t = {.ncols = 6};
    size_t n = count(insts);

    printf("\nINSTANCES\n");
    if (n == 0) {
        printf("no instances\n");
        return;
    }
    table_row(&t, head);
    for (size_t i = 0; i < n; i++) {
        json_object *in = json_object_array_get_idx(insts, i);
        const char *host = str(in, "host");
        char addr[CELL_LEN] = "-";
        const char *row[6] = {str(in, "id"),    str(in, "kind"), str(in, "runtime"),
                              str(in, "state"), addr,            str(in, "pid")};

        if (host && strchr(host, ':')) /* IPv6 */
            snprintf(addr, sizeof(addr), "[%s]:%" PRId64, host, num(in, "port"));
        else if (host)
            snprintf(addr, sizeof(addr), "%s:%" PRId64, host, num(in, "port"));
        else if (str(in, "socket"))
            snprintf(addr, sizeof(addr), "%s", str(in, "socket"));
        table_row(&t, row);
    }
    table_print(&t);
}

static int oldest_first(const void *a, const void *b)
{
    int64_t x = num(*(json_object *const *)a, "age_s");
    int64_t y = num(*(json_object *const *)b, "age_s");

    return (x < y) - (x > y);
}

static void lease_row(table_t *t, json_object *l, time_t now)
{
    json_object *owner = field(l, "owner");
    char db[CELL_LEN], who[CELL_LEN], age[32], exp[48], left[32];
    const char *row[6] = {str(l, "id"), str(l, "kind"), db, who, age, exp};

    if (str(l, "dbname"))
        snprintf(db, sizeof(db), "%s", str(l, "dbname"));
    else if (str(l, "db"))
        snprintf(db, sizeof(db), "db %s", str(l, "db"));
    else
        snprintf(db, sizeof(db), "-");
    /* the client names itself: a screenful of it would hide the table */
    snprintf(who, sizeof(who), "%s/%s%s%.32s", str(owner, "uid") ? str(owner, "uid") : "?",
             str(owner, "pid") ? str(owner, "pid") : "-", str(owner, "client") ? " " : "",
             str(owner, "client") ? str(owner, "client") : "");
    duration(num(l, "age_s"), age, sizeof(age));
    if (!field(l, "expires_at"))
        snprintf(exp, sizeof(exp), "-");
    else if (num(l, "expires_at") <= now)
        snprintf(exp, sizeof(exp), "expired");
    else
        snprintf(exp, sizeof(exp), "in %s", duration(num(l, "expires_at") - now, left, sizeof(left)));
    if (json_object_get_boolean(field(l, "detached")))
        strncat(exp, " (detached)", sizeof(exp) - strlen(exp) - 1);
    table_row(t, row);
}

static void print_leases(json_object *leases)
{
    static const char *const head[] = {"ID", "KIND", "DATABASE", "OWNER", "AGE", "EXPIRES"};
    size_t n = count(leases);
    json_object **sorted = calloc(n ? n : 1, sizeof(*sorted));
    table_t t = {.ncols = 6};
    time_t now = time(NULL);

    printf("\nLEASES\n");
    if (n == 0 || !sorted) {
        printf(n ? "(out of memory)\n" : "no leases\n");
        free(sorted);
        return;
    }
    for (size_t i = 0; i < n; i++)
        sorted[i] = json_object_array_get_idx(leases, i);
    qsort(sorted, n, sizeof(*sorted), oldest_first);
    table_row(&t, head);
    for (size_t i = 0; i < n; i++)
        lease_row(&t, sorted[i], now);
    table_print(&t);
    free(sorted);
}

static void print_counters(json_object *counters)
{
    const char *sep = "";

    if (!json_object_is_type(counters, json_type_object))
        return;
    printf("\nCOUNTERS\n");
    json_object_object_foreach(counters, key, val) {
        char k[CELL_LEN], v[CELL_LEN];

        printable(k, sizeof(k), key, false);
        printable(v, sizeof(v), json_object_get_string(val), false);
        printf("%s%s=%s", sep, k, v);
        sep = " ";
    }
    printf("\n");
}

/* Only an admin's status has it: what each uid uses against the per-uid caps. */
static void print_uids(json_object *uids)
{
    static const char *const head[] = {"UID", "LEASES", "WAITING", "CONNECTIONS"};
    table_t t = {.ncols = 4};
    size_t n = count(uids);

    if (!json_object_is_type(uids, json_type_array))
        return;
    printf("\nUSERS\n");
    table_row(&t, head);
    for (size_t i = 0; i < n; i++) {
        json_object *u = json_object_array_get_idx(uids, i);
        const char *row[4] = {str(u, "uid"), str(u, "leases"), str(u, "waiting"),
                              str(u, "clients")};
        table_row(&t, row);
    }
    table_print(&t);
}

static int print_status(const char *text, bool json)
{
    json_object *st = json_tokener_parse(text);

    if (!json_object_is_type(st, json_type_object)) {
        json_object_put(st);
        fputs("dblease: dbleased sent a status that is not a JSON object; upgrade dblease\n",
              stderr);
        return CLI_FAILED;
    }
    if (json) {
        printf("%s\n", json_object_to_json_string_ext(
                           st, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
    } else {
        print_header(st);
        print_templates(field(st, "templates"));
        print_pools(field(st, "pools"));
        print_instances(field(st, "instances"));
        print_leases(field(st, "leases"));
        print_uids(field(st, "uids"));
        print_counters(field(st, "counters"));
    }
    json_object_put(st);
    return CLI_OK;
}

int cli_cmd_status(cli_global_t *g, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"socket", required_argument, NULL, CLI_OPT_SOCKET},
        {"help", no_argument, NULL, CLI_OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    dbl_ctx_t *ctx;
    char *text;
    int c, rc;

    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'j')
            json = true;
        else if ((rc = cli_common_opt(g, c, argv)) >= 0)
            return rc;
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    if (!(ctx = cli_connect(g, "dblease status", &rc)))
        return rc;
    if (dbl_status(ctx, &text) < 0) {
        rc = cli_fail(ctx);
    } else {
        rc = print_status(text, json);
        free(text);
    }
    dbl_free(ctx);
    return rc;
}
