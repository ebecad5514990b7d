/* hiredis async on the libuv loop: our own adapter, because Debian's
 * hiredis 0.14 adapters/libuv.h drops poll errors. libuv reports an error
 * on the socket (a server killed with our commands unread: ECONNRESET) by
 * stopping the poll and passing a status < 0; that adapter then returns,
 * hiredis never learns, and every pending callback waits forever. Here a
 * poll error is handed to hiredis as the events we were waiting for: its
 * read or write finds the error, it disconnects, and every pending callback
 * runs with a NULL reply. */
#ifndef DBL_RD_UV_H
#define DBL_RD_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Attach ac (not yet attached to any loop) to loop. REDIS_OK or REDIS_ERR
 * (ac is then left as it was: the caller frees it). */
int rd_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
