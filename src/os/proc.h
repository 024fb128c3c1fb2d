/*
 * Linux specifics of the process module: reaping a child through its pidfd
 * (waitid P_PIDFD), the calling thread's backtrace as text, and signal
 * abbreviations. Each returns 0 or -errno unless it says otherwise and keeps
 * errno meaningless.
 */
#ifndef MPROC_OS_PROC_H
#define MPROC_OS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Reaps the child behind pidfd (whose pid is pid) if it has exited, without
 * blocking. Returns 1 with *status (exit status, or 0) and *sig (the
 * terminating signal, or 0) filled when it was reaped, 0 when it is still
 * running, -ECHILD when it is not the caller's child or was already reaped,
 * -errno. With pidfd < 0, or on kernels without waitid(P_PIDFD) (< 5.4), it
 * waits on pid: safe, because an unreaped child's pid cannot be reused.
 */
int mproc__os_pidfd_reap(int pidfd, pid_t pid, int *status, int *sig);

/*
 * Whether process pid has exited, without reaping it: 1 exited, 0 running.
 * child: pid is the caller's child (waitid WNOWAIT tells a zombie apart);
 * otherwise kill(pid, 0) decides and a zombie counts as running.
 */
int mproc__os_pid_exited(pid_t pid, int child);

/* kill(2): 0 or -errno. */
int mproc__os_kill(pid_t pid, int sig);

/*
 * Writes the calling thread's stack as text into buf (one frame a line,
 * NUL-terminated, cut after the last whole frame that fits), from the frame
 * whose return address is from (the caller's __builtin_return_address(0),
 * so that the caller's own frames are left out whatever the compiler and
 * the sanitizers add), or the whole stack when from is not on it or NULL.
 * A frame reads
 *   "#2 parse_line+0x1f at parser.c:118 (myprog)"
 * with the function (static ones too) and, where the binary has debug
 * information, the file and line, when mproc was built with elfutils'
 * libdw; otherwise what dladdr(3) knows: exported functions only,
 * "#2 (myprog+0x1435)" for the others. Returns the length written; 0 when
 * no backtrace can be taken. Allocates and opens files (not
 * async-signal-safe); never asks a debuginfod server.
 */
size_t mproc__os_backtrace(char *buf, size_t size, const void *from);

/* Whether mproc__os_backtrace names static functions and gives lines
 * (built with libdw). */
bool mproc__os_backtrace_symbolizes(void);

/*
 * Closes every fd of the caller from 3 up except those in keep (ascending,
 * without duplicates, each >= 3): close_range(2) over the gaps, or where
 * it is missing (Linux < 5.9) each fd listed in /proc/self/fd. Returns 0
 * or -errno (then some fds may be left open). For a single-threaded child.
 */
int mproc__os_close_fds_except(const int *keep, size_t n);

/* "KILL" for SIGKILL, ...; "?" for an unknown number. Static string. */
const char *mproc__os_signal_abbrev(int sig);

#endif
