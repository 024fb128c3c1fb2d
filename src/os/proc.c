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

int mproc__os_pidfd_reap(int pidfd, int *status, int *sig)
{
    int saved = errno;
    siginfo_t si;
    int rc;
    for (;;) {
        memset(&si, 0, sizeof si);
        /* Only WEXITED: a stopped or continued child is still running. */
        if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) ==
            0) {
            rc = 0;
            break;
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
