/*
 * spin: the spin budget that follows the measured cost of a wake-up (see
 * spin.h). One process-wide average, updated without a lock: a lost update
 * between two threads only drops a sample.
 */
#include "internal/spin.h"

#include <stdatomic.h>
#include <unistd.h>

static _Atomic int64_t avg_ns; /* 0: no sample yet */
static atomic_int ncpu;        /* 0: not looked at yet; then 1 or 2 */

int64_t mproc__spin_budget_ns(void)
{
    int n = atomic_load_explicit(&ncpu, memory_order_relaxed);
    if (n == 0) {
        long k = sysconf(_SC_NPROCESSORS_ONLN);
        n = k > 1 ? 2 : 1;
        atomic_store_explicit(&ncpu, n, memory_order_relaxed);
    }
    if (n == 1)
        return 0;
    int64_t a = atomic_load_explicit(&avg_ns, memory_order_relaxed);
    if (a == 0)
        return MPROC__SPIN_DEFAULT_NS;
    if (a < MPROC__SPIN_MIN_NS)
        return MPROC__SPIN_MIN_NS;
    return a > MPROC__SPIN_MAX_NS ? MPROC__SPIN_MAX_NS : a;
}

void mproc__spin_note_wake(int64_t waker_ns, int64_t now_ns)
{
    int64_t s = now_ns - waker_ns;
    if (waker_ns == 0 || s <= 0 || s > 1000000000)
        return;
    int64_t a = atomic_load_explicit(&avg_ns, memory_order_relaxed);
    /* An average over about eight wake-ups: quick to follow a machine
     * whose wake-ups got slower, steady against one outlier. */
    a = a == 0 ? s : a + (s - a) / 8;
    atomic_store_explicit(&avg_ns, a, memory_order_relaxed);
}
