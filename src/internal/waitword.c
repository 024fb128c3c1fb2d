/*
 * waitword: futex-based waiting with deadline slices for liveness checks,
 * an optional spin (for locks), and waiter counts so uncontended wakers stay in
 * user space. See waitword.h for the contract.
 */
#include "internal/waitword.h"

#include <limits.h>

#include "mproc/error.h"
#include "os/os.h"

/* About a microsecond or two: enough to catch a hand-off already under way
 * on another CPU, short enough not to matter when it is not. */
#define SPINS 64

bool mproc__waitword_spin(_Atomic uint32_t *word, uint32_t expected)
{
    for (int i = 0; i < SPINS; i++) {
        if (atomic_load_explicit(word, memory_order_acquire) != expected)
            return true;
        mproc__os_cpu_relax();
    }
    return false;
}

int mproc__waitword_sleep(_Atomic uint32_t *word, uint32_t expected,
                          const mproc__deadline *d, mproc__waitword_check check,
                          void *arg)
{
    for (;;) {
        if (atomic_load(word) != expected)
            return 0;
        mproc__deadline until = *d;
        if (check != NULL) {
            mproc__deadline slice;
            mproc__deadline_init(&slice, MPROC__WAITWORD_SLICE_MS);
            until = mproc__deadline_min(until, slice);
        }
        if (mproc__deadline_expired(d))
            return MPROC_ETIMEDOUT;
        struct timespec ts;
        if (!mproc__deadline_is_forever(&until))
            ts = mproc__deadline_abs(&until);
        int rc = mproc__os_futex_wait((const uint32_t *)word, expected,
                                      mproc__deadline_is_forever(&until) ? NULL
                                                                         : &ts);
        if (rc == 0 || rc == -EAGAIN)
            return 0;
        if (rc == -ETIMEDOUT || rc == -EINTR) {
            if (check != NULL) {
                int c = check(arg);
                if (c != 0)
                    return c;
            }
            if (mproc__deadline_expired(d))
                return MPROC_ETIMEDOUT;
            if (rc == -EINTR)
                return 0; /* let the caller re-check its condition */
            continue;
        }
        return rc;
    }
}

int mproc__waitword_wait(_Atomic uint32_t *word, _Atomic uint32_t *nwaiters,
                         uint32_t expected, const mproc__deadline *d,
                         mproc__waitword_check check, void *arg)
{
    /* No spin here: these waits (events, semaphores, conditions,
     * barriers) usually outlast any sensible spin, and on a virtual CPU a
     * pause loop can cost a hypervisor exit (measured: a sleeping Event
     * waiter's round trip went from 13 to 21 us with a 64-pause spin). */
    /* seq_cst increment then re-read: a waker that changed the word before
     * our increment is seen here; one after it sees our count. */
    atomic_fetch_add(nwaiters, 1);
    int rc = mproc__waitword_sleep(word, expected, d, check, arg);
    atomic_fetch_sub(nwaiters, 1);
    return rc;
}

void mproc__waitword_wake(_Atomic uint32_t *word, _Atomic uint32_t *nwaiters,
                          int n)
{
    if (atomic_load(nwaiters) != 0)
        mproc__os_futex_wake((const uint32_t *)word, n);
}

void mproc__waitword_wake_raw(_Atomic uint32_t *word, int n)
{
    mproc__os_futex_wake((const uint32_t *)word, n);
}
