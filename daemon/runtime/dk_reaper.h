/* The sweep that keeps anything from outliving a dead daemon: at start and
 * every DK_REAP_PERIOD_MS, list every container on the engine that carries
 * a dbleased owner's labels and remove those whose owner is provably dead
 * (dk_owner.h), whichever daemon made them and whatever its state dir.
 * Containers of a live owner, or of one we cannot judge, are never touched. */
#ifndef DBL_DK_REAPER_H
#define DBL_DK_REAPER_H

#include <uv.h>

#include "dk_client.h"
#include "dk_owner.h"

#define DK_REAP_PERIOD_MS 10000

typedef struct dk_reaper dk_reaper_t;

/* Sweeps for self (copied) through dk; the first sweep on the next loop turn. */
dk_reaper_t *dk_reaper_new(dk_t *dk, uv_loop_t *loop, const dk_owner_t *self);
/* Stop; requests in flight must have been cancelled (dk_free does). */
void dk_reaper_free(dk_reaper_t *r);

#endif
