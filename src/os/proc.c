/*
 * Linux implementation of os/proc.h: waitid(P_PIDFD), glibc's backtrace()
 * and sigabbrev_np(), kept here so the process module stays portable C.
 */
#include "os/proc.h"

#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

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

size_t mproc__os_backtrace(char *buf, size_t size, int skip)
{
    if (size == 0)
        return 0;
    buf[0] = '\0';
    int saved = errno;
    void *frames[64];
    int n = backtrace(frames, 64);
    char **names = n > skip ? backtrace_symbols(frames + skip, n - skip) : NULL;
    size_t len = 0;
    for (int i = 0; names != NULL && i < n - skip; i++) {
        size_t l = strlen(names[i]);
        if (len + l + 2 > size)
            break;
        memcpy(buf + len, names[i], l);
        len += l;
        buf[len++] = '\n';
        buf[len] = '\0';
    }
    free(names);
    errno = saved;
    return len;
}

const char *mproc__os_signal_abbrev(int sig)
{
    const char *s = sigabbrev_np(sig);
    return s != NULL ? s : "?";
}
