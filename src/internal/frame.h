/*
 * Framing: length-prefixed messages over a file descriptor. The one framing
 * implementation used by connections, FIFOs, sockets and the process failure
 * channel. A frame is a fixed header (magic, flags, 64-bit length) followed
 * by the payload; a header with a wrong magic is MPROC_EPROTO.
 */
#ifndef MPROC_INTERNAL_FRAME_H
#define MPROC_INTERNAL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "internal/deadline.h"

#define MPROC__FRAME_MAGIC 0x4d504631u /* "MPF1" */
#define MPROC__FRAME_HDR 16

/*
 * Writes one frame carrying len bytes to fd, retrying on EINTR and waiting
 * (poll) for a non-blocking fd to become writable until the deadline.
 * MPROC_ECLOSED when the reader is gone (never SIGPIPE on a socket; pipes need
 * SIGPIPE blocked or ignored by the caller, see conn). MPROC_ETIMEDOUT when
 * the deadline passes part-way: the stream is then unusable (a partial frame
 * was written) and the caller must close it.
 */
int mproc__frame_send(int fd, const void *buf, size_t len,
                      const mproc__deadline *d);

/*
 * Reads one whole frame from fd into a malloc'ed buffer (*out, *len; caller
 * frees with free()). Frames longer than max are MPROC_EMSGSIZE and the
 * stream is unusable afterwards. MPROC_ECLOSED on EOF before any byte of the
 * frame, MPROC_EPROTO on EOF inside a frame or a bad header,
 * MPROC_ETIMEDOUT when the deadline passes.
 */
int mproc__frame_recv_alloc(int fd, void **out, size_t *len, size_t max,
                            const mproc__deadline *d);

#endif
