/*
 * waitword: wait on a 32-bit word in shared memory until it changes, the
 * deadline passes, or a watched process dies; wake only when someone
 * sleeps. Every mproc object that blocks waits through here.
 *
 * Two layers:
 *  - mproc__waitword_sleep: one futex sleep cut into slices when a `check`
 *    callback is given (so a sleeper notices a dead peer within
 *    MPROC__WAITWORD_SLICE_MS). mproc__waitword_spin is a brief spin for
 *    callers that want one first (only locks: see waitword.c).
 *  - mproc__waitword_wait / mproc__waitword_wake: a sleep with a waiter
 *    count beside the word (no spin), so a waker makes the futex system call
 * only when the count says someone sleeps. The count is a hint: a sleeper
 *    killed while asleep leaves it one too high forever, which costs later
 *    wakers a useless system call but never a lost wake-up.
 */
#ifndef MPROC_INTERNAL_WAITWORD_H
#define MPROC_INTERNAL_WAITWORD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal/deadline.h"

/* How long a sleeper with a check callback sleeps between checks. */
#define MPROC__WAITWORD_SLICE_MS 50

/* A check callback: 0 to keep waiting, a negative code to stop with it. */
typedef int (*mproc__waitword_check)(void *arg);

/* Spins briefly while *word == expected; true when it changed. */
bool mproc__waitword_spin(_Atomic uint32_t *word, uint32_t expected);

/*
 * Sleeps while *word == expected (no spin, no count). Returns 0 when woken,
 * when the word differs, or spuriously (the caller re-checks its
 * condition), MPROC_ETIMEDOUT once d has passed, or the non-zero value of
 * check(arg), which is called every slice when check is not NULL.
 */
int mproc__waitword_sleep(_Atomic uint32_t *word, uint32_t expected,
                          const mproc__deadline *d, mproc__waitword_check check,
                          void *arg);

/* Counts ourselves in *nwaiters and sleeps as above (no spin). */
int mproc__waitword_wait(_Atomic uint32_t *word, _Atomic uint32_t *nwaiters,
                         uint32_t expected, const mproc__deadline *d,
                         mproc__waitword_check check, void *arg);

/* After changing *word: wakes up to n sleepers if *nwaiters says any. */
void mproc__waitword_wake(_Atomic uint32_t *word, _Atomic uint32_t *nwaiters,
                          int n);

/* Wakes up to n sleepers unconditionally (a system call). */
void mproc__waitword_wake_raw(_Atomic uint32_t *word, int n);

#endif
