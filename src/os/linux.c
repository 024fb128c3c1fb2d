/*
 * Linux implementation of the mproc__os_* interface: raw system calls that
 * glibc does not wrap (futex, pidfd), clocks, and prctl switches.
 */
#include "os/os.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mproc__os_monotonic_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

int64_t mproc__os_realtime_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

int64_t mproc__os_monotonic_coarse_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC_COARSE);
}

int mproc__os_memfd(const char *name, size_t size)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    if (ftruncate(fd, (off_t)size) < 0 ||
        fcntl(fd, F_ADD_SEALS, MPROC__OS_MEMFD_SEALS) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

bool mproc__os_memfd_sealed(int fd)
{
    int seals = fcntl(fd, F_GET_SEALS);
    return seals >= 0 &&
           (seals & MPROC__OS_MEMFD_SEALS) == MPROC__OS_MEMFD_SEALS;
}

int mproc__os_pidfd_open(pid_t pid)
{
    int saved = errno;
    /* pidfds are always close-on-exec. */
    long fd = syscall(SYS_pidfd_open, pid, 0);
    int rc = fd < 0 ? -errno : (int)fd;
    errno = saved;
    return rc;
}

int mproc__os_pidfd_send_signal(int pidfd, int sig)
{
    int saved = errno;
    long r = syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
    int rc = r < 0 ? -errno : 0;
    errno = saved;
    return rc;
}

int mproc__os_futex_wait(const uint32_t *addr, uint32_t expected,
                         const struct timespec *abs)
{
    int saved = errno;
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time, so a retry
     * after EINTR never extends the wait. Not FUTEX_PRIVATE: the word may be
     * shared between processes. */
    long r = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET, expected, abs, NULL,
                     FUTEX_BITSET_MATCH_ANY);
    int rc = r < 0 ? -errno : 0;
    errno = saved;
    return rc;
}

int mproc__os_futex_wake(const uint32_t *addr, int n)
{
    int saved = errno;
    long r = syscall(SYS_futex, addr, FUTEX_WAKE, n, NULL, NULL, 0);
    int rc = r < 0 ? -errno : (int)r;
    errno = saved;
    return rc;
}

int mproc__os_set_parent_death_signal(int sig)
{
    int saved = errno;
    int rc = prctl(PR_SET_PDEATHSIG, (unsigned long)sig) < 0 ? -errno : 0;
    errno = saved;
    return rc;
}

int mproc__os_set_child_subreaper(void)
{
    int saved = errno;
    int rc = prctl(PR_SET_CHILD_SUBREAPER, 1UL) < 0 ? -errno : 0;
    errno = saved;
    return rc;
}

void mproc__os_close(int fd)
{
    if (fd < 0)
        return;
    int saved = errno;
    close(fd);
    errno = saved;
}
