/*
 * Linux implementation of os/proc.h: waitid(P_PIDFD), close_range and
 * sigabbrev_np(), kept here so the process module stays portable C (the
 * backtrace is in os/backtrace.c).
 */
#include "os/proc.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int mproc__os_pidfd_reap(int pidfd, pid_t pid, int *status, int *sig)
{
    int saved = errno;
    siginfo_t si;
    int rc;
    idtype_t type = pidfd >= 0 ? (idtype_t)P_PIDFD : P_PID;
    id_t id = pidfd >= 0 ? (id_t)pidfd : (id_t)pid;
    for (;;) {
        memset(&si, 0, sizeof si);
        /* Only WEXITED: a stopped or continued child is still running. */
        if (waitid(type, id, &si, WEXITED | WNOHANG) == 0) {
            rc = 0;
            break;
        }
        if (errno == EINVAL && type != P_PID) {
            type = P_PID;
            id = (id_t)pid;
            continue;
        }
        if (errno != EINTR) {
            rc = -errno;
            break;
        }
    }
    if (rc == 0 && si.si_pid != 0) {
        rc = 1;
        if (si.si_code == CLD_EXITED) {
            *status = si.si_status;
            *sig = 0;
        } else {
            *status = 0;
            *sig = si.si_status;
        }
    }
    errno = saved;
    return rc;
}

int mproc__os_pid_exited(pid_t pid, int child)
{
    int saved = errno;
    int rc;
    if (child) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        while ((rc = waitid(P_PID, (id_t)pid, &si,
                            WEXITED | WNOHANG | WNOWAIT)) < 0 &&
               errno == EINTR)
            ;
        /* ECHILD: reaped by someone else, so certainly exited. */
        rc = rc < 0 ? 1 : si.si_pid != 0;
    } else {
        rc = kill(pid, 0) < 0 && errno == ESRCH;
    }
    errno = saved;
    return rc;
}

int mproc__os_kill(pid_t pid, int sig)
{
    int saved = errno;
    int rc = kill(pid, sig) < 0 ? -errno : 0;
    errno = saved;
    return rc;
}

/* close_range(lo, hi): 0, or -ENOSYS where the kernel or the headers lack
 * it. */
static int close_range_(unsigned lo, unsigned hi)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, lo, hi, 0u) == 0)
        return 0;
    return -errno;
#else
    (void)lo;
    (void)hi;
    return -ENOSYS;
#endif
}

static bool kept(int fd, const int *keep, size_t n)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keep[mid] == fd)
            return true;
        if (keep[mid] < fd)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* Without close_range: closes what /proc/self/fd lists. Closing while
 * reading the directory is safe (entries are fd numbers, not positions). */
static int close_listed_except(const int *keep, size_t n)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -errno;
    int own = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0' || fd < 3 || fd > INT_MAX ||
            fd == own || kept((int)fd, keep, n))
            continue;
        close((int)fd);
    }
    closedir(d);
    return 0;
}

int mproc__os_close_fds_except(const int *keep, size_t n)
{
    int saved = errno;
    unsigned lo = 3;
    int rc = 0;
    for (size_t i = 0; i <= n && rc == 0; i++) {
        unsigned hi = i < n ? (unsigned)keep[i] : UINT_MAX;
        if (hi > lo)
            rc = close_range_(lo, i < n ? hi - 1 : UINT_MAX);
        if (i < n)
            lo = (unsigned)keep[i] + 1;
    }
    if (rc == -ENOSYS || rc == -EINVAL)
        rc = close_listed_except(keep, n);
    errno = saved;
    return rc;
}

const char *mproc__os_signal_abbrev(int sig)
{
    const char *s = sigabbrev_np(sig);
    return s != NULL ? s : "?";
}
