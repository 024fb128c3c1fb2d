/*
 * Deadlines: every blocking call turns its timeout_ms into one absolute
 * CLOCK_MONOTONIC deadline on entry and measures what is left from it, so a
 * wait interrupted and restarted never lasts longer than asked.
 */
#ifndef MPROC_INTERNAL_DEADLINE_H
#define MPROC_INTERNAL_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

typedef struct mproc__deadline {
    int64_t at_ns; /* CLOCK_MONOTONIC ns; INT64_MAX means forever */
} mproc__deadline;

/* Fills *d from timeout_ms. MPROC_EINVAL for a negative value other than
 * MPROC_FOREVER; *d is untouched then. */
int mproc__deadline_init(mproc__deadline *d, int64_t timeout_ms);

/* A deadline that never passes. */
mproc__deadline mproc__deadline_forever(void);

bool mproc__deadline_is_forever(const mproc__deadline *d);

/* True once the deadline has passed (never for forever). */
bool mproc__deadline_expired(const mproc__deadline *d);

/* Milliseconds left, rounded up, for poll(2): -1 for forever, 0 when passed,
 * clamped to INT32_MAX. */
int mproc__deadline_poll_ms(const mproc__deadline *d);

/* Nanoseconds left: INT64_MAX for forever, 0 when passed. */
int64_t mproc__deadline_left_ns(const mproc__deadline *d);

/* The deadline as an absolute CLOCK_MONOTONIC timespec (for futex waits with
 * FUTEX_CLOCK_REALTIME unset and FUTEX_WAIT_BITSET). Undefined for forever. */
struct timespec mproc__deadline_abs(const mproc__deadline *d);

/* The earlier of two deadlines. */
mproc__deadline mproc__deadline_min(mproc__deadline a, mproc__deadline b);

/* The next slice of a sleep cut into slices that double while nothing
 * comes: twice ms, but never more than max. */
static inline int64_t mproc__slice_next(int64_t ms, int64_t max)
{
    return ms >= max / 2 ? max : 2 * ms;
}

#endif
