/* Reading a Redis INFO reply ("key:value" lines under "# Section"
 * headers, CRLF-separated) for what a reset needs to know. Pure logic. */
#ifndef DBL_RD_INFO_H
#define DBL_RD_INFO_H

#include <stdbool.h>

/* The integer value of field key (at the start of a line). 0, or -1 when
 * the field is missing or not an integer. */
int rd_info_int(const char *info, const char *key, long long *out);

/* Did the holder of a server leave it as it was handed out, empty? From
 * INFO persistence, keyspace, memory and stats read after every session of
 * the lease ended: no key in any database, no cached script, no function
 * library, no key in the client-tracking table (its entries outlive the
 * connection that read them; FLUSHALL empties it), and no write since
 * `mark` (rdb_changes_since_last_save then).
 * The counter catches what the state alone cannot: a library loaded and
 * deleted again ran code in the functions' Lua VM. Missing fields (an older
 * server, a truncated reply) count as touched. */
bool rd_info_untouched(const char *info, long long mark);

#endif
