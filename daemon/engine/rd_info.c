#include "rd_info.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The value after "key:" at the start of a line, or NULL. */
static const char *field(const char *info, const char *key)
{
    size_t klen = strlen(key);
    for (const char *p = info; p && *p;) {
        if (strncmp(p, key, klen) == 0 && p[klen] == ':')
            return p + klen + 1;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

int rd_info_int(const char *info, const char *key, long long *out)
{
    const char *v = field(info, key);
    if (!v)
        return -1;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || (*end != '\r' && *end != '\n' && *end != '\0'))
        return -1;
    *out = n;
    return 0;
}

/* A keyspace line: "db<N>:keys=…", one per database that has keys. */
static bool has_keys(const char *info)
{
    for (const char *p = strstr(info, "# Keyspace"); p && *p;) {
        if (p[0] == 'd' && p[1] == 'b' && p[2] >= '0' && p[2] <= '9')
            return true;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

bool rd_info_untouched(const char *info, long long mark)
{
    long long changes, scripts, libraries, tracked;
    if (!info || !strstr(info, "# Keyspace") ||
        rd_info_int(info, "rdb_changes_since_last_save", &changes) < 0 ||
        rd_info_int(info, "number_of_cached_scripts", &scripts) < 0 ||
        rd_info_int(info, "number_of_libraries", &libraries) < 0 ||
        rd_info_int(info, "tracking_total_keys", &tracked) < 0)
        return false;
    return changes == mark && scripts == 0 && libraries == 0 && tracked == 0 && !has_keys(info);
}
