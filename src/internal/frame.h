/*
 * Framing: length-prefixed messages over a file descriptor. The one framing
 * implementation used by connections (pipes, socketpairs, FIFOs, Unix
 * sockets) and the process failure channel, plus the raw I/O helpers they
 * share: writes that never raise SIGPIPE, reads that may collect passed fds,
 * and the deadline loop around both.
 *
 * Wire format: an 8-byte header, then the payload.
 *   byte 0     0x4d ('M')
 *   byte 1     0xa0 | flags (high nibble is the format version, 0xa)
 *   bytes 2-7  payload length, 48 bits little-endian (up to 256 TiB)
 * A header whose magic or version differs, or that sets an unknown flag, is
 * MPROC_EPROTO.
 */
#ifndef MPROC_INTERNAL_FRAME_H
#define MPROC_INTERNAL_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "internal/deadline.h"

#define MPROC__FRAME_HDR 8
#define MPROC__FRAME_MAX ((UINT64_C(1) << 48) - 1)

/* Flags in the low nibble of byte 1. */
#define MPROC__FRAME_FD 0x1u /* one fd travels with this frame (SCM_RIGHTS) */
#define MPROC__FRAME_KNOWN_FLAGS MPROC__FRAME_FD

/* n (<= 8) bytes of v, little-endian, at p; and back. The wire's integers
 * (frame lengths, fd token numbers) are all little-endian. */
static inline void mproc__le_put(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t mproc__le_get(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Writes a header for a payload of len bytes (len <= MPROC__FRAME_MAX). */
void mproc__frame_put_header(unsigned char hdr[MPROC__FRAME_HDR], uint64_t len,
                             unsigned flags);

/* Decodes a header: 0 and *len, *flags, or MPROC_EPROTO for garbage. */
int mproc__frame_get_header(const unsigned char hdr[MPROC__FRAME_HDR],
                            uint64_t *len, unsigned *flags);

/* What an fd is, so that the right calls are used on it. */
#define MPROC__IO_SOCK 0x1u /* a socket: send/recvmsg, MSG_NOSIGNAL */
#define MPROC__IO_FIFO                                                         \
    0x2u /* a FIFO read end: EOF only after a writer left                      \
          */

/*
 * Writes every byte of iov[0..cnt) (iov is modified). Never raises SIGPIPE:
 * sockets use MSG_NOSIGNAL, pipes RWF_NOSIGNAL or, on kernels without it,
 * SIGPIPE blocked in the calling thread around the write with a pending
 * SIGPIPE consumed. Blocks in the write itself when d is forever, otherwise
 * tries without blocking and polls until the deadline (on kernels without
 * RWF_NOWAIT for pipes, poll then at most one page per write, which cannot
 * block). *done (may be NULL) receives the bytes written, also on error.
 * MPROC_ECLOSED when the reader is gone, MPROC_ETIMEDOUT, or -errno.
 */
int mproc__io_writev(int fd, unsigned kind, struct iovec *iov, int cnt,
                     const mproc__deadline *d, size_t *done);

/*
 * One write attempt to a pipe or FIFO that never raises SIGPIPE: a gone
 * reader is -1 with errno EPIPE. pwritev2(RWF_NOSIGNAL) where the kernel has
 * it, else writev with SIGPIPE blocked in this thread and a SIGPIPE it raised
 * consumed (one that was pending before is left alone). nowait asks the
 * kernel not to block (RWF_NOWAIT; on old kernels poll, then at most one
 * page). Returns as writev(2); errno is set on failure.
 */
ssize_t mproc__io_pipe_write(int fd, const struct iovec *iov, int cnt,
                             bool nowait);

/* writev(2) to an fd of any other kind that may raise SIGPIPE (a terminal,
 * a character device), with SIGPIPE blocked and consumed as above. */
ssize_t mproc__io_writev_nosigpipe(int fd, const struct iovec *iov, int cnt);

/* Test hook: behave as on a kernel without RWF_NOSIGNAL and RWF_NOWAIT for
 * pipes (SIGPIPE masked around writes, poll before non-blocking tries). */
void mproc__io_force_fallbacks(bool on);

/* Sends bytes with npass (1 .. MPROC__IO_MAX_PASS) fds attached to the
 * first of them (sockets only), as mproc__io_writev otherwise. */
#define MPROC__IO_MAX_PASS 2
int mproc__io_send_fds(int fd, struct iovec *iov, int cnt, const int *pass,
                       int npass, const mproc__deadline *d, size_t *done);

/* In an fd queue filled by mproc__io_read: the fds that came with a
 * message but that the kernel could not hand over (the receiver had no
 * free fd: MSG_CTRUNC); it ends the fds of that message. */
#define MPROC__IO_FD_LOST (-1)

/*
 * One read of between 1 and cap bytes into buf, waiting until the deadline.
 * For sockets, fds passed with SCM_RIGHTS are stored in fds[*nfds..maxfds)
 * (close-on-exec), followed by MPROC__IO_FD_LOST when the kernel could not
 * make some of them (that is not an error: the bytes are good). Fds
 * beyond maxfds, or more than any frame carries, are closed and reported
 * as MPROC_EPROTO ("fds lost": the bytes read are good, *got says how
 * many). MPROC_ECLOSED at end of file, MPROC_ETIMEDOUT, or -errno.
 */
int mproc__io_read(int fd, unsigned kind, void *buf, size_t cap, size_t *got,
                   int *fds, int *nfds, int maxfds, const mproc__deadline *d);

/* Waits until fd has any of events (or an error/hangup) or the deadline. */
int mproc__io_wait(int fd, short events, const mproc__deadline *d);

/*
 * Writes one frame carrying len bytes to fd (a pipe or a socket), retrying
 * on EINTR and short writes, waiting until the deadline. MPROC_ECLOSED when
 * the reader is gone (never SIGPIPE), MPROC_EMSGSIZE beyond
 * MPROC__FRAME_MAX. MPROC_ETIMEDOUT when the deadline passes; if part of the
 * frame was written the stream is then unusable and the caller must close it.
 */
int mproc__frame_send(int fd, const void *buf, size_t len,
                      const mproc__deadline *d);

/*
 * Reads one whole frame from fd into a malloc'ed buffer (*out, *len; caller
 * frees with free(); one extra NUL byte follows the payload). Reads exactly
 * the frame's bytes, never more. Frames longer than max are MPROC_EMSGSIZE
 * and the stream is unusable afterwards. MPROC_ECLOSED on EOF before any
 * byte of the frame, MPROC_EPROTO on EOF inside a frame or a bad header,
 * MPROC_ETIMEDOUT when the deadline passes.
 */
int mproc__frame_recv_alloc(int fd, void **out, size_t *len, size_t max,
                            const mproc__deadline *d);

#endif
