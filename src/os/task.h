/*
 * Who the caller is and whether another task is still alive, for the robust
 * synchronisation objects. The caller's thread id and start time are cached
 * per thread (the cache is invalidated in a forked child), so the
 * uncontended lock paths make no system call.
 */
#ifndef MPROC_OS_TASK_H
#define MPROC_OS_TASK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The per-thread cache behind the calls below, inline so that the lock
 * fast path is a few loads (initial-exec TLS: no __tls_get_addr call; a
 * few bytes of static TLS, which glibc reserves for libraries). */
typedef struct mproc__os_self_cache {
    uint32_t gen; /* the generation word it was filled under */
    pid_t tid;
    pid_t pid;
    uint64_t start;
} mproc__os_self_cache;

#define MPROC__OS_TLS _Thread_local __attribute__((tls_model("initial-exec")))
extern MPROC__OS_TLS mproc__os_self_cache mproc__os_self;
extern _Atomic(_Atomic uint32_t *) mproc__os_gen_page;

/* Refills the cache (system calls; once per thread and per fork). */
void mproc__os_self_refresh(void);

static inline void mproc__os_self_ensure(void)
{
    _Atomic uint32_t *g =
        atomic_load_explicit(&mproc__os_gen_page, memory_order_acquire);
    if (g == NULL || mproc__os_self.gen == 0 ||
        atomic_load_explicit(g, memory_order_relaxed) != mproc__os_self.gen)
        mproc__os_self_refresh();
}

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

/*
 * Whether the holder recorded in shared memory as the word *id_word (seen
 * as id, naming task tid) and the start time *start_word (read after it,
 * as start; 0: not yet known) is gone: tid names no task, or one that
 * started at another time. A start time read while the record went to
 * another holder and came back to id is another's: so a mismatch counts
 * only when both words read the same again after /proc. The robust lock
 * word and a queue's process slots judge their holders through here.
 */
bool mproc__os_holder_gone(const _Atomic uint32_t *id_word, uint32_t id,
                           pid_t tid, const _Atomic uint64_t *start_word,
                           uint64_t start);

#endif
