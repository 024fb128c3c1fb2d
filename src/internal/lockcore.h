/*
 * The robust lock word behind mproc_lock (Lock and RLock), the lock of a
 * Value or Array, and the internal lock of a Barrier. It lives in shared
 * memory (32 bytes, docs/shared-memory.md) and needs no process-local state.
 *
 * word: 0 when free; otherwise the owner's thread id (bits 0..29) with
 * MPROC__LOCK_WAITERS set while someone may sleep on it, and
 * MPROC__LOCK_PENDING while the owner, having taken the lock over from a
 * dead one, has not yet stored its start time; or MPROC__LOCK_NOTREC once
 * the lock is not recoverable. Acquire and release
 * are one compare-and-swap / exchange each; the futex is touched only when
 * the waiters bit is set.
 *
 * Owner: the thread whose id is in the word AND whose start time is
 * owner_start; a thread that got a dead owner's reused tid is not the owner.
 * owner_start is 0 while free and between an acquirer's CAS and its store
 * of the start time ("tid only, not yet known"): a release clears it before
 * giving the word up, and a take-over marks the word PENDING until it has
 * stored its own, so the word never shows a new owner's tid beside the
 * previous owner's start time. Only the owner in the word writes it.
 *
 * Owner death: a sleeper wakes every MPROC__WAITWORD_SLICE_MS and checks
 * that the owner thread still exists and started at owner_start (pid
 * reuse); if not, it takes the lock over with one CAS and reports
 * MPROC_EOWNERDEAD, leaving `inconsistent` set until the new owner calls
 * mproc__lockword_consistent. Releasing while inconsistent makes the word
 * MPROC__LOCK_NOTREC for good.
 */
#ifndef MPROC_INTERNAL_LOCKCORE_H
#define MPROC_INTERNAL_LOCKCORE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal/deadline.h"
#include "internal/waitword.h"
#include "os/task.h"

#define MPROC__LOCK_WAITERS 0x80000000u
#define MPROC__LOCK_PENDING 0x40000000u
#define MPROC__LOCK_TIDMASK 0x3fffffffu
#define MPROC__LOCK_NOTREC 0x3fffffffu /* above PID_MAX_LIMIT (2^22) */

typedef struct mproc__lockword {
    _Atomic uint32_t word;
    _Atomic uint32_t inconsistent; /* 1 after an owner died, until fixed */
    _Atomic uint64_t owner_start;  /* owner's start time; 0: not known */
    uint32_t depth;                /* RLock depth; touched by the owner */
    uint32_t recursive;            /* 1 for an RLock; set at creation */
    uint64_t reserved;
} mproc__lockword;

void mproc__lockword_init(mproc__lockword *l, bool recursive);

/* One compare-and-swap on a free lock: true when it took it. No system
 * call, no clock read. */
static inline bool mproc__lockword_try_fast(mproc__lockword *l)
{
    mproc__os_self_ensure();
    uint32_t w = 0;
    if (atomic_compare_exchange_strong_explicit(
            &l->word, &w, (uint32_t)mproc__os_self.tid, memory_order_acquire,
            memory_order_relaxed)) {
        atomic_store_explicit(&l->owner_start, mproc__os_self.start,
                              memory_order_relaxed);
        l->depth = 1;
        return true;
    }
    return false;
}

/* The rare part of a release: not the owner, RLock depth, inconsistent
 * state or sleepers to wake. */
int mproc__lockword_release_slow(mproc__lockword *l);

/* Release with the common case inline: the owner of a consistent lock at
 * depth one that nobody waits for is one exchange. */
static inline int mproc__lockword_release_fast(mproc__lockword *l)
{
    mproc__os_self_ensure();
    uint32_t self = (uint32_t)mproc__os_self.tid;
    if (atomic_load_explicit(&l->word, memory_order_relaxed) != self ||
        atomic_load_explicit(&l->owner_start, memory_order_relaxed) !=
            mproc__os_self.start ||
        l->depth != 1 ||
        atomic_load_explicit(&l->inconsistent, memory_order_relaxed))
        return mproc__lockword_release_slow(l);
    l->depth = 0;
    /* Cleared first, so that a new owner's tid never sits beside our start
     * time (see owner_start). */
    atomic_store_explicit(&l->owner_start, 0, memory_order_relaxed);
    uint32_t old = atomic_exchange_explicit(&l->word, 0, memory_order_release);
    if (old != self) /* a sleeper set the waiters bit meanwhile */
        mproc__waitword_wake_raw(&l->word, 1);
    return 0;
}

/* 0 (held), MPROC_EOWNERDEAD (held, previous owner died),
 * MPROC_ENOTRECOVERABLE (not held), MPROC_ETIMEDOUT, MPROC_EDEADLK (a
 * non-recursive lock the caller already holds), MPROC_EOVERFLOW (RLock
 * depth). */
int mproc__lockword_acquire(mproc__lockword *l, const mproc__deadline *d);

/* mproc__lockword_acquire with its first compare-and-swap inline: for hot
 * paths (a ring's locks), where a free lock then costs no call. */
static inline int mproc__lockword_acquire_fast(mproc__lockword *l,
                                               const mproc__deadline *d)
{
    return mproc__lockword_try_fast(l) ? 0 : mproc__lockword_acquire(l, d);
}

/* 0, MPROC_ENOTOWNER (the caller does not hold it). */
int mproc__lockword_release(mproc__lockword *l);

/* 0, MPROC_ENOTOWNER, MPROC_EINVAL (the lock is not inconsistent). */
int mproc__lockword_consistent(mproc__lockword *l);

/* True when a thread holds the lock and is found dead (for a lock taken
 * only in short sections, so that its sleepers' neighbours can notice a
 * holder killed inside one). One look, no waiting (a start time other
 * than the holder's is read twice); the caller then acquires the lock,
 * which decides. */
bool mproc__lockword_owner_dead(mproc__lockword *l);

/* For a bystander (one that does not otherwise take the lock, such as a
 * ring's receiver, which writes what the lock guards only to repair what
 * a dead holder left): takes the lock over when its holder is dead (its
 * thread id names no task, or a task that started at another time than
 * the holder: a reused id), with one compare-and-swap from the word it
 * saw. MPROC_EOWNERDEAD (held now, inconsistent), or 0 (nothing done). A
 * holder between its compare-and-swap and the store of its start time is
 * alive while its task exists. */
int mproc__lockword_take_if_gone(mproc__lockword *l);

/* True when the calling thread holds the lock. */
bool mproc__lockword_owned(mproc__lockword *l);

/* For Condition.wait: releases every level of an owned lock, returning the
 * depth in *depth; mproc__lockword_reacquire takes it back (without bound,
 * the lock being robust) and restores the depth. */
int mproc__lockword_release_all(mproc__lockword *l, uint32_t *depth);
int mproc__lockword_reacquire(mproc__lockword *l, uint32_t depth);

#endif
