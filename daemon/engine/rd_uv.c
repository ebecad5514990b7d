#include "rd_uv.h"

#include <stdlib.h>

/* One per context: the poll on its socket, freed in the poll's close
 * callback (hiredis may free the context first). */
typedef struct rd_uv {
    redisAsyncContext *ac; /* NULL once hiredis let go */
    uv_poll_t poll;
    int events; /* UV_READABLE | UV_WRITABLE: what hiredis waits for */
} rd_uv_t;

static void on_poll(uv_poll_t *h, int status, int events)
{
    rd_uv_t *p = h->data;
    /* An error is news for whatever hiredis waits on: its read or write
     * (or connect check) then fails and it tears the connection down. */
    if (status < 0)
        events = p->events;
    /* Each call may free the context (cleanup clears p->ac). */
    if (p->ac && (events & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

/* Always (re)start: libuv stops a poll it reported an error on, so the
 * events we want may be set while the poll is not running. */
static void want(void *privdata, int event, int on)
{
    rd_uv_t *p = privdata;
    p->events = on ? p->events | event : p->events & ~event;
    if (p->events)
        uv_poll_start(&p->poll, p->events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void add_read(void *privdata)
{
    want(privdata, UV_READABLE, 1);
}

static void del_read(void *privdata)
{
    want(privdata, UV_READABLE, 0);
}

static void add_write(void *privdata)
{
    want(privdata, UV_WRITABLE, 1);
}

static void del_write(void *privdata)
{
    want(privdata, UV_WRITABLE, 0);
}

static void poll_closed(uv_handle_t *h)
{
    free(h->data);
}

static void cleanup(void *privdata)
{
    rd_uv_t *p = privdata;
    p->ac = NULL; /* hiredis is freeing it */
    uv_close((uv_handle_t *)&p->poll, poll_closed);
}

int rd_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data)
        return REDIS_ERR;
    rd_uv_t *p = calloc(1, sizeof *p);
    if (!p)
        return REDIS_ERR;
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return REDIS_OK;
}
