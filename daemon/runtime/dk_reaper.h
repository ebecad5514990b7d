/* The sweep that keeps anything from outliving a dead daemon: at start and
 * every beat, list every container on the engine that carries a dbleased
 * owner's labels and remove those whose owner is provably dead, whichever
 * daemon made them and whatever its state dir: by its pid where we share
 * its boot and pid namespace (dk_owner.h), else by its beacon's name not
 * changing for DK_BEACON_MISSED of its beats (dk_beacon.h). Containers of
 * a live owner, or of one we cannot judge (no beacon), are never touched. */
#ifndef DBL_DK_REAPER_H
#define DBL_DK_REAPER_H

#include <uv.h>

#include "dk_client.h"
#include "dk_owner.h"

typedef struct dk_reaper dk_reaper_t;

/* Sweeps for self (copied) through dk every beat_s; the first on the next
 * loop turn. */
dk_reaper_t *dk_reaper_new(dk_t *dk, uv_loop_t *loop, const dk_owner_t *self, int beat_s);
/* Stop; requests in flight must have been cancelled (dk_free does). */
void dk_reaper_free(dk_reaper_t *r);

#endif
