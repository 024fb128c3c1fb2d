/*
 * mproc/sync.h: process-shared Lock, RLock, Semaphore, BoundedSemaphore,
 * Event, Condition and Barrier, as in Python's multiprocessing, with one
 * difference that matters: every primitive tells its caller when a process
 * died holding it or waiting in it.
 *
 * Every object lives in a shared region (docs/shared-memory.md) and is made
 * either anonymous (name NULL: inherited by children forked after it is
 * made; unreachable for anyone else) or named ("/name", at most NAME_MAX-1
 * bytes, no other '/': a file in /dev/shm, mode 0600 unless opts say
 * otherwise, created with O_EXCL, opened by unrelated processes with
 * mproc_<object>_open). A handle is process-local: closing it unmaps this
 * process's view and never removes the name; mproc_<object>_unlink removes
 * the name (the object lives on while mapped).
 *
 * Fork: a child inherits every handle and shares the object with its
 * parent; each process closes its own copy. Locks are owned by a thread:
 * a child does not inherit ownership of a lock its parent holds.
 *
 * Threads: every call is safe from several threads of one process.
 *
 * Blocking: every wait takes int64_t timeout_ms (MPROC_FOREVER, 0 = try,
 * > 0 = at most that long, then MPROC_ETIMEDOUT). Uncontended acquire and
 * release, set on an event nobody waits for, and release of a semaphore
 * nobody waits on make no system call. (Semaphores, conditions and
 * barriers count their sleepers to know when to wake; a process killed
 * while asleep leaves that count one too high for good, which costs every
 * later wake one useless futex system call but never loses a wake-up. An
 * Event marks sleepers with a bit in its word that every set and clear
 * resets, so there such a process costs one useless wake-up at most.)
 *
 * Death: processes are recognised by their thread ids in the caller's pid
 * namespace, so every process using one object must share a pid namespace
 * and be able to read /proc of the others (without /proc a zombie counts
 * as alive). Death is noticed by sleepers within about 50 ms.
 */
#ifndef MPROC_SYNC_H
#define MPROC_SYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "mproc/error.h"
#include "mproc/named.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ Lock */

/*
 * A Lock (non-recursive) or RLock (recursive: owner and depth). The owner is
 * the thread that acquired it, identified by its thread id and start time
 * (so a reused id is not mistaken for the owner; the residual risk is a
 * reuse with the same start tick). Only the owner may release it (unlike
 * Python's Lock, which any thread may release): ownership is what lets a
 * waiter notice that the holder died.
 *
 * Owner death (the holding thread or its whole process ends, e.g. SIGKILL):
 * the next acquirer gets the lock and MPROC_EOWNERDEAD. It should repair the
 * protected state and call mproc_lock_consistent(); if it releases the lock
 * without doing so, the lock becomes not recoverable and every later
 * acquire returns MPROC_ENOTRECOVERABLE (as POSIX robust mutexes do). A
 * thread that exits while holding a lock counts as dead too.
 *
 * Fork: the child shares the lock, not its ownership. A lock that a thread
 * of the parent holds at the fork stays held by that thread: the child's
 * acquire waits for the parent's release (or its death), and the child's
 * release is MPROC_ENOTOWNER. Unrelated processes open a named Lock or
 * RLock with mproc_lock_open; the RLock inside a Value, an Array or a
 * Condition is reached only through that object.
 */
typedef struct mproc_lock mproc_lock;

typedef struct mproc_lock_opts {
    bool recursive;      /* an RLock (create only) */
    unsigned mode;       /* permission bits of a named lock; 0 means 0600 */
    mproc_access access; /* open: whose objects are accepted (named.h) */
} mproc_lock_opts;
#define MPROC_LOCK_OPTS_INIT                                                   \
    {                                                                          \
        false, 0, MPROC_ACCESS_INIT                                            \
    }

/*
 * mproc_lock_create: makes a new unlocked Lock (or RLock with
 * opts->recursive), anonymous when name is NULL, else named (a name ending
 * in "XXXXXX" is a template: mproc/named.h; mproc_lock_name tells the name
 * made). out: the handle, written only on success.
 * Errors: MPROC_EINVAL (out NULL, bad name, opts->mode above 0777),
 * MPROC_ENAMETOOLONG, MPROC_EEXIST (the name exists), MPROC_ENOMEM,
 * MPROC_ENOSPC, -errno.
 * A failed create leaves no name behind.
 * Ownership: close the handle with mproc_lock_close; unlink a name with
 * mproc_lock_unlink. Never blocks.
 */
MPROC_API int mproc_lock_create(mproc_lock **out, const char *name,
                                const mproc_lock_opts *opts);

/*
 * mproc_lock_open: opens an existing named Lock or RLock (any process); its
 * kind comes from the object (mproc_lock_is_recursive tells which).
 * opts: NULL for defaults; only opts->access is used (whose objects are
 * accepted: mproc/named.h).
 * Errors: MPROC_EINVAL (bad name, out NULL, access arrays),
 * MPROC_ENAMETOOLONG, MPROC_ENOENT, MPROC_EDENIED (the file's owner or mode
 * is not accepted by opts->access), MPROC_EBADOBJ (not an mproc Lock or
 * RLock: another kind, a foreign file, a symlink, a directory, a damaged
 * object), MPROC_EVERSION, MPROC_EACCES (the system's: the file's mode does
 * not let this user open it), MPROC_ENOMEM, -errno.
 * Waits at most half a second for an object still being made.
 */
MPROC_API int mproc_lock_open(mproc_lock **out, const char *name,
                              const mproc_lock_opts *opts);

/* mproc_lock_is_recursive: 1 for an RLock, 0 for a Lock, MPROC_EINVAL for
 * NULL. The kind is the one seen at create/open. */
MPROC_API int mproc_lock_is_recursive(mproc_lock *lock);

/* mproc_lock_close: releases this handle (never the lock, never the name).
 * NULL is ignored. A lock still held stays held. */
MPROC_API void mproc_lock_close(mproc_lock *lock);

/* mproc_lock_unlink: removes a named Lock or RLock's name after checking it
 * is one (a damaged one too: mproc/named.h). Errors: name errors,
 * MPROC_ENOENT (no such name, e.g. a second unlink), MPROC_EBADOBJ (another
 * kind, not mproc, a symlink, a directory; not removed), MPROC_EVERSION,
 * MPROC_EACCES, MPROC_EPERM (another user's name, which only its owner may
 * remove), -errno. */
MPROC_API int mproc_lock_unlink(const char *name);

/*
 * mproc_lock_acquire: takes the lock, waiting up to timeout_ms.
 * Returns 0 (held); MPROC_EOWNERDEAD (held: the previous owner died holding
 * it, see mproc_lock_consistent); MPROC_ENOTRECOVERABLE (not held: an owner
 * died and the state was never marked consistent); MPROC_ETIMEDOUT (not
 * held); MPROC_EDEADLK (a Lock the calling thread already holds; an RLock
 * counts one level deeper instead); MPROC_EOVERFLOW (RLock depth);
 * MPROC_EINVAL (NULL, bad timeout). No system call when uncontended.
 */
MPROC_API int mproc_lock_acquire(mproc_lock *lock, int64_t timeout_ms);

/*
 * mproc_lock_release: releases one level of the lock.
 * Errors: MPROC_EINVAL (NULL), MPROC_ENOTOWNER (the calling thread does not
 * hold it; nothing changes). Releasing after MPROC_EOWNERDEAD without
 * mproc_lock_consistent makes the lock not recoverable. Never blocks.
 */
MPROC_API int mproc_lock_release(mproc_lock *lock);

/*
 * mproc_lock_consistent: marks the state protected by a lock acquired with
 * MPROC_EOWNERDEAD as repaired, so the lock works normally again.
 * Errors: MPROC_EINVAL (NULL, or the lock is not in the owner-died state),
 * MPROC_ENOTOWNER (the caller does not hold it).
 */
MPROC_API int mproc_lock_consistent(mproc_lock *lock);

/* mproc_lock_is_owned: 1 when the calling thread holds the lock, 0 when
 * not, MPROC_EINVAL for NULL. */
MPROC_API int mproc_lock_is_owned(mproc_lock *lock);

/* mproc_lock_name: the name of a named lock (borrowed, valid until close;
 * the name made from a template); NULL when anonymous, for the lock of a
 * Value, Array or Condition, and for NULL. */
MPROC_API const char *mproc_lock_name(mproc_lock *lock);

/* ------------------------------------------------------------- Semaphore */

/*
 * A counting Semaphore, or a BoundedSemaphore (opts->bounded) whose count
 * may never exceed its initial value.
 *
 * Death: a semaphore has no owner (any process may release what another
 * acquired, as in Python and POSIX). A count held by a process that dies is
 * NOT given back: the semaphore stays one lower until someone releases for
 * it (mproc_semaphore_value shows it). A process killed while waiting in
 * acquire takes nothing and wedges no one.
 *
 * Fork: the child shares the count (nothing is owned, nothing copied).
 * Unrelated processes open a named Semaphore or BoundedSemaphore with
 * mproc_semaphore_open.
 */
typedef struct mproc_semaphore mproc_semaphore;

typedef struct mproc_semaphore_opts {
    bool bounded;  /* release above the initial value is MPROC_EOVERRELEASE
                      (create only) */
    unsigned mode; /* 0 means 0600 */
    mproc_access access; /* open: whose objects are accepted (named.h) */
} mproc_semaphore_opts;
#define MPROC_SEMAPHORE_OPTS_INIT                                              \
    {                                                                          \
        false, 0, MPROC_ACCESS_INIT                                            \
    }

/*
 * mproc_semaphore_create: a new semaphore with count value (0 allowed, at
 * most INT32_MAX). Errors as mproc_lock_create, and MPROC_EINVAL for a
 * value above INT32_MAX.
 */
MPROC_API int mproc_semaphore_create(mproc_semaphore **out, const char *name,
                                     uint32_t value,
                                     const mproc_semaphore_opts *opts);

/* mproc_semaphore_open: opens a named Semaphore or BoundedSemaphore (the
 * kind comes from the object: mproc_semaphore_is_bounded); only
 * opts->access is used. Errors as mproc_lock_open. */
MPROC_API int mproc_semaphore_open(mproc_semaphore **out, const char *name,
                                   const mproc_semaphore_opts *opts);

/* mproc_semaphore_is_bounded: 1 for a BoundedSemaphore, 0 for a Semaphore,
 * MPROC_EINVAL for NULL. */
MPROC_API int mproc_semaphore_is_bounded(mproc_semaphore *sem);

/* mproc_semaphore_close: drops this handle; NULL is ignored. */
MPROC_API void mproc_semaphore_close(mproc_semaphore *sem);

/* mproc_semaphore_unlink: removes a named semaphore's name (either kind);
 * errors as mproc_lock_unlink. */
MPROC_API int mproc_semaphore_unlink(const char *name);

/*
 * mproc_semaphore_acquire: takes one count, waiting up to timeout_ms while
 * the count is 0. Returns 0, MPROC_ETIMEDOUT, MPROC_EINVAL (NULL,
 * timeout_ms below MPROC_FOREVER).
 */
MPROC_API int mproc_semaphore_acquire(mproc_semaphore *sem, int64_t timeout_ms);

/*
 * mproc_semaphore_release: gives n counts back (n >= 1) and wakes as many
 * waiters. Errors: MPROC_EINVAL (NULL, n 0), MPROC_EOVERRELEASE (bounded and
 * the count would exceed the initial value, as this handle read it at
 * create/open, whatever the shared memory says later; nothing changes),
 * MPROC_EOVERFLOW (the count would exceed INT32_MAX). Never blocks.
 */
MPROC_API int mproc_semaphore_release(mproc_semaphore *sem, uint32_t n);

/* mproc_semaphore_value: the current count into *value (out; a snapshot).
 * MPROC_EINVAL when sem or value is NULL. */
MPROC_API int mproc_semaphore_value(mproc_semaphore *sem, uint32_t *value);

/* mproc_semaphore_name: the name, as mproc_lock_name. */
MPROC_API const char *mproc_semaphore_name(mproc_semaphore *sem);

/* ----------------------------------------------------------------- Event */

/*
 * An Event: a flag processes set, clear and wait for. A process killed
 * while waiting wedges no one.
 *
 * Fork: the child shares the flag; the pollable fd of mproc_event_fd is
 * this process's own (a child calls mproc_event_fd on its handle to get
 * its own). Unrelated processes open a named Event with mproc_event_open.
 */
typedef struct mproc_event mproc_event;

typedef struct mproc_event_opts {
    unsigned mode;       /* 0 means 0600 */
    mproc_access access; /* open: whose objects are accepted (named.h) */
} mproc_event_opts;
#define MPROC_EVENT_OPTS_INIT                                                  \
    {                                                                          \
        0, MPROC_ACCESS_INIT                                                   \
    }

/* mproc_event_create: a new clear event; errors as mproc_lock_create. */
MPROC_API int mproc_event_create(mproc_event **out, const char *name,
                                 const mproc_event_opts *opts);

/* mproc_event_open: opens a named event (only opts->access is used);
 * errors as mproc_lock_open. */
MPROC_API int mproc_event_open(mproc_event **out, const char *name,
                               const mproc_event_opts *opts);

/* mproc_event_close: drops this handle (and its fd, see mproc_event_fd);
 * NULL is ignored. Returns within a bounded time. */
MPROC_API void mproc_event_close(mproc_event *ev);

/* mproc_event_unlink: removes a named event's name; as mproc_lock_unlink. */
MPROC_API int mproc_event_unlink(const char *name);

/* mproc_event_set: sets the flag and wakes every waiter. No system call
 * when nobody waits. MPROC_EINVAL for NULL. */
MPROC_API int mproc_event_set(mproc_event *ev);

/* mproc_event_clear: clears the flag. MPROC_EINVAL for NULL. */
MPROC_API int mproc_event_clear(mproc_event *ev);

/* mproc_event_is_set: 1 when set, 0 when clear, MPROC_EINVAL for NULL. */
MPROC_API int mproc_event_is_set(mproc_event *ev);

/*
 * mproc_event_wait: waits up to timeout_ms for the flag to be set.
 * Returns 0 (it was set), MPROC_ETIMEDOUT, MPROC_EINVAL (NULL, timeout_ms
 * below MPROC_FOREVER).
 */
MPROC_API int mproc_event_wait(mproc_event *ev, int64_t timeout_ms);

/*
 * mproc_event_fd: a file descriptor that polls readable (POLLIN) while the
 * event is set and not readable while it is clear, so an event loop can
 * wait on it beside sockets. Never read from or write to it.
 * out fd: owned by the handle, valid in the calling process until
 * mproc_event_close; the same fd is returned on later calls. It is made on
 * the first call: an eventfd kept in step by a helper thread of this
 * process that sleeps on the event (so the fd follows the event with the
 * delay of one thread wake-up, and a forked child must call mproc_event_fd
 * on its own handle to get its own). Close-on-exec. The helper thread runs
 * with every signal blocked (process-directed signals reach the program's
 * own threads) and wakes only when the event changes or is closed.
 * Errors: MPROC_EINVAL (ev or fd NULL), MPROC_EMFILE, MPROC_ENFILE,
 * MPROC_ENOMEM, MPROC_EAGAIN (no thread could be started), -errno.
 * Thread safe; fork: safe in a child even when another thread of the
 * parent was inside this call at the fork.
 */
MPROC_API int mproc_event_fd(mproc_event *ev, int *fd);

/* mproc_event_name: the name, as mproc_lock_name. */
MPROC_API const char *mproc_event_name(mproc_event *ev);

/* ------------------------------------------------------------- Condition */

/*
 * A Condition over a Lock or RLock. Waiters sleep on a sequence number that
 * every notify bumps, so a process killed while waiting leaves no count
 * behind that could swallow a notification. A wait returns 0 only after
 * some notify came while it waited, but not always one meant for it: a
 * waiter that a notify(n) did not pick still returns 0 when a signal
 * handler interrupts its sleep, or when the notify came between its
 * release of the lock and its sleep. A signal alone never ends a wait.
 * Use mproc_condition_wait_for to wait for a predicate.
 *
 * Fork: the child shares the condition, and its lock through its inherited
 * handles (ownership as for a Lock: a child does not hold what its parent
 * held). Unrelated processes open a named Condition with
 * mproc_condition_open, with a handle on the same named lock the creator
 * gave (a named Condition over an anonymous lock serves only the
 * creator's children), or NULL when the creator gave none.
 */
typedef struct mproc_condition mproc_condition;

typedef struct mproc_condition_opts {
    unsigned mode;       /* 0 means 0600 */
    mproc_access access; /* open: whose objects are accepted (named.h) */
} mproc_condition_opts;
#define MPROC_CONDITION_OPTS_INIT                                              \
    {                                                                          \
        0, MPROC_ACCESS_INIT                                                   \
    }

/*
 * mproc_condition_create: a new condition using lock (borrowed: it must
 * outlive the condition handle and be shared with the same processes), or,
 * when lock is NULL, an RLock of its own inside the condition's region (as
 * Python's Condition() makes one).
 * Errors as mproc_lock_create.
 */
MPROC_API int mproc_condition_create(mproc_condition **out, const char *name,
                                     mproc_lock *lock,
                                     const mproc_condition_opts *opts);

/*
 * mproc_condition_open: opens a named condition. lock must be a handle on
 * the same lock the creator gave (which lock it is cannot be checked), or
 * NULL when the creator gave NULL (the condition's own RLock is used).
 * Only opts->access is used (opts may be NULL).
 * Errors as mproc_lock_open, and MPROC_EINVAL when lock is NULL but the
 * creator gave a lock, or lock is not NULL but the creator gave none.
 */
MPROC_API int mproc_condition_open(mproc_condition **out, const char *name,
                                   mproc_lock *lock,
                                   const mproc_condition_opts *opts);

/* mproc_condition_close: drops this handle (and its own lock handle, never
 * a borrowed one); NULL is ignored. */
MPROC_API void mproc_condition_close(mproc_condition *cond);

/* mproc_condition_unlink: removes a named condition's name. */
MPROC_API int mproc_condition_unlink(const char *name);

/* mproc_condition_lock: the condition's lock (borrowed, valid until
 * mproc_condition_close); acquire and release it with mproc_lock_*.
 * NULL for a NULL condition. */
MPROC_API mproc_lock *mproc_condition_lock(mproc_condition *cond);

/*
 * mproc_condition_wait: releases the lock (every level of an RLock), sleeps
 * until notified or timeout_ms passes, and takes the lock back (waiting
 * without bound for it: it is robust, so a dead holder cannot hang us).
 * Returns 0 (a notify came while it waited, perhaps one meant for another
 * waiter as above; never a signal handler alone), MPROC_ETIMEDOUT (lock
 * held again), MPROC_EOWNERDEAD (lock held again, after its holder died
 * meanwhile), MPROC_ENOTRECOVERABLE (lock NOT held), MPROC_ENOTOWNER (the
 * caller did not hold the lock; nothing happened), MPROC_EINVAL (NULL,
 * timeout_ms below MPROC_FOREVER).
 */
MPROC_API int mproc_condition_wait(mproc_condition *cond, int64_t timeout_ms);

/*
 * mproc_condition_wait_for: waits until pred(arg) returns non-zero, with the
 * lock held at every call of pred, or until timeout_ms passes in all.
 * Returns 0 (pred true), MPROC_ETIMEDOUT (pred still false; lock held),
 * MPROC_EINVAL (pred NULL), or an error of mproc_condition_wait (with
 * MPROC_ENOTOWNER before pred is ever called).
 */
MPROC_API int mproc_condition_wait_for(mproc_condition *cond,
                                       int (*pred)(void *arg), void *arg,
                                       int64_t timeout_ms);

/*
 * mproc_condition_notify: wakes up to n waiters (n >= 1); the caller must
 * hold the lock. Errors: MPROC_EINVAL (NULL, n < 1), MPROC_ENOTOWNER.
 * A waiter racing into wait at the same moment may wake too.
 */
MPROC_API int mproc_condition_notify(mproc_condition *cond, int n);

/* mproc_condition_notify_all: wakes every waiter; as notify. */
MPROC_API int mproc_condition_notify_all(mproc_condition *cond);

/* mproc_condition_name: the name, as mproc_lock_name. */
MPROC_API const char *mproc_condition_name(mproc_condition *cond);

/* --------------------------------------------------------------- Barrier */

/*
 * A Barrier for `parties` processes (or threads). The last to arrive runs
 * the action of its own handle, then all go on. A barrier breaks (every
 * waiter and every later arrival gets MPROC_EBROKEN until
 * mproc_barrier_reset) when: a waiter times out, mproc_barrier_abort is
 * called, the action returns non-zero, or a participant dies while others
 * wait at it (noticed within about 50 ms by every sleeper, whatever its
 * timeout). Participants are the threads that arrived in the current
 * generation and those that passed the previous one: one of those that
 * dies (or whose thread ends) before arriving again breaks the generation
 * being waited for. A process that has never arrived is unknown to the
 * barrier, and its death cannot be noticed.
 *
 * Fork: the child shares the barrier and inherits the handle, action
 * included; it takes part on its own (threads are counted, not handles).
 * Unrelated processes open a named Barrier with mproc_barrier_open, each
 * with its own action.
 */
typedef struct mproc_barrier mproc_barrier;

typedef struct mproc_barrier_opts {
    /* Run by the last arrival before the others are released; non-zero
     * breaks the barrier. Per handle: each process gives its own. It runs
     * outside the barrier's internal lock, so every waiter keeps its own
     * timeout: one that times out while the action runs breaks the barrier
     * and the last arrival then gets MPROC_EBROKEN. It must not call
     * mproc_barrier_* on the same barrier (return non-zero to break it
     * instead). */
    int (*action)(void *arg);
    void *action_arg;
    unsigned mode;       /* 0 means 0600 */
    mproc_access access; /* open: whose objects are accepted (named.h) */
} mproc_barrier_opts;
#define MPROC_BARRIER_OPTS_INIT                                                \
    {                                                                          \
        NULL, NULL, 0, MPROC_ACCESS_INIT                                       \
    }

/* mproc_barrier_create: a new barrier for parties (1..1024) participants.
 * Errors as mproc_lock_create, MPROC_EINVAL for parties out of range. */
MPROC_API int mproc_barrier_create(mproc_barrier **out, const char *name,
                                   uint32_t parties,
                                   const mproc_barrier_opts *opts);

/* mproc_barrier_open: opens a named barrier; opts gives this process's
 * action and the access rules (mode is ignored). Errors as
 * mproc_lock_open. */
MPROC_API int mproc_barrier_open(mproc_barrier **out, const char *name,
                                 const mproc_barrier_opts *opts);

/* mproc_barrier_close: drops this handle; NULL is ignored. */
MPROC_API void mproc_barrier_close(mproc_barrier *b);

/* mproc_barrier_unlink: removes a named barrier's name. */
MPROC_API int mproc_barrier_unlink(const char *name);

/*
 * mproc_barrier_wait: arrives and waits for all parties, up to timeout_ms.
 * out index (may be NULL): the arrival index, 0..parties-1, distinct for
 * each participant; parties-1 for the one that ran the action.
 * Returns 0; MPROC_EBROKEN (the barrier is or became broken; the caller's
 * own failing action also gives this; so does a named barrier whose shared
 * arrival count is out of range, i.e. corrupted or more callers than
 * parties); MPROC_ETIMEDOUT (this waiter timed out, which breaks the
 * barrier for the others; two exceptions, both when another participant
 * holds the barrier's short internal lock for longer than 50 ms, e.g.
 * stopped by SIGSTOP: a caller that could not take it to arrive, even a
 * try, leaves having changed nothing, and a waiter that could not take it
 * to break the barrier at its deadline leaves it unbroken, still counted
 * as arrived); MPROC_EINVAL (NULL, timeout_ms below MPROC_FOREVER).
 * Blocking: up to timeout_ms, and up to 50 ms more at each of two points
 * (getting in, breaking the barrier at the deadline), as the internal lock
 * is held only for a few stores; a participant stopped while holding it
 * holds up the last arrival (and abort and reset) until it resumes.
 */
MPROC_API int mproc_barrier_wait(mproc_barrier *b, int64_t timeout_ms,
                                 uint32_t *index);

/* mproc_barrier_abort: breaks the barrier (waiters get MPROC_EBROKEN).
 * MPROC_EINVAL for NULL. */
MPROC_API int mproc_barrier_abort(mproc_barrier *b);

/* mproc_barrier_reset: returns the barrier to its empty, unbroken state;
 * processes waiting at it get MPROC_EBROKEN. MPROC_EINVAL for NULL. */
MPROC_API int mproc_barrier_reset(mproc_barrier *b);

/* mproc_barrier_parties: the number of parties (0 for NULL). */
MPROC_API uint32_t mproc_barrier_parties(mproc_barrier *b);

/* mproc_barrier_n_waiting: how many wait at it now (a snapshot); 0 when
 * it is broken, and for NULL. */
MPROC_API uint32_t mproc_barrier_n_waiting(mproc_barrier *b);

/* mproc_barrier_broken: 1 when broken, 0 when not, MPROC_EINVAL for NULL. */
MPROC_API int mproc_barrier_broken(mproc_barrier *b);

/* mproc_barrier_name: the name, as mproc_lock_name. */
MPROC_API const char *mproc_barrier_name(mproc_barrier *b);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_SYNC_H */
