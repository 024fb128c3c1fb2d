/*
 * spin: how long a waiter spins before it sleeps. Spinning pays while the
 * other side runs on another CPU and answers sooner than a sleep and a
 * wake-up would; it is wasted beyond that. So the spin follows what a
 * wake-up costs on this machine: a waiter woken from a futex sleep notes
 * how long after its waker's timestamp it ran again, and the spin budget is
 * a running average of those figures (the classic rule: spin as long as
 * blocking costs, and lose at most twice the optimum), within
 * MPROC__SPIN_MIN_NS .. MPROC__SPIN_MAX_NS. The figure is per process (a
 * machine's wake-up cost is the same for every object in it).
 */
#ifndef MPROC_INTERNAL_SPIN_H
#define MPROC_INTERNAL_SPIN_H

#include <stdbool.h>
#include <stdint.h>

#include "os/os.h"

#define MPROC__SPIN_MIN_NS 2000
#define MPROC__SPIN_MAX_NS 100000
#define MPROC__SPIN_DEFAULT_NS 10000

/* The current budget in nanoseconds; 0 on a machine with one CPU (spinning
 * there only delays the other side). */
int64_t mproc__spin_budget_ns(void);

/* A waiter woken by someone who stamped waker_ns (CLOCK_MONOTONIC) right
 * before the wake system call, and running again at now_ns. Samples that
 * make no sense (negative, above a second) are ignored. */
void mproc__spin_note_wake(int64_t waker_ns, int64_t now_ns);

/* Spins for up to ns nanoseconds until ready(arg) holds, looking first and
 * then between pauses (the clock is read every 64 looks): true when it
 * came to hold. The rings' spins (pipe rings, queues) go through here. */
static inline bool mproc__spin_until(bool (*ready)(void *), void *arg,
                                     int64_t ns)
{
    int64_t until = mproc__os_monotonic_ns() + ns;
    for (unsigned i = 1;; i++) {
        if (ready(arg))
            return true;
        mproc__os_cpu_relax();
        if ((i & 63u) == 0 && mproc__os_monotonic_ns() > until)
            return false;
    }
}

#endif
