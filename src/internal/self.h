/*
 * The calling process's own identity as mproc sees it: its name
 * ("MainProcess" until mproc names it in a child it starts) and the counter
 * used to name the children it starts ("Process-N", "Process-N:M" below).
 * One per process; reset in a child right after fork by the process module.
 */
#ifndef MPROC_INTERNAL_SELF_H
#define MPROC_INTERNAL_SELF_H

#include <stddef.h>
#include <sys/types.h>

#define MPROC__NAME_MAX 64 /* bytes, including the NUL */

/* The caller's name. The pointer stays valid until the name changes, which
 * only happens in a freshly forked child before user code runs. */
const char *mproc__self_name(void);

/* Sets the caller's name (truncated to MPROC__NAME_MAX - 1 bytes). Called
 * in a child right after fork, while it has one thread. */
void mproc__self_set_name(const char *name);

/* The caller's identity path ("" in the main process, "3" in Process-3,
 * "3:1" in Process-3:1), used to build children's default names. */
const char *mproc__self_identity(void);
void mproc__self_set_identity(const char *identity);

/* Records, in a child right after fork, the process that started it: its
 * pid and name. */
void mproc__self_set_parent(pid_t pid, const char *name);

/* The parent recorded for the caller: its pid, with *name (may be NULL)
 * set to its name; 0 when mproc did not start the caller (nothing was
 * recorded, or the caller is a plain fork of a process mproc started). */
pid_t mproc__self_parent(const char **name);

/* The next child number (1, 2, ...), atomically; reset to 0 in a child. */
unsigned mproc__self_next_child(void);
void mproc__self_reset_children(void);

#endif
