/* This daemon's heartbeat on the engine, for daemons that cannot look its
 * pid up (another host, another pid namespace): a container that is made
 * but never started, labelled like our servers (dk_owner.h) plus
 * dblease.kind=beacon and dblease.beat_s, and renamed every beat_s seconds
 * (dblease-ID-beacon-N, N counting up). Labels cannot change; names can,
 * and a rename costs the engine nothing. A name that stays the same for
 * DK_BEACON_MISSED beats, as a sweeper sees it on its own clock, means the
 * owner is dead (dk_reaper.c), with no clocks compared across hosts. */
#ifndef DBL_DK_BEACON_H
#define DBL_DK_BEACON_H

#include <uv.h>

#include "dk_client.h"

#define DK_BEACON_MISSED 6

typedef struct dk_beacon dk_beacon_t;

/* Create it from image (any image the engine has: it never runs). */
dk_beacon_t *dk_beacon_new(dk_t *dk, uv_loop_t *loop, const char *image, int beat_s);
/* Remove it from the engine, then free it and call done(ud) (also when the
 * engine does not answer: the removal has a deadline). */
void dk_beacon_stop(dk_beacon_t *b, void (*done)(void *ud), void *ud);

#endif
