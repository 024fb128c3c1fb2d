/*
 * Linux implementation of the mproc__os_* interface: raw system calls that
 * glibc does not wrap (futex, pidfd), clocks, and prctl switches.
 */
#include "os/os.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
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

int mproc__os_random(void *buf, size_t n)
{
    int saved = errno;
    unsigned char *p = buf;
    int rc = 0;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        p += r;
        n -= (size_t)r;
    }
    errno = saved;
    return rc;
}

/* The name of fd in /proc, through which an unnamed file is linked: the
 * kernel lets only a holder of the fd follow it. */
static void proc_fd_path(char *buf, size_t n, int fd)
{
    snprintf(buf, n, "/proc/self/fd/%d", fd);
}

int mproc__os_tmpfile(const char *dir, unsigned mode)
{
    int saved = errno;
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, (mode_t)mode);
    int rc = fd;
    if (fd < 0) {
        /* Kernels before 3.11 see O_DIRECTORY and open the directory
         * (EISDIR); file systems without it say EOPNOTSUPP. */
        rc = errno == EISDIR || errno == EOPNOTSUPP || errno == EINVAL
                 ? -EOPNOTSUPP
                 : -errno;
    } else {
        char path[48];
        struct stat a, b;
        proc_fd_path(path, sizeof path, fd);
        if (fstat(fd, &a) < 0 || stat(path, &b) < 0 || a.st_dev != b.st_dev ||
            a.st_ino != b.st_ino) {
            close(fd);
            rc = -EOPNOTSUPP;
        }
    }
    errno = saved;
    return rc;
}

int mproc__os_link_fd(int fd, const char *path)
{
    int saved = errno;
    char from[48];
    proc_fd_path(from, sizeof from, fd);
    int rc = linkat(AT_FDCWD, from, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0
                 ? -errno
                 : 0;
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
