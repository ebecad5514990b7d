/* The external runtime for PostgreSQL (a server given by URL). */
#ifndef DBL_RT_EXTERNAL_H
#define DBL_RT_EXTERNAL_H

#include "inst.h"

/* Read host and port from the URL and go straight to connecting. */
void rt_ext_start(inst_t *i);

#endif
