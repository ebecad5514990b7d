/* The listening Unix socket: created with the configured mode and group,
 * refusing to steal a path another live daemon is serving. */
#ifndef DBL_SERVER_H
#define DBL_SERVER_H

#include <stddef.h>

#include "dbld.h"

int server_listen(dbld_t *d, char *err, size_t errlen);
/* Stop accepting and remove the socket file. */
void server_close(dbld_t *d);

#endif
