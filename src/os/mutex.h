/*
 * Bounded mutex acquisition: pthread_mutex_clocklock on CLOCK_MONOTONIC, so
 * a caller's deadline also bounds the wait for a lock another thread holds.
 */
#ifndef MPROC_OS_MUTEX_H
#define MPROC_OS_MUTEX_H

#include <pthread.h>
#include <time.h>

/* Locks m, waiting at most until abs (CLOCK_MONOTONIC); abs NULL waits
 * without bound. 0, or MPROC_ETIMEDOUT when the deadline passed first. */
int mproc__os_mutex_lock_until(pthread_mutex_t *m, const struct timespec *abs);

#endif
