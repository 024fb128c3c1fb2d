/*
 * Lock, RLock, Semaphore and BoundedSemaphore: thin handles over shared
 * regions. The lock logic is in internal/lockcore.c; a semaphore is a count
 * word with a waiter count beside it (internal/waitword.c).
 */
#include <limits.h>
#include <stdlib.h>

#include "internal/deadline.h"
#include "internal/lockcore.h"
#include "internal/region.h"
#include "internal/synclock.h"
#include "internal/waitword.h"
#include "mproc/sync.h"

/* ------------------------------------------------------------------ Lock */

int mproc_lock_create(mproc_lock **out, const char *name,
                      const mproc_lock_opts *opts)
{
    mproc_lock_opts o = MPROC_LOCK_OPTS_INIT;
    if (opts != NULL)
        o = *opts;
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_lock *l = calloc(1, sizeof *l);
    if (l == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_create(
        &l->region, name, o.recursive ? MPROC__KIND_RLOCK : MPROC__KIND_LOCK,
        sizeof(mproc__lockword), o.mode);
    if (rc < 0) {
        free(l);
        return rc;
    }
    l->lw = l->region.payload;
    mproc__lockword_init(l->lw, o.recursive);
    l->recursive = o.recursive;
    rc = mproc__region_publish(&l->region);
    if (rc < 0) {
        mproc__region_abandon(&l->region);
        free(l);
        return rc;
    }
    *out = l;
    return 0;
}

int mproc_lock_open(mproc_lock **out, const char *name,
                    const mproc_lock_opts *opts)
{
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_lock *l = calloc(1, sizeof *l);
    if (l == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_open_sized(&l->region, name, MPROC__KIND_ANY,
                                      sizeof(mproc__lockword),
                                      opts != NULL ? &opts->access : NULL);
    if (rc == 0) {
        /* The kind is the creator's choice, read once from the checked
         * header; the lock word's own flag is shared and not trusted. */
        uint32_t kind = l->region.hdr->kind;
        if (kind != MPROC__KIND_LOCK && kind != MPROC__KIND_RLOCK) {
            mproc__region_close(&l->region);
            rc = MPROC_EBADOBJ;
        }
        l->recursive = kind == MPROC__KIND_RLOCK;
    }
    if (rc < 0) {
        free(l);
        return rc;
    }
    l->lw = l->region.payload;
    *out = l;
    return 0;
}

int mproc_lock_is_recursive(mproc_lock *lock)
{
    if (lock == NULL)
        return MPROC_EINVAL;
    return lock->recursive ? 1 : 0;
}

void mproc_lock_close(mproc_lock *lock)
{
    /* An embedded lock belongs to its object; its handle is not ours. */
    if (lock == NULL || lock->region.hdr == NULL)
        return;
    mproc__region_close(&lock->region);
    free(lock);
}

int mproc_lock_unlink(const char *name)
{
    int rc = mproc__region_unlink(name, MPROC__KIND_LOCK);
    if (rc == MPROC_EBADOBJ)
        rc = mproc__region_unlink(name, MPROC__KIND_RLOCK);
    return rc;
}

int mproc_lock_acquire(mproc_lock *lock, int64_t timeout_ms)
{
    if (lock == NULL || timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    /* The uncontended path reads no clock. */
    if (mproc__lockword_try_fast(lock->lw))
        return 0;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    return mproc__lockword_acquire(lock->lw, &d);
}

int mproc_lock_release(mproc_lock *lock)
{
    if (lock == NULL)
        return MPROC_EINVAL;
    return mproc__lockword_release_fast(lock->lw);
}

int mproc_lock_consistent(mproc_lock *lock)
{
    if (lock == NULL)
        return MPROC_EINVAL;
    return mproc__lockword_consistent(lock->lw);
}

int mproc_lock_is_owned(mproc_lock *lock)
{
    if (lock == NULL)
        return MPROC_EINVAL;
    return mproc__lockword_owned(lock->lw) ? 1 : 0;
}

const char *mproc_lock_name(mproc_lock *lock)
{
    /* An embedded lock's region is its object's, and has no name here. */
    return lock != NULL && lock->region.hdr != NULL ? lock->region.name : NULL;
}

/* ------------------------------------------------------------- Semaphore */

typedef struct sem_shared {
    _Atomic uint32_t count;    /* futex word */
    _Atomic uint32_t nwaiters; /* sleepers (a hint, see waitword.h) */
    uint32_t max;              /* initial value */
    uint32_t bounded;          /* 1 for a BoundedSemaphore */
} sem_shared;

/* The kind and the limit are those create made or open checked, kept in
 * the handle: the shared max and bounded words are writable by every
 * process that maps the object and are never read again. */
struct mproc_semaphore {
    mproc__region region;
    sem_shared *s;
    bool bounded;
    uint32_t limit; /* max for a BoundedSemaphore, else SEM_VALUE_LIMIT */
};

#define SEM_VALUE_LIMIT ((uint32_t)INT32_MAX)

int mproc_semaphore_create(mproc_semaphore **out, const char *name,
                           uint32_t value, const mproc_semaphore_opts *opts)
{
    mproc_semaphore_opts o = MPROC_SEMAPHORE_OPTS_INIT;
    if (opts != NULL)
        o = *opts;
    if (out == NULL || value > SEM_VALUE_LIMIT)
        return MPROC_EINVAL;
    mproc_semaphore *m = calloc(1, sizeof *m);
    if (m == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_create(&m->region, name,
                                  o.bounded ? MPROC__KIND_BSEMAPHORE
                                            : MPROC__KIND_SEMAPHORE,
                                  sizeof(sem_shared), o.mode);
    if (rc < 0) {
        free(m);
        return rc;
    }
    m->s = m->region.payload;
    atomic_init(&m->s->count, value);
    atomic_init(&m->s->nwaiters, 0);
    m->s->max = value;
    m->s->bounded = o.bounded ? 1 : 0;
    m->bounded = o.bounded;
    m->limit = o.bounded ? value : SEM_VALUE_LIMIT;
    rc = mproc__region_publish(&m->region);
    if (rc < 0) {
        mproc__region_abandon(&m->region);
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int mproc_semaphore_open(mproc_semaphore **out, const char *name,
                         const mproc_semaphore_opts *opts)
{
    if (out == NULL)
        return MPROC_EINVAL;
    mproc_semaphore *m = calloc(1, sizeof *m);
    if (m == NULL)
        return MPROC_ENOMEM;
    int rc = mproc__region_open_sized(&m->region, name, MPROC__KIND_ANY,
                                      sizeof(sem_shared),
                                      opts != NULL ? &opts->access : NULL);
    if (rc == 0) {
        uint32_t kind = m->region.hdr->kind;
        uint32_t max = ((volatile sem_shared *)m->region.payload)->max;
        m->bounded = kind == MPROC__KIND_BSEMAPHORE;
        m->limit = m->bounded ? max : SEM_VALUE_LIMIT;
        if ((kind != MPROC__KIND_SEMAPHORE && !m->bounded) ||
            m->limit > SEM_VALUE_LIMIT) {
            mproc__region_close(&m->region);
            rc = MPROC_EBADOBJ;
        }
    }
    if (rc < 0) {
        free(m);
        return rc;
    }
    m->s = m->region.payload;
    *out = m;
    return 0;
}

void mproc_semaphore_close(mproc_semaphore *sem)
{
    if (sem == NULL)
        return;
    mproc__region_close(&sem->region);
    free(sem);
}

int mproc_semaphore_unlink(const char *name)
{
    int rc = mproc__region_unlink(name, MPROC__KIND_SEMAPHORE);
    if (rc == MPROC_EBADOBJ)
        rc = mproc__region_unlink(name, MPROC__KIND_BSEMAPHORE);
    return rc;
}

static bool sem_try(sem_shared *s)
{
    uint32_t c = atomic_load_explicit(&s->count, memory_order_relaxed);
    while (c > 0)
        if (atomic_compare_exchange_weak_explicit(&s->count, &c, c - 1,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    return false;
}

int mproc_semaphore_acquire(mproc_semaphore *sem, int64_t timeout_ms)
{
    if (sem == NULL || timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    if (sem_try(sem->s)) /* no clock read when a unit is free */
        return 0;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    for (;;) {
        if (sem_try(sem->s))
            return 0;
        if (mproc__deadline_expired(&d))
            return MPROC_ETIMEDOUT;
        rc = mproc__waitword_wait(&sem->s->count, &sem->s->nwaiters, 0, &d,
                                  NULL, NULL);
        if (rc < 0 && rc != MPROC_ETIMEDOUT)
            return rc;
    }
}

int mproc_semaphore_release(mproc_semaphore *sem, uint32_t n)
{
    if (sem == NULL || n == 0)
        return MPROC_EINVAL;
    sem_shared *s = sem->s;
    uint32_t limit = sem->limit;
    uint32_t c = atomic_load_explicit(&s->count, memory_order_relaxed);
    do {
        if (n > limit || c > limit - n)
            return sem->bounded ? MPROC_EOVERRELEASE : MPROC_EOVERFLOW;
    } while (!atomic_compare_exchange_weak_explicit(
        &s->count, &c, c + n, memory_order_seq_cst, memory_order_relaxed));
    mproc__waitword_wake(&s->count, &s->nwaiters,
                         n > INT_MAX ? INT_MAX : (int)n);
    return 0;
}

int mproc_semaphore_is_bounded(mproc_semaphore *sem)
{
    if (sem == NULL)
        return MPROC_EINVAL;
    return sem->bounded ? 1 : 0;
}

int mproc_semaphore_value(mproc_semaphore *sem, uint32_t *value)
{
    if (sem == NULL || value == NULL)
        return MPROC_EINVAL;
    *value = atomic_load(&sem->s->count);
    return 0;
}

const char *mproc_semaphore_name(mproc_semaphore *sem)
{
    return sem != NULL ? sem->region.name : NULL;
}
