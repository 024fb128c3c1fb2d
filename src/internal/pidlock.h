/*
 * pidlock: a process-local mutex that survives fork. The word holds the pid
 * of the process whose thread holds it (0: free), and a waiters bit. A child
 * forked while a thread of its parent held it sees the parent's pid, a
 * holder that does not exist in the child, and takes it over, where a
 * pthread mutex would stay locked for ever. For short sections: waiters
 * sleep on the word, and an unlock makes a system call only when one
 * sleeps.
 */
#ifndef MPROC_INTERNAL_PIDLOCK_H
#define MPROC_INTERNAL_PIDLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Takes the lock. True when it was taken over from a holder in another
 * process (the parent this process was forked from): what the lock guards
 * may then be half changed, and the caller repairs it. */
bool mproc__pidlock_lock(_Atomic uint32_t *mu);

void mproc__pidlock_unlock(_Atomic uint32_t *mu);

#endif
