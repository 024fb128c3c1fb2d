/*
 * Deadlines: timeout_ms to an absolute CLOCK_MONOTONIC instant and back.
 * See deadline.h for why every blocking call goes through here.
 */
#include "internal/deadline.h"

#include "mproc/error.h"
#include "os/os.h"

int mproc__deadline_init(mproc__deadline *d, int64_t timeout_ms)
{
    if (timeout_ms < MPROC_FOREVER)
        return MPROC_EINVAL;
    if (timeout_ms == MPROC_FOREVER) {
        d->at_ns = INT64_MAX;
        return 0;
    }
    int64_t now = mproc__os_monotonic_ns();
    /* A timeout so large it would overflow is as good as forever. */
    if (timeout_ms > (INT64_MAX - now) / 1000000)
        d->at_ns = INT64_MAX;
    else
        d->at_ns = now + timeout_ms * 1000000;
    return 0;
}

mproc__deadline mproc__deadline_forever(void)
{
    mproc__deadline d = {INT64_MAX};
    return d;
}

bool mproc__deadline_is_forever(const mproc__deadline *d)
{
    return d->at_ns == INT64_MAX;
}

int64_t mproc__deadline_left_ns(const mproc__deadline *d)
{
    if (d->at_ns == INT64_MAX)
        return INT64_MAX;
    int64_t left = d->at_ns - mproc__os_monotonic_ns();
    return left > 0 ? left : 0;
}

bool mproc__deadline_expired(const mproc__deadline *d)
{
    return mproc__deadline_left_ns(d) == 0;
}

int mproc__deadline_poll_ms(const mproc__deadline *d)
{
    int64_t left = mproc__deadline_left_ns(d);
    if (left == INT64_MAX)
        return -1;
    int64_t ms = (left + 999999) / 1000000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

struct timespec mproc__deadline_abs(const mproc__deadline *d)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(d->at_ns / 1000000000);
    ts.tv_nsec = (long)(d->at_ns % 1000000000);
    return ts;
}

mproc__deadline mproc__deadline_min(mproc__deadline a, mproc__deadline b)
{
    return a.at_ns <= b.at_ns ? a : b;
}
