/*
 * Internals of the process module that tests reach into.
 */
#ifndef MPROC_INTERNAL_PROCESS_H
#define MPROC_INTERNAL_PROCESS_H

#include <stdbool.h>

/* Test hook: when set, children started afterwards get no pidfd, as on a
 * kernel (or under a tool) without pidfd_open. Set it only while no other
 * thread starts processes. */
extern bool mproc__process_test_no_pidfd;

#endif
