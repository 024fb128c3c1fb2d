/*
 * Mutexes with a CLOCK_MONOTONIC deadline (glibc >= 2.30). ThreadSanitizer
 * does not intercept pthread_mutex_clocklock, so under it the same wait
 * goes through pthread_mutex_timedlock with the deadline moved to
 * CLOCK_REALTIME (a clock step then only shifts a test's wait).
 */
#include "os/mutex.h"

#include <errno.h>

#include "mproc/error.h"

#if defined(__SANITIZE_THREAD__)
#define MUTEX_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MUTEX_TSAN 1
#endif
#endif

int mproc__os_mutex_lock_until(pthread_mutex_t *m, const struct timespec *abs)
{
    if (abs == NULL)
        return pthread_mutex_lock(m) == 0 ? 0 : MPROC_EINVAL;
    int e = pthread_mutex_trylock(m);
    if (e != EBUSY)
        return e == 0 ? 0 : MPROC_EINVAL;
#ifdef MUTEX_TSAN
    struct timespec mono, real, at;
    clock_gettime(CLOCK_MONOTONIC, &mono);
    clock_gettime(CLOCK_REALTIME, &real);
    long long ns = (long long)(abs->tv_sec - mono.tv_sec) * 1000000000LL +
                   (abs->tv_nsec - mono.tv_nsec);
    if (ns < 0)
        ns = 0;
    ns += (long long)real.tv_nsec;
    at.tv_sec = real.tv_sec + (time_t)(ns / 1000000000LL);
    at.tv_nsec = (long)(ns % 1000000000LL);
    do
        e = pthread_mutex_timedlock(m, &at);
    while (e == EINTR);
#else
    do
        e = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, abs);
    while (e == EINTR);
#endif
    if (e == 0)
        return 0;
    return e == ETIMEDOUT ? MPROC_ETIMEDOUT : MPROC_EINVAL;
}
