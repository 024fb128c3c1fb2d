/*
 * The narrow interface to Linux specifics. Module files call only these
 * mproc__os_* functions for futexes, pidfds, clocks and the like, so no
 * module carries #ifdef __linux__ or raw syscall numbers. Every function
 * returns 0 or -errno unless it says otherwise, and keeps errno meaningless.
 */
#ifndef MPROC_OS_H
#define MPROC_OS_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* CLOCK_MONOTONIC and CLOCK_REALTIME in nanoseconds. */
int64_t mproc__os_monotonic_ns(void);
int64_t mproc__os_realtime_ns(void);

/* CLOCK_MONOTONIC_COARSE in nanoseconds: a few ns to read, a few ms
 * resolution; for "has it been a while" checks on hot paths. */
int64_t mproc__os_monotonic_coarse_ns(void);

/* An anonymous close-on-exec memory file (memfd_create) of size bytes,
 * sealed so that no holder can change its size (a peer that shrank it
 * would make the other side's next access a SIGBUS). */
int mproc__os_memfd(const char *name, size_t size);

/* True when fd is a memory file with those seals. */
bool mproc__os_memfd_sealed(int fd);

#define MPROC__OS_MEMFD_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* A close-on-exec pidfd for pid (pidfd_open). -ENOSYS on kernels < 5.3. */
int mproc__os_pidfd_open(pid_t pid);

/* Sends sig through a pidfd, so a reaped-and-reused pid is never hit. */
int mproc__os_pidfd_send_signal(int pidfd, int sig);

/*
 * Futex wait on a word in shared memory (process-shared futex): sleeps while
 * *addr == expected, until woken, a signal, or the absolute CLOCK_MONOTONIC
 * deadline abs (NULL: no deadline). Returns 0 when woken (or spuriously),
 * -EAGAIN when *addr != expected, -ETIMEDOUT, -EINTR.
 */
int mproc__os_futex_wait(const uint32_t *addr, uint32_t expected,
                         const struct timespec *abs);

/* Wakes up to n sleepers on addr; returns how many were woken or -errno. */
int mproc__os_futex_wake(const uint32_t *addr, int n);

/* A hint to the CPU inside a spin loop (x86 pause, arm64 yield). */
static inline void mproc__os_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Asks the kernel to send sig to the caller when its parent thread dies. */
int mproc__os_set_parent_death_signal(int sig);

/* Makes the caller a child subreaper (orphaned descendants come to it). */
int mproc__os_set_child_subreaper(void);

/* n random bytes from the kernel (getrandom): 0 or -errno. */
int mproc__os_random(void *buf, size_t n);

/*
 * An unnamed regular file in directory dir (O_TMPFILE), opened read-write
 * and close-on-exec with mode (before the umask), that mproc__os_link_fd
 * can give a name later: no other process can find it before then, and it
 * vanishes when closed unnamed. -EOPNOTSUPP when it cannot be made or
 * could not be named later (no O_TMPFILE in the kernel or file system, no
 * /proc), so the caller falls back to a named file; other -errno as open.
 */
int mproc__os_tmpfile(const char *dir, unsigned mode);

/* Gives the file of fd (from mproc__os_tmpfile) the name path, atomically:
 * 0, -EEXIST when path exists (whatever it is), or another -errno. */
int mproc__os_link_fd(int fd, const char *path);

/* Closes fd keeping errno; never fails the caller (fd < 0 is ignored). */
void mproc__os_close(int fd);

#endif
