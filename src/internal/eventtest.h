/*
 * Test hooks of the Event module: reach state that only a badly timed
 * thread or fork would otherwise produce. Not for the library's own use.
 */
#ifndef MPROC_INTERNAL_EVENTTEST_H
#define MPROC_INTERNAL_EVENTTEST_H

#include <stdbool.h>

#include "mproc/sync.h"

/* Takes (hold) or releases the lock that guards an event's fd, as a thread
 * inside mproc_event_fd holds it (to fork while it is held). */
void mproc__event_test_hold_mutex(mproc_event *ev, bool hold);

#endif
