/* Error code names: one table, indexed by code, read in both directions. */
#include <string.h>

#include "dbl_proto.h"

static const char *const names[] = {
    [DBL_E_NONE] = "none", /* never on the wire: dbl_reply_error sends "internal" */
    [DBL_E_BAD_REQUEST] = "bad_request",
    [DBL_E_UNKNOWN_OP] = "unknown_op",
    [DBL_E_PROTO_VERSION] = "proto_version",
    [DBL_E_UNKNOWN_TEMPLATE] = "unknown_template",
    [DBL_E_POOL_EXHAUSTED] = "pool_exhausted",
    [DBL_E_TIMEOUT] = "timeout",
    [DBL_E_NOT_FOUND] = "not_found",
    [DBL_E_NOT_OWNER] = "not_owner",
    [DBL_E_INSTANCE_DOWN] = "instance_down",
    [DBL_E_INTERNAL] = "internal",
    [DBL_E_LINE_TOO_LONG] = "line_too_long",
    [DBL_E_SHUTTING_DOWN] = "shutting_down",
    [DBL_E_FORBIDDEN] = "forbidden",
    [DBL_E_TEMPLATE_FAILED] = "template_failed",
    [DBL_E_TOO_MANY_LEASES] = "too_many_leases",
    [DBL_E_TOO_MANY_CLIENTS] = "too_many_clients",
    [DBL_E_DISK_FULL] = "disk_full",
    [DBL_E_TOO_MANY_TEMPLATES] = "too_many_templates",
};

/* A code appended to the enum without a name here fails the build. */
_Static_assert(sizeof(names) / sizeof(names[0]) == DBL_E__COUNT,
               "every dbl_errcode_t needs a wire name");

const char *dbl_errcode_name(dbl_errcode_t code)
{
    /* Cast: the enum may be unsigned, and callers may pass any int. */
    if ((int)code < 0 || (int)code >= DBL_E__COUNT || !names[code])
        return names[DBL_E_INTERNAL];
    return names[code];
}

dbl_errcode_t dbl_errcode_from_name(const char *name)
{
    if (!name)
        return DBL_E_NONE;
    for (int i = DBL_E_NONE + 1; i < DBL_E__COUNT; i++)
        if (names[i] && strcmp(names[i], name) == 0)
            return (dbl_errcode_t)i;
    return DBL_E_NONE;
}
