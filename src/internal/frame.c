/*
 * Framing over file descriptors: a 16-byte header (magic, flags, length)
 * then the payload. Reads and writes retry on EINTR and short transfers and
 * wait with poll(2) up to the caller's deadline, so a non-blocking fd works
 * as well as a blocking one.
 */
#include "internal/frame.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "mproc/error.h"

static int wait_fd(int fd, short events, const mproc__deadline *d)
{
    struct pollfd p = {.fd = fd, .events = events, .revents = 0};
    for (;;) {
        int ms = mproc__deadline_poll_ms(d);
        int n = poll(&p, 1, ms);
        if (n > 0)
            return 0;
        if (n == 0)
            return MPROC_ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

static int write_all(int fd, struct iovec *iov, int cnt,
                     const mproc__deadline *d)
{
    while (cnt > 0) {
        ssize_t n = writev(fd, iov, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                int rc = wait_fd(fd, POLLOUT, d);
                if (rc < 0)
                    return rc;
                continue;
            }
            if (errno == EPIPE || errno == ECONNRESET)
                return MPROC_ECLOSED;
            return -errno;
        }
        size_t done = (size_t)n;
        while (cnt > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

int mproc__frame_send(int fd, const void *buf, size_t len,
                      const mproc__deadline *d)
{
    unsigned char hdr[MPROC__FRAME_HDR];
    uint32_t magic = MPROC__FRAME_MAGIC, flags = 0;
    uint64_t len64 = len;
    memcpy(hdr, &magic, 4);
    memcpy(hdr + 4, &flags, 4);
    memcpy(hdr + 8, &len64, 8);
    struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)buf, len}};
    return write_all(fd, iov, len > 0 ? 2 : 1, d);
}

/* Reads exactly len bytes. *got tells how many arrived before an error. */
static int read_all(int fd, void *buf, size_t len, size_t *got,
                    const mproc__deadline *d)
{
    size_t off = 0;
    int rc = 0;
    while (off < len) {
        ssize_t n = read(fd, (char *)buf + off, len - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n == 0) {
            rc = MPROC_ECLOSED;
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            rc = wait_fd(fd, POLLIN, d);
            if (rc < 0)
                break;
            continue;
        }
        rc = errno == ECONNRESET ? MPROC_ECLOSED : -errno;
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
    int rc = read_all(fd, hdr, sizeof hdr, &got, d);
    if (rc == MPROC_ECLOSED && got > 0)
        return MPROC_EPROTO;
    if (rc < 0)
        return rc;
    uint32_t magic;
    uint64_t len64;
    memcpy(&magic, hdr, 4);
    memcpy(&len64, hdr + 8, 8);
    if (magic != MPROC__FRAME_MAGIC)
        return MPROC_EPROTO;
    if (len64 > max || len64 > SIZE_MAX - 1)
        return MPROC_EMSGSIZE;
    /* One spare byte so text payloads can be NUL-terminated by callers. */
    char *buf = malloc((size_t)len64 + 1);
    if (buf == NULL)
        return MPROC_ENOMEM;
    rc = read_all(fd, buf, (size_t)len64, &got, d);
    if (rc < 0) {
        free(buf);
        return rc == MPROC_ECLOSED ? MPROC_EPROTO : rc;
    }
    buf[len64] = '\0';
    *out = buf;
    *len = (size_t)len64;
    return 0;
}
