/*
 * Who the caller is and whether another task is still alive, for the robust
 * synchronisation objects. The caller's thread id and start time are cached
 * per thread (the cache is invalidated in a forked child), so the
 * uncontended lock paths make no system call.
 */
#ifndef MPROC_OS_TASK_H
#define MPROC_OS_TASK_H

#include <stdint.h>
#include <sys/types.h>

/* The caller's kernel thread id, cached per thread and correct in a forked
 * child (the cache lives in a MADV_WIPEONFORK page generation). */
pid_t mproc__os_self_tid(void);

/* The caller's process id (thread group id), cached like the tid. */
pid_t mproc__os_self_pid(void);

/* The start time of the calling thread (clock ticks since boot, from
 * /proc), cached; 0 when it could not be read. */
uint64_t mproc__os_self_start(void);

/* Both of the above with one cache check (the lock fast path). */
void mproc__os_self_ident(pid_t *tid, uint64_t *start);

/* The start time of task tid (any thread id) into *start: 0, -ESRCH when
 * the task does not exist or is a zombie, or another -errno. */
int mproc__os_task_start(pid_t tid, uint64_t *start);

/*
 * Whether task tid (a thread id in the caller's pid namespace) is alive:
 * 1 alive, 0 dead (no such task, a zombie, or, when start is not 0, a task
 * that started at another time than start, i.e. a reused id). A task whose
 * /proc entry cannot be read for another reason counts as alive.
 */
int mproc__os_task_alive(pid_t tid, uint64_t start);

#endif
