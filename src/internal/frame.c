/*
 * Framing over file descriptors: the 8-byte header, and the read and write
 * loops every connection kind shares. Descriptors stay in blocking mode (they
 * are shared with other processes, so their O_NONBLOCK flag is not ours to
 * change); a call that must not block asks per call instead (MSG_DONTWAIT,
 * RWF_NOWAIT) and then waits in poll(2) up to the caller's deadline.
 */
#include "internal/frame.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "mproc/error.h"

/* Linux >= 6.x: a write to a pipe without readers fails with EPIPE without
 * raising SIGPIPE. Older headers lack the name. */
#ifndef RWF_NOSIGNAL
#define RWF_NOSIGNAL 0x00000100
#endif
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

/* PIPE_BUF: the most a pipe write may carry and still fit in one free page
 * slot (also the bound on iovecs of such a write). */
#define PIPE_PAGE 4096
#define HEAD_IOV 64 /* iovecs of such a write: any leading part will do */

#define HDR_MAGIC 0x4du
#define HDR_VERSION 0xa0u

/* What the running kernel supports, learnt on first use. These only ever go
 * from "unknown/yes" to "no" and only pick which system call to use. */
static atomic_int no_rwf_nosignal;
static atomic_int no_rwf_nowait;

void mproc__io_force_fallbacks(bool on)
{
    atomic_store(&no_rwf_nosignal, on ? 1 : 0);
    atomic_store(&no_rwf_nowait, on ? 1 : 0);
}

void mproc__frame_put_header(unsigned char hdr[MPROC__FRAME_HDR], uint64_t len,
                             unsigned flags)
{
    hdr[0] = HDR_MAGIC;
    hdr[1] = (unsigned char)(HDR_VERSION | (flags & 0xfu));
    mproc__le_put(hdr + 2, len, 6);
}

int mproc__frame_get_header(const unsigned char hdr[MPROC__FRAME_HDR],
                            uint64_t *len, unsigned *flags)
{
    if (hdr[0] != HDR_MAGIC || (hdr[1] & 0xf0u) != HDR_VERSION)
        return MPROC_EPROTO;
    unsigned f = hdr[1] & 0xfu;
    if ((f & ~MPROC__FRAME_KNOWN_FLAGS) != 0)
        return MPROC_EPROTO;
    *len = mproc__le_get(hdr + 2, 6);
    *flags = f;
    return 0;
}

int mproc__io_wait(int fd, short events, const mproc__deadline *d)
{
    struct pollfd p = {.fd = fd, .events = events, .revents = 0};
    for (;;) {
        int n = poll(&p, 1, mproc__deadline_poll_ms(d));
        if (n > 0)
            return (p.revents & POLLNVAL) ? MPROC_EBADF : 0;
        if (n == 0)
            return MPROC_ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/*
 * A pipe write on a kernel without RWF_NOSIGNAL: SIGPIPE is blocked in this
 * thread for the write, and a SIGPIPE the write raised is consumed before
 * the old mask returns, so neither a handler nor the default action sees it.
 * A SIGPIPE that was already pending before is left alone.
 */
static ssize_t write_masked(int fd, const struct iovec *iov, int cnt, int rwf)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    int was_pending = 0;
    if (sigismember(&old, SIGPIPE)) {
        sigpending(&pending);
        was_pending = sigismember(&pending, SIGPIPE);
    }
    ssize_t n =
        rwf != 0 ? pwritev2(fd, iov, cnt, -1, rwf) : writev(fd, iov, cnt);
    int err = errno;
    if (n < 0 && err == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = err;
    return n;
}

/* The first bytes of iov[0..cnt), at most max, as iovecs in out[0..n). */
static int iov_head(const struct iovec *iov, int cnt, size_t max,
                    struct iovec *out)
{
    int n = 0;
    for (int i = 0; i < cnt && max > 0; i++) {
        size_t k = iov[i].iov_len < max ? iov[i].iov_len : max;
        out[n++] = (struct iovec){iov[i].iov_base, k};
        max -= k;
    }
    return n;
}

ssize_t mproc__io_writev_nosigpipe(int fd, const struct iovec *iov, int cnt)
{
    return write_masked(fd, iov, cnt, 0);
}

ssize_t mproc__io_pipe_write(int fd, const struct iovec *iov, int cnt,
                             bool nowait)
{
    int rwf = 0;
    struct iovec head[HEAD_IOV];
    if (nowait) {
        if (atomic_load_explicit(&no_rwf_nowait, memory_order_relaxed)) {
            /* Old kernel: poll reports POLLOUT while the pipe is not full,
             * that is with at least one free page slot. A write of at most
             * a page (PIPE_BUF) then fits without blocking; a larger one
             * could block without bound, so write only that much now. */
            struct pollfd p = {.fd = fd, .events = POLLOUT, .revents = 0};
            int r = poll(&p, 1, 0);
            if (r == 0) {
                errno = EAGAIN;
                return -1;
            }
            if (r > 0 && (p.revents & POLLOUT)) {
                cnt = iov_head(iov, cnt < HEAD_IOV ? cnt : HEAD_IOV, PIPE_PAGE,
                               head);
                iov = head;
            }
        } else {
            rwf |= RWF_NOWAIT;
        }
    }
    if (!atomic_load_explicit(&no_rwf_nosignal, memory_order_relaxed)) {
        ssize_t n = pwritev2(fd, iov, cnt, -1, rwf | RWF_NOSIGNAL);
        if (n >= 0 || (errno != EOPNOTSUPP && errno != EINVAL))
            return n;
        /* Either flag may be the unsupported one: find out which. */
        atomic_store(&no_rwf_nosignal, 1);
    }
    ssize_t n = write_masked(fd, iov, cnt, rwf);
    if (n < 0 && rwf != 0 && (errno == EOPNOTSUPP || errno == EINVAL)) {
        atomic_store(&no_rwf_nowait, 1);
        errno = EAGAIN; /* the caller polls and tries again */
    }
    return n;
}

static ssize_t sock_write_once(int fd, const struct iovec *iov, int cnt,
                               bool nowait, const int *pass, int npass)
{
    int flags = MSG_NOSIGNAL | (nowait ? MSG_DONTWAIT : 0);
    if (npass == 0 && cnt == 1)
        return send(fd, iov->iov_base, iov->iov_len, flags);
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * MPROC__IO_MAX_PASS)];
    } ctl;
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = (struct iovec *)iov;
    m.msg_iovlen = (size_t)cnt;
    if (npass > 0) {
        memset(&ctl, 0, sizeof ctl);
        m.msg_control = ctl.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)npass);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)npass);
        memcpy(CMSG_DATA(c), pass, sizeof(int) * (size_t)npass);
    }
    return sendmsg(fd, &m, flags);
}

static int writev_loop(int fd, unsigned kind, struct iovec *iov, int cnt,
                       const mproc__deadline *d, size_t *done, const int *pass,
                       int npass)
{
    size_t total = 0;
    int rc = 0;
    bool forever = mproc__deadline_is_forever(d);
    while (cnt > 0 && iov->iov_len == 0 && npass == 0) {
        iov++;
        cnt--;
    }
    while (cnt > 0) {
        ssize_t n;
        if (kind & MPROC__IO_SOCK)
            n = sock_write_once(fd, iov, cnt, !forever, pass, npass);
        else
            n = mproc__io_pipe_write(fd, iov, cnt, !forever);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                rc = mproc__io_wait(fd, POLLOUT, d);
                if (rc < 0)
                    break;
                continue;
            }
            rc = (errno == EPIPE || errno == ECONNRESET) ? MPROC_ECLOSED
                                                         : -errno;
            break;
        }
        npass = 0; /* the fds went with the first byte */
        size_t k = (size_t)n;
        total += k;
        while (cnt > 0 && k >= iov->iov_len) {
            k -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= k;
        }
    }
    if (done != NULL)
        *done = total;
    return rc;
}

int mproc__io_writev(int fd, unsigned kind, struct iovec *iov, int cnt,
                     const mproc__deadline *d, size_t *done)
{
    return writev_loop(fd, kind, iov, cnt, d, done, NULL, 0);
}

int mproc__io_send_fds(int fd, struct iovec *iov, int cnt, const int *pass,
                       int npass, const mproc__deadline *d, size_t *done)
{
    return writev_loop(fd, MPROC__IO_SOCK, iov, cnt, d, done, pass, npass);
}

static ssize_t pipe_read_once(int fd, void *buf, size_t cap, bool nowait)
{
    if (nowait && !atomic_load_explicit(&no_rwf_nowait, memory_order_relaxed)) {
        struct iovec v = {buf, cap};
        ssize_t n = preadv2(fd, &v, 1, -1, RWF_NOWAIT);
        if (n >= 0 || (errno != EOPNOTSUPP && errno != EINVAL))
            return n;
        atomic_store(&no_rwf_nowait, 1);
    }
    if (nowait) {
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        if (poll(&p, 1, 0) == 0) {
            errno = EAGAIN;
            return -1;
        }
    }
    return read(fd, buf, cap);
}

/* fds one read can take: more than any frame carries, so that a read
 * that finds room for fewer than this was cut short by the kernel. */
#define CTL_FDS 8

static ssize_t sock_read_once(int fd, void *buf, size_t cap, bool nowait,
                              int *fds, int *nfds, int maxfds, int *lost)
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * CTL_FDS)];
    } ctl;
    struct iovec v = {buf, cap};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    m.msg_iov = &v;
    m.msg_iovlen = 1;
    if (fds != NULL) {
        m.msg_control = ctl.buf;
        m.msg_controllen = sizeof ctl.buf;
    }
    ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC | (nowait ? MSG_DONTWAIT : 0));
    if (n < 0 || fds == NULL)
        return n;
    size_t arrived = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL;
         c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        arrived += k;
        for (size_t i = 0; i < k; i++) {
            int got;
            memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*nfds < maxfds) {
                fds[(*nfds)++] = got;
            } else {
                close(got);
                *lost = 1;
            }
        }
    }
    /* MSG_CTRUNC: the kernel dropped fds. With room for more than it gave,
     * it could not make them (this process at RLIMIT_NOFILE, the system
     * out of files or memory): the message stays good, and a placeholder
     * tells whoever takes its fds. With no room left, the peer sent more
     * than any frame carries. */
    if ((m.msg_flags & MSG_CTRUNC) && !*lost) {
        if (arrived < CTL_FDS && *nfds < maxfds)
            fds[(*nfds)++] = MPROC__IO_FD_LOST;
        else
            *lost = 1;
    }
    return n;
}

/* A FIFO read end sees read() == 0 both when no writer has come yet and
 * when the last writer left; only the second raises POLLHUP. */
static bool fifo_hung_up(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLIN)) == POLLHUP;
}

int mproc__io_read(int fd, unsigned kind, void *buf, size_t cap, size_t *got,
                   int *fds, int *nfds, int maxfds, const mproc__deadline *d)
{
    bool forever = mproc__deadline_is_forever(d);
    *got = 0;
    for (;;) {
        ssize_t n;
        int lost = 0;
        if (kind & MPROC__IO_SOCK)
            n = sock_read_once(fd, buf, cap, !forever, fds, nfds, maxfds,
                               &lost);
        else
            n = pipe_read_once(fd, buf, cap, !forever);
        if (n > 0) {
            *got = (size_t)n;
            return lost ? MPROC_EPROTO : 0;
        }
        if (n == 0) {
            if (cap == 0)
                return 0;
            if (!(kind & MPROC__IO_FIFO) || fifo_hung_up(fd))
                return MPROC_ECLOSED;
            /* No writer yet: wait for one (its data or its leaving). */
            int rc = mproc__io_wait(fd, POLLIN, d);
            if (rc < 0)
                return rc;
            if (fifo_hung_up(fd))
                return MPROC_ECLOSED;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            int rc = mproc__io_wait(fd, POLLIN, d);
            if (rc < 0)
                return rc;
            continue;
        }
        return errno == ECONNRESET ? MPROC_ECLOSED : -errno;
    }
}

int mproc__frame_send(int fd, const void *buf, size_t len,
                      const mproc__deadline *d)
{
    if ((uint64_t)len > MPROC__FRAME_MAX)
        return MPROC_EMSGSIZE;
    unsigned char hdr[MPROC__FRAME_HDR];
    mproc__frame_put_header(hdr, len, 0);
    struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)buf, len}};
    int cnt = len > 0 ? 2 : 1;
    size_t done = 0;
    int rc = mproc__io_writev(fd, MPROC__IO_SOCK, iov, cnt, d, &done);
    if (rc == MPROC_ENOTSOCK && done == 0) {
        struct iovec again[2] = {{hdr, sizeof hdr}, {(void *)buf, len}};
        rc = mproc__io_writev(fd, 0, again, cnt, d, NULL);
    }
    return rc;
}

/* Reads exactly len bytes. *got tells how many arrived before an error. */
static int read_exact(int fd, void *buf, size_t len, size_t *got,
                      const mproc__deadline *d)
{
    size_t off = 0;
    int rc = 0;
    while (off < len) {
        size_t n = 0;
        rc = mproc__io_read(fd, 0, (char *)buf + off, len - off, &n, NULL, NULL,
                            0, d);
        off += n;
        if (rc < 0)
            break;
    }
    *got = off;
    return rc;
}

int mproc__frame_recv_alloc(int fd, void **out, size_t *len, size_t max,
                            const mproc__deadline *d)
{
    unsigned char hdr[MPROC__FRAME_HDR];
    size_t got = 0;
    int rc = read_exact(fd, hdr, sizeof hdr, &got, d);
    if (rc == MPROC_ECLOSED && got > 0)
        return MPROC_EPROTO;
    if (rc < 0)
        return rc;
    uint64_t len64;
    unsigned flags;
    rc = mproc__frame_get_header(hdr, &len64, &flags);
    if (rc < 0)
        return rc;
    if (flags != 0)
        return MPROC_EPROTO;
    if (len64 > max || len64 > SIZE_MAX - 1)
        return MPROC_EMSGSIZE;
    /* One spare byte so text payloads can be NUL-terminated by callers. */
    char *buf = malloc((size_t)len64 + 1);
    if (buf == NULL)
        return MPROC_ENOMEM;
    rc = read_exact(fd, buf, (size_t)len64, &got, d);
    if (rc < 0) {
        free(buf);
        return rc == MPROC_ECLOSED ? MPROC_EPROTO : rc;
    }
    buf[len64] = '\0';
    *out = buf;
    *len = (size_t)len64;
    return 0;
}
