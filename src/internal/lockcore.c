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

/* owner_start as read after the word w: 0 ("not yet known", judge by
 * existence) while a taker has not stored it. Read after w (acquire), it is
 * the start of the owner in w, 0, or a later owner's: a release clears it
 * before giving the word up, a taker marks the word PENDING until it has
 * stored its own, and only the owner writes it. A later owner's shows as
 * a change of the word, unless the word came back to w meanwhile (w
 * released, another held it, w took it again). */
static uint64_t start_of(mproc__lockword *l, uint32_t w)
{
    if (w & MPROC__LOCK_PENDING)
        return 0;
    return atomic_load_explicit(&l->owner_start, memory_order_acquire);
}

/* Is the owner in word w (not 0, not NOTREC) gone, by one look: its task
 * missing, or one that started at another time than owner_start (a reused
 * id)? A start time read while the word went away and came back to w (see
 * start_of) is another's: mproc__os_holder_gone reads both again. (With w
 * PENDING, start_of gives 0 and the task is only asked to exist.) */
static bool gone(mproc__lockword *l, uint32_t w)
{
    uint64_t ostart = start_of(l, w);
    return atomic_load(&l->word) == w &&
           mproc__os_holder_gone(&l->word, w, (pid_t)(w & MPROC__LOCK_TIDMASK),
                                 &l->owner_start, ostart);
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
    uint64_t start = start_of(c->l, c->seen);
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

/* Takes over a lock whose owner died: one CAS from the word we saw, to our
 * tid marked PENDING ("start time not yet stored"), so that in the moment
 * before took() nobody sees our tid beside the dead one's start time and
 * judges us dead too; then the start time, then the mark goes. Only one
 * CAS of the word succeeds, and a loser writes nothing: owner_start is
 * written by the word's owner alone (start times count clock ticks, so a
 * loser that cleared "the dead one's" start time could clear a winner's
 * equal one). */
static bool take_over(mproc__lockword *l, uint32_t seen, pid_t self,
                      uint64_t start)
{
    if (!atomic_compare_exchange_strong(&l->word, &seen,
                                        (uint32_t)self | MPROC__LOCK_WAITERS |
                                            MPROC__LOCK_PENDING))
        return false;
    atomic_store(&l->inconsistent, 1);
    took(l, start);
    atomic_fetch_and_explicit(&l->word, ~MPROC__LOCK_PENDING,
                              memory_order_release);
    return true;
}

/* After the deadline: a last look, so that a try (timeout 0) also finds a
 * dead owner, as pthread_mutex_trylock does. */
static int last_look(mproc__lockword *l, uint32_t w, pid_t self, uint64_t start)
{
    if (gone(l, w) && take_over(l, w, self, start))
        return MPROC_EOWNERDEAD;
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
    return w != 0 && w != MPROC__LOCK_NOTREC && gone(l, w);
}

int mproc__lockword_take_if_gone(mproc__lockword *l)
{
    uint32_t w = atomic_load(&l->word);
    if (w == 0 || w == MPROC__LOCK_NOTREC || !gone(l, w))
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
