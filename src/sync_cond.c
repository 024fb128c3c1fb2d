/*
 * Condition: a sequence-number condition variable. A waiter reads the
 * sequence, releases the lock, and sleeps while the sequence is unchanged;
 * notify bumps it and wakes n sleepers. No per-waiter state is kept in
 * shared memory, so a waiter killed at any point leaves nothing behind
 * that could swallow a later notification.
 */
#include <limits.h>
#include <stdlib.h>

#include "internal/deadline.h"
#include "internal/lockcore.h"
#include "internal/region.h"
#include "internal/synclock.h"
#include "internal/waitword.h"
#include "mproc/sync.h"

typedef struct cond_shared {
    _Atomic uint32_t seq; /* futex word */
    _Atomic uint32_t nwaiters;
    uint32_t own_lock; /* 1: the lock below is the condition's lock */
    uint32_t reserved;
    mproc__lockword lock; /* used when the creator gave no lock */
} cond_shared;

struct mproc_condition {
    mproc__region region;
    cond_shared *s;
    mproc_lock *lock; /* the lock in use (borrowed or &own) */
    struct mproc_lock own;
};

static void bind_lock(mproc_condition *c, mproc_lock *lock)
{
    mproc__lock_embed(&c->own, &c->s->lock);
    c->lock = lock != NULL ? lock : &c->own;
}

int mproc_condition_create(mproc_condition **out, const char *name,
                           mproc_lock *lock, const mproc_condition_opts *opts)
{
    mproc_condition_opts o = MPROC_CONDITION_OPTS_INIT;
    if (opts != NULL)
        o = *opts;
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_condition *c = calloc(1, sizeof *c);
    if (c == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_create(&c->region, name, MPROC__KIND_CONDITION,
                                  sizeof(cond_shared), o.mode);
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->s = c->region.payload;
    atomic_init(&c->s->seq, 0);
    atomic_init(&c->s->nwaiters, 0);
    c->s->own_lock = lock == NULL;
    mproc__lockword_init(&c->s->lock, true);
    rc = mproc__region_publish(&c->region);
    if (rc < 0) {
        mproc__region_abandon(&c->region);
        free(c);
        return rc;
    }
    bind_lock(c, lock);
    *out = c;
    return 0;
}

int mproc_condition_open(mproc_condition **out, const char *name,
                         mproc_lock *lock, const mproc_condition_opts *opts)
{
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_condition *c = calloc(1, sizeof *c);
    if (c == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_open_sized(&c->region, name, MPROC__KIND_CONDITION,
                                      sizeof(cond_shared),
                                      opts != NULL ? &opts->access : NULL);
    if (rc == 0) {
        /* The creator's choice, own lock or not, must be the opener's:
         * otherwise both would use different locks without a word. */
        cond_shared *s = c->region.payload;
        if ((s->own_lock != 0) != (lock == NULL)) {
            mproc__region_close(&c->region);
            rc = MPROC_EINVAL;
        }
    }
    if (rc < 0) {
        free(c);
        return rc;
    }
    c->s = c->region.payload;
    bind_lock(c, lock);
    *out = c;
    return 0;
}

void mproc_condition_close(mproc_condition *cond)
{
    if (cond == NULL)
        return;
    mproc__region_close(&cond->region);
    free(cond);
}

int mproc_condition_unlink(const char *name)
{
    return mproc__region_unlink(name, MPROC__KIND_CONDITION);
}

mproc_lock *mproc_condition_lock(mproc_condition *cond)
{
    return cond != NULL ? cond->lock : NULL;
}

/* One wait against an absolute deadline. */
static int wait_until(mproc_condition *c, const mproc__deadline *d)
{
    mproc__lockword *lw = c->lock->lw;
    /* Read the sequence before letting go of the lock: a notify after
     * our release changes it, so it cannot be missed. */
    uint32_t seq = atomic_load(&c->s->seq);
    uint32_t depth;
    int rc = mproc__lockword_release_all(lw, &depth);
    if (rc < 0)
        return rc;
    /* The sleep also returns 0 after a signal handler ran (EINTR): sleep
     * again until the sequence moves, so that 0 means a notify. */
    do
        rc = mproc__waitword_wait(&c->s->seq, &c->s->nwaiters, seq, d, NULL,
                                  NULL);
    while (rc == 0 && atomic_load(&c->s->seq) == seq);
    int lrc = mproc__lockword_reacquire(lw, depth);
    if (lrc < 0)
        return lrc;
    return rc;
}

int mproc_condition_wait(mproc_condition *cond, int64_t timeout_ms)
{
    if (cond == NULL)
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    return wait_until(cond, &d);
}

int mproc_condition_wait_for(mproc_condition *cond, int (*pred)(void *arg),
                             void *arg, int64_t timeout_ms)
{
    if (cond == NULL || pred == NULL)
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    if (!mproc__lockword_owned(cond->lock->lw))
        return MPROC_ENOTOWNER;
    for (;;) {
        if (pred(arg))
            return 0;
        if (mproc__deadline_expired(&d))
            return MPROC_ETIMEDOUT;
        rc = wait_until(cond, &d);
        if (rc == MPROC_ETIMEDOUT)
            return pred(arg) ? 0 : MPROC_ETIMEDOUT;
        if (rc < 0)
            return rc;
    }
}

int mproc_condition_notify(mproc_condition *cond, int n)
{
    if (cond == NULL || n < 1)
        return MPROC_EINVAL;
    if (!mproc__lockword_owned(cond->lock->lw))
        return MPROC_ENOTOWNER;
    atomic_fetch_add(&cond->s->seq, 1);
    mproc__waitword_wake(&cond->s->seq, &cond->s->nwaiters, n);
    return 0;
}

int mproc_condition_notify_all(mproc_condition *cond)
{
    return mproc_condition_notify(cond, INT_MAX);
}

const char *mproc_condition_name(mproc_condition *cond)
{
    return cond != NULL ? cond->region.name : NULL;
}
