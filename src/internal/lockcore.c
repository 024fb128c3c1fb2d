/*
 * The robust lock word: a futex mutex whose word holds the owner's thread
 * id, in the manner of Linux's PI/robust futex word but with owner death
 * found by sleepers polling /proc, since a process-shared robust list would
 * fight glibc's own. See lockcore.h.
 */
#include "internal/lockcore.h"

#include <limits.h>

#include "internal/waitword.h"
#include "mproc/error.h"
#include "os/task.h"

void mproc__lockword_init(mproc__lockword *l, bool recursive)
{
    atomic_init(&l->word, 0);
    atomic_init(&l->inconsistent, 0);
    atomic_init(&l->owner_start, 0);
    l->depth = 0;
    l->recursive = recursive ? 1 : 0;
    l->reserved = 0;
}

static void took(mproc__lockword *l, uint64_t start)
{
    atomic_store_explicit(&l->owner_start, start, memory_order_relaxed);
    l->depth = 1;
}

/* Is the caller (self, start) the owner recorded in word w? A thread with
 * a dead owner's reused tid is not: its start time differs. */
static bool is_owner(mproc__lockword *l, uint32_t w, pid_t self, uint64_t start)
{
    return w != MPROC__LOCK_NOTREC &&
           (w & MPROC__LOCK_TIDMASK) == (uint32_t)self &&
           atomic_load_explicit(&l->owner_start, memory_order_relaxed) == start;
}

struct owner_ctx {
    mproc__lockword *l;
    uint32_t seen; /* the word we sleep on */
    int mismatches;
};

/* Is the owner recorded in ctx->seen dead? A live owner writes owner_start
 * just after its CAS, so a start-time mismatch counts only when seen twice
 * a slice apart with the word unchanged. */
static int owner_dead(struct owner_ctx *c)
{
    pid_t owner = (pid_t)(c->seen & MPROC__LOCK_TIDMASK);
    if (!mproc__os_task_alive(owner, 0))
        return 1;
    uint64_t start =
        atomic_load_explicit(&c->l->owner_start, memory_order_relaxed);
    if (start != 0 && !mproc__os_task_alive(owner, start)) {
        if (atomic_load(&c->l->word) != c->seen) {
            c->mismatches = 0;
            return 0;
        }
        return ++c->mismatches >= 2;
    }
    c->mismatches = 0;
    return 0;
}

#define DEAD_OWNER 1

static int check_owner(void *arg)
{
    return owner_dead(arg) ? DEAD_OWNER : 0;
}

/* Takes over a lock whose owner died: one CAS from the word we saw. The
 * dead owner's start time is cleared first ("not yet known"), so that in
 * the moment between the CAS and took() nobody sees our tid beside the
 * dead one's start time and judges us dead too. A racer that already
 * stored its own start time is left alone (the compare fails), and only
 * one CAS of the word succeeds. */
static bool take_over(mproc__lockword *l, uint32_t seen, pid_t self,
                      uint64_t start)
{
    uint64_t dead = atomic_load(&l->owner_start);
    if (atomic_load(&l->word) != seen)
        return false;
    atomic_compare_exchange_strong(&l->owner_start, &dead, 0);
    if (!atomic_compare_exchange_strong(&l->word, &seen,
                                        (uint32_t)self | MPROC__LOCK_WAITERS))
        return false;
    atomic_store(&l->inconsistent, 1);
    took(l, start);
    return true;
}

/* After the deadline: a last look, so that a try (timeout 0) also finds a
 * dead owner, as pthread_mutex_trylock does. */
static int last_look(mproc__lockword *l, uint32_t w, pid_t self, uint64_t start)
{
    /* w was read (acquire) before this load, so owner_start is the start of
     * the owner in w or 0 (not yet stored), never a previous owner's: a
     * release clears it before giving the word up. */
    uint64_t ostart =
        atomic_load_explicit(&l->owner_start, memory_order_relaxed);
    if (atomic_load(&l->word) == w) {
        pid_t owner = (pid_t)(w & MPROC__LOCK_TIDMASK);
        if (!mproc__os_task_alive(owner, ostart) &&
            take_over(l, w, self, start))
            return MPROC_EOWNERDEAD;
    }
    return MPROC_ETIMEDOUT;
}

int mproc__lockword_acquire(mproc__lockword *l, const mproc__deadline *d)
{
    if (mproc__lockword_try_fast(l))
        return 0;
    pid_t self;
    uint64_t start;
    mproc__os_self_ident(&self, &start);
    uint32_t w = atomic_load(&l->word);
    if (w == MPROC__LOCK_NOTREC)
        return MPROC_ENOTRECOVERABLE;
    if (is_owner(l, w, self, start)) {
        if (!l->recursive)
            return MPROC_EDEADLK;
        if (l->depth == UINT32_MAX)
            return MPROC_EOVERFLOW;
        l->depth++;
        return 0;
    }

    bool spun = false, slept = false;
    struct owner_ctx ctx = {l, 0, 0};
    for (;;) {
        w = atomic_load(&l->word);
        if (w == 0) {
            /* After sleeping, others may sleep too: keep the bit. */
            uint32_t want = (uint32_t)self | (slept ? MPROC__LOCK_WAITERS : 0);
            if (atomic_compare_exchange_strong(&l->word, &w, want)) {
                took(l, start);
                return 0;
            }
            continue;
        }
        if (w == MPROC__LOCK_NOTREC)
            return MPROC_ENOTRECOVERABLE;
        if (!spun) {
            spun = true;
            if (mproc__waitword_spin(&l->word, w))
                continue;
        }
        if (!(w & MPROC__LOCK_WAITERS)) {
            /* A try, or a deadline gone while spinning: do not make the
             * holder's release pay a useless wake-up. */
            if (mproc__deadline_expired(d))
                return last_look(l, w, self, start);
            uint32_t nw = w | MPROC__LOCK_WAITERS;
            if (!atomic_compare_exchange_strong(&l->word, &w, nw))
                continue;
            w = nw;
        }
        if (ctx.seen != w) {
            ctx.seen = w;
            ctx.mismatches = 0;
        }
        int rc = mproc__waitword_sleep(&l->word, w, d, check_owner, &ctx);
        slept = true;
        if (rc == DEAD_OWNER) {
            if (take_over(l, w, self, start))
                return MPROC_EOWNERDEAD;
            continue;
        }
        if (rc == MPROC_ETIMEDOUT)
            return last_look(l, w, self, start);
        if (rc < 0)
            return rc;
    }
}

bool mproc__lockword_owner_dead(mproc__lockword *l)
{
    uint32_t w = atomic_load(&l->word);
    if (w == 0 || w == MPROC__LOCK_NOTREC)
        return false;
    uint64_t ostart =
        atomic_load_explicit(&l->owner_start, memory_order_relaxed);
    if (atomic_load(&l->word) != w)
        return false;
    return !mproc__os_task_alive((pid_t)(w & MPROC__LOCK_TIDMASK), ostart);
}

int mproc__lockword_take_if_gone(mproc__lockword *l)
{
    uint32_t w = atomic_load(&l->word);
    if (w == 0 || w == MPROC__LOCK_NOTREC)
        return 0;
    /* Read after w, owner_start is the start time of the owner in w, or 0
     * while that owner has not stored it (see last_look): a live task with
     * another start time got a dead owner's reused id. In the window, the
     * task is only asked to exist. */
    uint64_t ostart =
        atomic_load_explicit(&l->owner_start, memory_order_relaxed);
    if (atomic_load(&l->word) != w ||
        mproc__os_task_alive((pid_t)(w & MPROC__LOCK_TIDMASK), ostart))
        return 0;
    pid_t self;
    uint64_t start;
    mproc__os_self_ident(&self, &start);
    return take_over(l, w, self, start) ? MPROC_EOWNERDEAD : 0;
}

bool mproc__lockword_owned(mproc__lockword *l)
{
    pid_t self;
    uint64_t start;
    mproc__os_self_ident(&self, &start);
    return is_owner(l, atomic_load_explicit(&l->word, memory_order_relaxed),
                    self, start);
}

static void unlock(mproc__lockword *l)
{
    l->depth = 0;
    if (atomic_load_explicit(&l->inconsistent, memory_order_relaxed)) {
        /* Released without being marked consistent: nobody may trust the
         * state again. Wake everyone to tell them. */
        atomic_store(&l->word, MPROC__LOCK_NOTREC);
        mproc__waitword_wake_raw(&l->word, INT_MAX);
        return;
    }
    atomic_store_explicit(&l->owner_start, 0, memory_order_relaxed);
    uint32_t old = atomic_exchange_explicit(&l->word, 0, memory_order_release);
    if (old & MPROC__LOCK_WAITERS)
        mproc__waitword_wake_raw(&l->word, 1);
}

int mproc__lockword_release_slow(mproc__lockword *l)
{
    if (!mproc__lockword_owned(l))
        return MPROC_ENOTOWNER;
    if (l->depth > 1) {
        l->depth--;
        return 0;
    }
    unlock(l);
    return 0;
}

int mproc__lockword_release(mproc__lockword *l)
{
    return mproc__lockword_release_fast(l);
}

int mproc__lockword_consistent(mproc__lockword *l)
{
    if (!mproc__lockword_owned(l))
        return MPROC_ENOTOWNER;
    uint32_t one = 1;
    if (!atomic_compare_exchange_strong(&l->inconsistent, &one, 0))
        return MPROC_EINVAL;
    return 0;
}

int mproc__lockword_release_all(mproc__lockword *l, uint32_t *depth)
{
    if (!mproc__lockword_owned(l))
        return MPROC_ENOTOWNER;
    *depth = l->depth;
    unlock(l);
    return 0;
}

int mproc__lockword_reacquire(mproc__lockword *l, uint32_t depth)
{
    mproc__deadline forever = mproc__deadline_forever();
    int rc = mproc__lockword_acquire(l, &forever);
    if (rc == 0 || rc == MPROC_EOWNERDEAD)
        l->depth = depth;
    return rc;
}
