/*
 * Linux specifics of the process module: reaping a child through its pidfd
 * (waitid P_PIDFD), the calling thread's backtrace as text, and signal
 * abbreviations. Each returns 0 or -errno unless it says otherwise and keeps
 * errno meaningless.
 */
#ifndef MPROC_OS_PROC_H
#define MPROC_OS_PROC_H

#include <stddef.h>

/*
 * Reaps the child behind pidfd if it has exited, without blocking.
 * Returns 1 with *status (exit status, or 0) and *sig (the terminating
 * signal, or 0) filled when it was reaped, 0 when it is still running,
 * -ECHILD when it is not the caller's child or was already reaped, -errno.
 */
int mproc__os_pidfd_reap(int pidfd, int *status, int *sig);

/*
 * Writes the calling thread's stack as text into buf (one frame a line,
 * NUL-terminated, truncated to fit), skipping the innermost skip frames.
 * Returns the length written; 0 when no backtrace can be taken. Allocates
 * (not async-signal-safe).
 */
size_t mproc__os_backtrace(char *buf, size_t size, int skip);

/* "KILL" for SIGKILL, ...; "?" for an unknown number. Static string. */
const char *mproc__os_signal_abbrev(int sig);

#endif
