/*
 * The body of an mproc_lock handle, shared by the modules that embed a lock
 * in their own region (Condition's own RLock, the lock of a Value or
 * Array) and hand out a borrowed mproc_lock for it.
 */
#ifndef MPROC_INTERNAL_SYNCLOCK_H
#define MPROC_INTERNAL_SYNCLOCK_H

#include "internal/lockcore.h"
#include "internal/region.h"
#include "mproc/sync.h"

struct mproc_lock {
    mproc__region region; /* region.hdr is NULL for an embedded lock */
    mproc__lockword *lw;
    bool recursive; /* the kind seen at create/open */
};

/* Makes *l a borrowed view of a lock word inside another object's region
 * (always an RLock: the lock of a Value, an Array or a Condition). */
static inline void mproc__lock_embed(struct mproc_lock *l, mproc__lockword *lw)
{
    l->region.hdr = NULL;
    l->region.name = NULL;
    l->lw = lw;
    l->recursive = true;
}

#endif
