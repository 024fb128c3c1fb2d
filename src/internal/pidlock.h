/*
 * pidlock: a process-local mutex that survives fork. The word holds the pid
 * of the process whose thread holds it (0: free). A child forked while a
 * thread of its parent held it sees the parent's pid, a holder that does
 * not exist in the child, and takes it over, where a pthread mutex would
 * stay locked for ever. For short sections only (the waiters sleep on the
 * word until the holder lets go).
 */
#ifndef MPROC_INTERNAL_PIDLOCK_H
#define MPROC_INTERNAL_PIDLOCK_H

#include <stdatomic.h>
#include <stdint.h>

#include "os/os.h"
#include "os/task.h"

static inline void mproc__pidlock_lock(_Atomic uint32_t *mu)
{
    uint32_t me = (uint32_t)mproc__os_self_pid();
    for (;;) {
        uint32_t cur = atomic_load_explicit(mu, memory_order_relaxed);
        if (cur != me) {
            if (atomic_compare_exchange_weak_explicit(
                    mu, &cur, me, memory_order_acquire, memory_order_relaxed))
                return;
            continue;
        }
        mproc__os_futex_wait((const uint32_t *)mu, me, NULL);
    }
}

static inline void mproc__pidlock_unlock(_Atomic uint32_t *mu)
{
    atomic_store_explicit(mu, 0, memory_order_release);
    mproc__os_futex_wake((const uint32_t *)mu, 1);
}

#endif
