/*
 * pidlock: the fork-safe process-local mutex of pidlock.h. The word is 0,
 * or the holder's pid with WAITERS set once someone sleeps on it.
 */
#include "internal/pidlock.h"

#include "os/os.h"
#include "os/task.h"

#define WAITERS 0x80000000u /* pids fit in 22 bits */

bool mproc__pidlock_lock(_Atomic uint32_t *mu)
{
    uint32_t me = (uint32_t)mproc__os_self_pid();
    uint32_t want = me;
    for (;;) {
        uint32_t cur = 0;
        if (atomic_compare_exchange_weak_explicit(
                mu, &cur, want, memory_order_acquire, memory_order_relaxed))
            return false;
        if (cur == 0)
            continue;
        if ((cur & ~WAITERS) != me) {
            /* Held by the process we were forked from: its holding thread
             * does not exist here. */
            if (atomic_compare_exchange_strong_explicit(
                    mu, &cur, me, memory_order_acquire, memory_order_relaxed))
                return true;
            continue;
        }
        if (!(cur & WAITERS) && !atomic_compare_exchange_weak_explicit(
                                    mu, &cur, cur | WAITERS,
                                    memory_order_relaxed, memory_order_relaxed))
            continue;
        mproc__os_futex_wait((const uint32_t *)mu, me | WAITERS, NULL);
        /* Others may sleep too: whoever takes it after a sleep keeps the
         * mark, so that its unlock wakes the next. */
        want = me | WAITERS;
    }
}

void mproc__pidlock_unlock(_Atomic uint32_t *mu)
{
    uint32_t old = atomic_exchange_explicit(mu, 0, memory_order_release);
    if (old & WAITERS)
        mproc__os_futex_wake((const uint32_t *)mu, 1);
}
