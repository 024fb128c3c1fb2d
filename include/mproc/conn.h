/*
 * mproc/conn.h: connections between processes. Message connections
 * (mproc_pipe: duplex over a socketpair, simplex over a pipe), byte-stream
 * pipes (os.pipe()), named pipes (FIFOs), a listener and client over a Unix
 * socket path for unrelated processes, passing fds over a connection, and
 * mproc_wait() over many connections, processes and fds.
 *
 * A message keeps its boundary: one send is one recv, of any size (up to
 * 2^48 - 1 bytes). Messages travel as an 8-byte header and the payload.
 *
 * Two transports. mproc_pipe() ends carry messages through rings in memory
 * shared by the two processes (256 KiB per direction unless
 * mproc_pipe_opts says otherwise): a send copies the message in, a recv
 * copies it out, and neither makes a system call while the other side is
 * awake (a waiting side spins about as long as a wake-up costs on the
 * machine, measured from the wake-ups it sees, 2 to 100 us, before it
 * sleeps). The end's fd then is a doorbell: a byte on it wakes a sleeping
 * receiver, and its kernel reference count tells each side when the other
 * is gone. Every other end (mproc_pipe_kernel, FIFOs, listener/client,
 * mproc_conn_from_fd) sends through the kernel: a send is one system call
 * (header and payload together), and reads are buffered, so one system
 * call can deliver many small messages.
 *
 * Errors common to the calls below: MPROC_EINVAL for a NULL handle or a
 * call the end cannot make (sending on a receive-only end, recv on a byte
 * pipe, read on a message connection); a negative timeout other than
 * MPROC_FOREVER is MPROC_EINVAL. When the peer has closed its end, recv
 * returns MPROC_ECLOSED once every message sent before is consumed, and
 * send returns MPROC_ECLOSED; no call ever raises SIGPIPE (sockets use
 * MSG_NOSIGNAL; pipes use RWF_NOSIGNAL or, on older kernels, SIGPIPE is
 * blocked in the calling thread for the write and a raised one consumed).
 *
 * Broken streams: a peer that sends a malformed header, or stops inside a
 * message (EOF mid-message), gives MPROC_EPROTO; the connection is then
 * closed for further use (every later send/recv returns MPROC_EPROTO; a
 * socket is shut down so the peer sees EOF), the process is unaffected.
 * Timeouts never break a receiving end: a recv whose deadline passes
 * inside a message returns MPROC_ETIMEDOUT and keeps what it has read in
 * the end (for a message larger than half the ring, or on a kernel end
 * than 64 KiB, in a buffer the size of the message), and the next recv
 * goes on where it stopped. So the event-loop pattern "mproc_wait() or
 * mproc_conn_poll(), then recv with timeout 0" is safe with messages of any
 * size. A send whose deadline passes after part of a message went out returns
 * MPROC_ETIMEDOUT. On an mproc_pipe end the message is then aborted: the
 * receiver drops it whole (it never sees a part of it) and goes on with the
 * next one, and every sender, this one too, goes on sending. On a kernel end
 * the peer has a partial message, so the sending direction is left broken
 * (later sends return MPROC_EBROKEN). One that times out before any byte moved
 * changes nothing. On an mproc_pipe end only a message larger than half
 * the ring (less 8 bytes) can go out in part; a smaller one goes whole or
 * not at all.
 *
 * Threads: one thread may send while another receives; concurrent sends
 * (or recvs) on one end are serialized by an internal lock, and waiting
 * for that lock counts against the call's timeout (a recv with a timeout
 * returns MPROC_ETIMEDOUT on time even while another thread sits in a recv
 * with MPROC_FOREVER). Processes: only one process may receive on an end,
 * and that includes mproc_conn_poll() and mproc_wait() on it (on an
 * mproc_pipe end they take doorbell bytes meant for the receiver; a
 * kernel end reads ahead up to 64 KiB into its own memory, so two
 * processes reading one end would each get parts of the stream, and a
 * child forked after messages were buffered would receive those messages
 * again). Several processes may send on one mproc_pipe end: their messages
 * never interleave, whatever their size; a sender killed inside a message
 * larger than half the ring leaves it to be aborted: the receiver drops it
 * whole and goes on
 * with the others' messages (the next sender, or the receiver's own sleep
 * slice of at most a second, finds the death), and once every sender is
 * gone the receiver gets MPROC_ECLOSED, not MPROC_EPROTO.
 * Fork: a child started by mproc/process.h (or fork()) inherits both ends
 * of every connection; each process should mproc_conn_close() the ends it
 * does not use (for example the parent closes the child's end right after
 * starting it, the child closes the parent's end first thing), otherwise
 * EOF never arrives because an unused copy of the other end stays open.
 * mproc_process_start() with opts.inherit_only does that for the child: it
 * keeps the ends listed in opts.keep and closes every other end there (a
 * call on one of those in the child returns MPROC_EBADF; mproc_conn_close()
 * frees it); see mproc/process.h. Do
 * not fork while another thread is inside a call on the same connection.
 * All fds are close-on-exec.
 */
#ifndef MPROC_CONN_H
#define MPROC_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mproc/error.h"
#include "mproc/named.h"
#include "mproc/process.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One end of a connection. Opaque. */
typedef struct mproc_conn mproc_conn;

/* The ring memory of an mproc_pipe() direction: the default (256 KiB), the
 * smallest and the largest. */
#define MPROC_PIPE_RING_DEFAULT ((size_t)256 * 1024)
#define MPROC_PIPE_RING_MIN ((size_t)4 * 1024)
#define MPROC_PIPE_RING_MAX ((size_t)64 * 1024 * 1024)

/*
 * Options of mproc_pipe(). Start from MPROC_PIPE_OPTS_INIT.
 *   ring_size  bytes of shared memory per direction, rounded up to a power
 *              of two from MPROC_PIPE_RING_MIN; 0: MPROC_PIPE_RING_DEFAULT.
 *              A message up to half this size (less 8 bytes) goes whole;
 *              a larger one streams through in pieces of a quarter of
 *              it. Bulk transfers want it large (a sender and a
 *              receiver then rarely wait for each other: docs/conn.md,
 *              "Ring size"); many idle pipes want it small. Pages are
 *              touched only as the ring's bytes are first used.
 */
typedef struct mproc_pipe_opts {
    size_t ring_size;
} mproc_pipe_opts;
#define MPROC_PIPE_OPTS_INIT                                                   \
    {                                                                          \
        0                                                                      \
    }

/*
 * mproc_pipe: makes a connected pair of message ends that pass messages
 * through shared memory (see the header comment), for processes that are
 * forked after the call (children started by mproc/process.h), or that get
 * an end through mproc_conn_send_conn. duplex true: both ends send and
 * receive (the doorbell is a socketpair). duplex false, as Python's
 * Pipe(duplex=False): *a only receives and *b only sends (a pipe).
 * opts: NULL for defaults. Each end holds two fds (the doorbell and the
 * memory file) and maps opts->ring_size bytes per direction. Do not read
 * or write the fd of such an end, and do not hand it to a program started
 * with exec (mproc_spawn): use mproc_pipe_kernel for that.
 * Loss of the peer: a receiver gets MPROC_ECLOSED once every sender has
 * closed (or died) and every message sent before is taken. A sender learns
 * that no receiver is left when it wakes a sleeping receiver, when it waits
 * for room, and otherwise within 10 ms (it then asks the kernel); messages
 * sent in between succeed and are lost with the ring.
 * Returns 0, MPROC_EINVAL (NULL out-params, ring_size above
 * MPROC_PIPE_RING_MAX), MPROC_EMFILE/MPROC_ENFILE, MPROC_ENOMEM. Writes *a
 * and *b only on success; the caller closes each
 * with mproc_conn_close(). Never blocks. Both ends are inherited by
 * children (see the header comment on closing unused ends).
 */
MPROC_API int mproc_pipe(mproc_conn **a, mproc_conn **b, bool duplex,
                         const mproc_pipe_opts *opts);

/*
 * mproc_pipe_kernel: as mproc_pipe, but every message goes through the
 * kernel (one system call per send; reads buffered), so an end's fd is the
 * whole connection: it may be given to a program started with exec, which
 * wraps it with mproc_conn_from_fd (MPROC_CONN_SINGLE_WRITER for a simplex
 * write end it alone writes). Slower than mproc_pipe between processes that
 * can share memory.
 */
MPROC_API int mproc_pipe_kernel(mproc_conn **a, mproc_conn **b, bool duplex);

/*
 * mproc_pipe_bytes: an os.pipe(): *r reads and *w writes a byte stream with
 * no framing, through mproc_conn_read() / mproc_conn_write().
 * Errors, ownership and fork behaviour as mproc_pipe().
 */
MPROC_API int mproc_pipe_bytes(mproc_conn **r, mproc_conn **w);

/* How mproc_conn_from_fd() treats an fd. */
#define MPROC_CONN_MESSAGES 0x0u /* framed messages (send/recv) */
#define MPROC_CONN_BYTES 0x1u    /* a byte stream (read/write) */
/* With MPROC_CONN_MESSAGES on a pipe or FIFO write end: this process is its
 * only writer, so messages of any size may be sent (see mproc_fifo_opts). */
#define MPROC_CONN_SINGLE_WRITER 0x2u

/*
 * mproc_conn_from_fd: wraps an fd the caller owns (a pipe end, a FIFO, a
 * connected stream socket) as a connection. flags: MPROC_CONN_MESSAGES or
 * MPROC_CONN_BYTES, plus MPROC_CONN_SINGLE_WRITER. The direction comes from
 * the fd's access mode. A message end that writes to a pipe or FIFO is
 * taken as shared by several writers (other processes may hold the same
 * pipe): its messages must fit in one atomic write (MPROC_FIFO_ATOMIC_MAX,
 * larger ones get MPROC_EMSGSIZE) unless MPROC_CONN_SINGLE_WRITER is given.
 * Returns 0, MPROC_EBADF (not an open fd), MPROC_EINVAL (unknown flags, or
 * an fd that is neither a pipe/FIFO nor a stream socket), MPROC_ENOMEM.
 * Ownership of fd moves to *out only on success (mproc_conn_close closes
 * it). Never blocks.
 */
MPROC_API int mproc_conn_from_fd(mproc_conn **out, int fd, unsigned flags);

/*
 * mproc_conn_close: closes the end (its fd, and any fds received but not
 * yet taken) and frees the handle. Accepts NULL. Never blocks. Unread
 * messages are lost; the peer then sees MPROC_ECLOSED. Not to be called
 * while another thread uses the same handle.
 */
MPROC_API void mproc_conn_close(mproc_conn *c);

/*
 * mproc_conn_fd: the end's file descriptor, for poll/epoll. Readable means
 * at least part of a message or EOF is there, or (on an mproc_pipe end) a
 * doorbell byte. As with edge-triggered epoll, receive with timeout 0 until
 * MPROC_ETIMEDOUT before waiting on the fd again: messages already
 * buffered in the process (kernel ends) or waiting in the ring (mproc_pipe
 * ends) do not make it readable, and only that MPROC_ETIMEDOUT asks the
 * sender to ring. mproc_conn_poll() and mproc_wait() need no such care.
 * The fd stays owned by the connection. -1 for NULL.
 */
MPROC_API int mproc_conn_fd(const mproc_conn *c);

/* mproc_conn_can_send / mproc_conn_can_recv: the end's direction (false for
 * NULL). A byte pipe's write end "sends", its read end "receives". */
MPROC_API bool mproc_conn_can_send(const mproc_conn *c);
MPROC_API bool mproc_conn_can_recv(const mproc_conn *c);

/*
 * mproc_conn_send: sends one message of len bytes (len may be 0; buf may be
 * NULL when len is 0). On an mproc_pipe end: a copy into the shared ring,
 * plus one system call only when the receiver sleeps; on other ends one
 * system call in the common case.
 * Returns 0; MPROC_EINVAL (receive-only end, byte pipe, NULL buf with
 * len > 0, bad timeout); MPROC_ECLOSED (the receiving end is closed);
 * MPROC_EMSGSIZE (len above 2^48 - 1, or above MPROC_FIFO_ATOMIC_MAX on a
 * FIFO end opened for several writers); MPROC_ETIMEDOUT (see "Broken
 * streams" above; also when another thread's send holds the end past the
 * deadline); MPROC_EBROKEN / MPROC_EPROTO (an earlier failure);
 * -errno for other system errors. buf is only read during the call.
 * Blocks while the ring or the kernel buffer is full, up to timeout_ms.
 */
MPROC_API int mproc_conn_send(mproc_conn *c, const void *buf, size_t len,
                              int64_t timeout_ms);

/* One message of a batch for mproc_conn_send_batch(). */
typedef struct mproc_conn_msg {
    const void *data;
    size_t len;
} mproc_conn_msg;

/*
 * mproc_conn_send_batch: sends n messages in order with as few system calls
 * as possible (one writev for up to 64 messages; on a FIFO opened for
 * several writers, groups that each fit in one atomic write; on an
 * mproc_pipe end, the messages that fit are written one after another
 * and published at once, each goes whole or not at all, and no other
 * sender's message comes between them). The receiver
 * sees n ordinary messages. Returns as mproc_conn_send(); on an error, some
 * leading messages may have been sent (*sent, may be NULL, tells how many
 * whole messages). Optional: mproc_conn_send() alone is already one system
 * call per message; batching amortizes that call over many small messages.
 */
MPROC_API int mproc_conn_send_batch(mproc_conn *c, const mproc_conn_msg *msgs,
                                    size_t n, size_t *sent, int64_t timeout_ms);

/*
 * mproc_conn_recv: receives the next message into buf (capacity cap).
 * *len (out) is the message's size. Returns 0; MPROC_EMSGSIZE when the
 * message is larger than cap: *len is then its size and the message stays
 * queued, so a retry with a buffer that large receives it; MPROC_ECLOSED
 * when the peer closed and every message was received; MPROC_ETIMEDOUT
 * (the part of a message already read stays with the end for the next
 * recv; also when another thread's recv holds the end past the deadline);
 * MPROC_EPROTO (malformed data from the peer, or EOF inside a message);
 * MPROC_EBROKEN (only after an earlier timeout inside a message larger
 * than half the ring, or 64 KiB on a kernel end, found no memory to keep its
 * part, or a system error inside a
 * message: the stream can no longer be resumed); MPROC_ESTATE when the next
 * message carries an fd (take it with mproc_conn_recv_fd or
 * mproc_conn_recv_conn); MPROC_EINVAL (send-only end, byte pipe, NULL len,
 * NULL buf with cap > 0, bad timeout). Blocks until a whole message has
 * arrived, up to timeout_ms. Thread-safe per the header comment.
 */
MPROC_API int mproc_conn_recv(mproc_conn *c, void *buf, size_t cap, size_t *len,
                              int64_t timeout_ms);

/*
 * mproc_conn_recv_alloc: receives the next message into a buffer the library
 * allocates: *out (free with free()) holds *len bytes followed by one NUL
 * byte (so text can be used directly). max guards the size: a larger
 * message gives MPROC_EMSGSIZE with *len set to its size and the message
 * kept (SIZE_MAX: no guard; a peer's header may claim up to 2^48 bytes,
 * so set a guard when the peer is not trusted). Other returns as
 * mproc_conn_recv(), plus MPROC_ENOMEM (the message is kept). Writes *out only
 * on success.
 */
MPROC_API int mproc_conn_recv_alloc(mproc_conn *c, void **out, size_t *len,
                                    size_t max, int64_t timeout_ms);

/*
 * mproc_conn_poll: waits until a recv (or read) can make progress: bytes
 * of a message (at least its first ones; a recv with timeout 0 then may
 * still return MPROC_ETIMEDOUT, keeping what it read) or EOF are there.
 * Returns 0 when ready, MPROC_ETIMEDOUT, MPROC_EINVAL (send-only end, bad
 * timeout), MPROC_EPROTO / MPROC_EBROKEN (an earlier failure; recv returns
 * the same at once). Takes no lock: another thread in a recv does not
 * delay it.
 */
MPROC_API int mproc_conn_poll(mproc_conn *c, int64_t timeout_ms);

/*
 * mproc_conn_write: writes all len bytes to a byte pipe (MPROC_CONN_BYTES).
 * *written (may be NULL) is how many went, also on error. Returns 0,
 * MPROC_ECLOSED (no reader), MPROC_ETIMEDOUT (part may have been written),
 * MPROC_EINVAL (message connection, read end, bad timeout), -errno.
 * Writes of at most 4096 bytes (PIPE_BUF) are atomic.
 */
MPROC_API int mproc_conn_write(mproc_conn *c, const void *buf, size_t len,
                               size_t *written, int64_t timeout_ms);

/*
 * mproc_conn_read: reads between 1 and cap bytes from a byte pipe into buf,
 * waiting for the first byte up to timeout_ms. *got (out) is the count.
 * Returns 0, MPROC_ECLOSED (EOF: every writer closed), MPROC_ETIMEDOUT,
 * MPROC_EINVAL (message connection, write end, cap 0, NULL got).
 */
MPROC_API int mproc_conn_read(mproc_conn *c, void *buf, size_t cap, size_t *got,
                              int64_t timeout_ms);

/* ----- Passing fds and connection ends (Unix sockets only) ----- */

/*
 * mproc_conn_send_fd: sends a duplicate of fd to the peer (SCM_RIGHTS); the
 * caller keeps its own fd. Only on socket connections (duplex mproc_pipe
 * ends, listener/client connections). Returns as mproc_conn_send(), plus
 * MPROC_ENOTSOCK (not a socket connection), MPROC_EBADF (fd not open).
 */
MPROC_API int mproc_conn_send_fd(mproc_conn *c, int fd, int64_t timeout_ms);

/*
 * mproc_conn_recv_fd: receives an fd sent with mproc_conn_send_fd (or the fd
 * of a connection sent with mproc_conn_send_conn). *fd (out) is a new
 * close-on-exec fd owned by the caller. MPROC_ESTATE when the next message
 * is an ordinary one (it stays queued); MPROC_ENOTSOCK (not a socket
 * connection); MPROC_EMFILE when the kernel could not give this process
 * the fd because it had no free one (RLIMIT_NOFILE; or the system none)
 * when the message was read: the message is consumed and its fd is lost,
 * but the connection stays good (the next recv gets the next message, the
 * peer goes on sending; the end reads ahead, so that may have been during
 * an earlier recv); MPROC_EPROTO when the peer sent an fd message without
 * its fd or with more fds than any message carries (the connection is
 * then closed for further use); otherwise as mproc_conn_recv().
 */
MPROC_API int mproc_conn_recv_fd(mproc_conn *c, int *fd, int64_t timeout_ms);

/*
 * mproc_conn_send_conn: sends a connection end (its fd and its kind:
 * messages or bytes, and for a FIFO or pipe write end whether it is shared
 * by several writers) to the peer, which gets an equivalent end with
 * mproc_conn_recv_conn. The caller
 * still owns `end` and usually closes it afterwards. Returns as
 * mproc_conn_send_fd().
 */
MPROC_API int mproc_conn_send_conn(mproc_conn *c, const mproc_conn *end,
                                   int64_t timeout_ms);

/*
 * mproc_conn_recv_conn: receives a connection end sent with
 * mproc_conn_send_conn. *out (close with mproc_conn_close) is written only
 * on success. MPROC_ESTATE when the next message is an ordinary one or a
 * plain fd from mproc_conn_send_fd (it stays queued: take it with
 * mproc_conn_recv or mproc_conn_recv_fd); MPROC_EPROTO when the message is
 * malformed or its fd cannot be used as a connection end (the fd is
 * closed); MPROC_EMFILE when its fds could not be given to this process
 * (as mproc_conn_recv_fd: the message is consumed, any fd of it that did
 * arrive is closed, and the connection stays good); otherwise as
 * mproc_conn_recv_fd(), plus MPROC_ENOMEM.
 */
MPROC_API int mproc_conn_recv_conn(mproc_conn *c, mproc_conn **out,
                                   int64_t timeout_ms);

/* The credentials of the process at the other end of a socket. */
typedef struct mproc_peer {
    pid_t pid;
    uid_t uid;
    gid_t gid;
} mproc_peer;

/*
 * mproc_conn_peer: the kernel's record (SO_PEERCRED) of who opened the
 * other end of a socket connection. Returns 0, MPROC_EINVAL (NULL),
 * MPROC_ENOTSOCK (a pipe). Never blocks.
 */
MPROC_API int mproc_conn_peer(const mproc_conn *c, mproc_peer *out);

/* ----- Named pipes (FIFOs) ----- */

/* The largest message a FIFO end opened for several writers sends: header
 * and payload fit in one atomic pipe write (PIPE_BUF, 4096 bytes). */
#define MPROC_FIFO_ATOMIC_MAX (4096u - 8u)

/*
 * mproc_fifo_create: makes a FIFO at path with mode (0: 0600; the umask
 * does not apply). An existing FIFO at path is fine (0) only when it is
 * owned by this process's effective uid and its mode grants nothing beyond
 * mode (so a FIFO another user planted, or one open to more users than
 * asked, is never silently used); it is left unchanged either way.
 * Returns 0, MPROC_EEXIST (path exists as something else, such as a
 * directory or file, or as a FIFO that fails that check), MPROC_EINVAL (NULL
 * path, mode beyond 0777), -errno from mkfifo (MPROC_ENOENT, MPROC_EACCES,
 * ...). Never blocks.
 */
MPROC_API int mproc_fifo_create(const char *path, unsigned mode);

/*
 * mproc_fifo_unlink: removes the FIFO at path. Returns 0, MPROC_ENOENT,
 * MPROC_EBADOBJ (path is not a FIFO: a file, a directory, a symlink even
 * to a FIFO; nothing is removed), MPROC_EINVAL (NULL path), -errno: the
 * same answers as mproc_fifo_open for the same path. Open ends keep
 * working.
 */
MPROC_API int mproc_fifo_unlink(const char *path);

#define MPROC_FIFO_READ 0x1u
#define MPROC_FIFO_WRITE 0x2u

/* Options for mproc_fifo_open. */
typedef struct mproc_fifo_opts {
    /* Bytes instead of messages (MPROC_CONN_BYTES semantics). */
    bool bytes;
    /* The writer promises to be the FIFO's only writer: messages of any
     * size are then allowed. Otherwise (the default) a message must fit in
     * one atomic write (MPROC_FIFO_ATOMIC_MAX bytes) so that messages from
     * several writers never interleave; larger ones get MPROC_EMSGSIZE. */
    bool single_writer;
    /* Read ends: what recv does once every writer has closed.
     * false (the default): the end reports it. Once every message is
     * received, recv returns MPROC_ECLOSED at once whatever its timeout
     * (and mproc_conn_poll and mproc_wait report the end ready), until a
     * later writer opens the FIFO and makes it wait again; a loop that
     * keeps receiving after MPROC_ECLOSED spins.
     * true: the end waits for the next writer. It holds a write end of
     * the FIFO itself, so the FIFO never lacks a writer and EOF never
     * comes: recv waits up to its timeout (MPROC_ETIMEDOUT) for a message,
     * whoever sends it, and never returns MPROC_ECLOSED. A writer killed
     * inside a message larger than MPROC_FIFO_ATOMIC_MAX (single_writer)
     * is then not noticed: the next writer's bytes complete that message
     * and the reader gets garbage or MPROC_EPROTO. An end passed on with
     * mproc_conn_send_conn does not take the held write end along.
     * Ignored for write ends. */
    bool wait_for_writers;
    /* Whose FIFOs open accepts (mproc/named.h): by default only one owned
     * by this process's effective uid whose mode lets neither its group
     * nor others write it (so nobody else can inject messages, or read
     * them through a write end of their own). access.uids and
     * access.gids add owners and groups; access.shared_write accepts a
     * FIFO others may write, as a FIFO made with mode 0622 or 0666 for
     * several users' writers. */
    mproc_access access;
} mproc_fifo_opts;
#define MPROC_FIFO_OPTS_INIT                                                   \
    {                                                                          \
        false, false, false, MPROC_ACCESS_INIT                                 \
    }

/*
 * mproc_fifo_open: opens a FIFO made by mproc_fifo_create (by this or an
 * unrelated process), as strictly as mproc_fifo_create accepts an existing
 * one: path must be the FIFO itself, not a symlink to it (O_NOFOLLOW), and
 * pass opts.access (by default: owned by this euid, writable by nobody
 * else). how: MPROC_FIFO_READ or MPROC_FIFO_WRITE; opts may be
 * NULL. The write end waits (up to timeout_ms) until some process has the
 * FIFO open for reading, then returns. The read end opens at once; until a
 * first writer appears its recv waits (it does not report EOF); once every
 * writer has closed it reports MPROC_ECLOSED, or with
 * opts.wait_for_writers it waits for the next writer (see
 * mproc_fifo_opts).
 * Returns 0, MPROC_ETIMEDOUT (no reader appeared), MPROC_ENOENT,
 * MPROC_EBADOBJ (path is not a FIFO: a file, a directory, a socket, a
 * symlink even to a FIFO), MPROC_EDENIED (a FIFO that opts.access does not
 * accept: another owner, writable by its group or others, or with a
 * setuid, setgid or sticky bit), MPROC_EINVAL (NULL path or out, bad how, an
 * access list with a count and no array, bad timeout), MPROC_EACCES (the file's
 * mode does not let this process open it), MPROC_ENOMEM, -errno. *out (close
 * with mproc_conn_close) is written only on success. Other processes may open
 * the same FIFO; see opts.single_writer for several writers.
 */
MPROC_API int mproc_fifo_open(mproc_conn **out, const char *path, unsigned how,
                              const mproc_fifo_opts *opts, int64_t timeout_ms);

/* ----- Listener and client over a Unix socket path ----- */

typedef struct mproc_listener mproc_listener;

/* Options for mproc_listener_open. */
typedef struct mproc_listener_opts {
    /* Mode of the socket file (0: 0600). Connecting needs write
     * permission on it. */
    unsigned mode;
    /* Whose connections accept takes, by the peer's credentials
     * (SO_PEERCRED, recorded by the kernel when the peer connected): a
     * peer whose effective uid is the listener's own euid, or is in
     * access.uids, or whose effective gid is in access.gids
     * (supplementary groups do not count). access.shared_write is not
     * used here (the socket file's mode is `mode`). The arrays are copied
     * at open. */
    mproc_access access;
    /* listen(2) backlog (0: 64). */
    int backlog;
} mproc_listener_opts;
#define MPROC_LISTENER_OPTS_INIT                                               \
    {                                                                          \
        0600u, MPROC_ACCESS_INIT, 64                                           \
    }

/*
 * mproc_listener_open: listens for message connections on a Unix socket at
 * path (Python's multiprocessing.connection.Listener).
 * Abstract names: a path that begins with '@' names a socket in Linux's
 * abstract namespace instead ("@name": name, up to 107 bytes, and no
 * file). No file mode protects such a listener: any process in the same
 * network namespace can connect, and only the peer credentials check
 * (opts.access) stands between it and accept. opts.mode is not used,
 * close removes nothing (the name is free again once every copy of the
 * socket is closed, in a forked child too), and a name whose listener is
 * still open anywhere is MPROC_EADDRINUSE.
 * Returns 0, MPROC_EADDRINUSE (path exists, or the abstract name is
 * taken; unlink a stale path first), MPROC_ENAMETOOLONG (path longer than
 * a socket address holds), MPROC_EINVAL (NULL or empty path, "@" alone,
 * NULL out, mode above 0777, negative backlog, an access list with a
 * count and no array), MPROC_ENOMEM, -errno. *out written only on
 * success; close with mproc_listener_close (which removes the path).
 * Never blocks.
 * Fork: a child inherits the listening socket and may accept on it; only
 * the process that opened the listener removes the path when closing it,
 * so a child closing its inherited copy leaves the parent's listener
 * reachable. Unrelated processes reach it through the path with
 * mproc_client_open().
 */
MPROC_API int mproc_listener_open(mproc_listener **out, const char *path,
                                  const mproc_listener_opts *opts);

/*
 * mproc_listener_accept: waits up to timeout_ms for a peer and returns its
 * connection (*out, duplex, close with mproc_conn_close) and, if peer is
 * not NULL, its pid/uid/gid as the kernel recorded them. A peer that
 * opts.access does not allow has its connection closed at once and the
 * call returns
 * MPROC_EDENIED (with *peer filled, so the caller can log it); call again
 * to keep accepting. Returns 0, MPROC_EDENIED, MPROC_ETIMEDOUT,
 * MPROC_EINVAL, MPROC_EMFILE, MPROC_ENOMEM. Thread-safe.
 */
MPROC_API int mproc_listener_accept(mproc_listener *l, mproc_conn **out,
                                    mproc_peer *peer, int64_t timeout_ms);

/* mproc_listener_fd: the listening socket's fd (readable: a peer waits),
 * owned by the listener. -1 for NULL. */
MPROC_API int mproc_listener_fd(const mproc_listener *l);

/* mproc_listener_close: stops listening, removes the socket path if it is
 * still the one this listener made and this is the process that opened
 * it (not a forked child), frees. An abstract name ("@name") has no path
 * to remove. Accepts NULL. Never blocks. Connections already accepted
 * stay open. */
MPROC_API void mproc_listener_close(mproc_listener *l);

/*
 * mproc_client_open: connects to a listener at path (Python's Client;
 * "@name" for an abstract name, see mproc_listener_open), retrying until
 * timeout_ms (0: one try) while no listener can be reached there: the
 * path does not exist yet, nothing listens on it (a socket file left by a
 * listener that died, an abstract name not taken), or the listener's
 * backlog is full. Returns 0; MPROC_ETIMEDOUT when no listener was
 * reached by the deadline, for each of those reasons and for any
 * timeout (so a path that does not exist yet gives MPROC_ETIMEDOUT after
 * a positive timeout, as after 0); MPROC_EACCES (the socket file or a
 * directory on the way does not let this process in); MPROC_ENAMETOOLONG;
 * MPROC_EINVAL (NULL or empty path, "@" alone, NULL out, bad timeout);
 * MPROC_EMFILE, -errno. *out (duplex; close with mproc_conn_close) written
 * only on success. A listener that refuses this process's credentials
 * closes the connection: the next send or recv gives MPROC_ECLOSED.
 */
MPROC_API int mproc_client_open(mproc_conn **out, const char *path,
                                int64_t timeout_ms);

/* ----- Waiting on many ----- */

/* One thing mproc_wait() watches: a connection, or else any fd (a raw fd,
 * a process's pidfd from mproc_process_fd(), another object's _fd()). */
typedef struct mproc_wait_item {
    mproc_conn *conn; /* a connection to wait for, or NULL to use fd */
    int fd;           /* used when conn is NULL */
    short events;     /* MPROC_WAIT_READ (also 0) and/or MPROC_WAIT_WRITE */
    short ready;      /* out: the events that are ready (0 if none) */
} mproc_wait_item;

#define MPROC_WAIT_READ 0x1
#define MPROC_WAIT_WRITE 0x2

/* Initializers: MPROC_WAIT_CONN(c), MPROC_WAIT_FD(fd) wait to read;
 * MPROC_WAIT_PROCESS(p) waits for a process started by mproc/process.h to
 * exit (its pidfd; where there is none, mproc_process_fd() is negative and
 * mproc_wait() returns MPROC_EINVAL). An Event's fd from mproc_event_fd()
 * goes in with MPROC_WAIT_FD. */
#define MPROC_WAIT_CONN(c)                                                     \
    {                                                                          \
        (c), -1, MPROC_WAIT_READ, 0                                            \
    }
#define MPROC_WAIT_FD(fd)                                                      \
    {                                                                          \
        NULL, (fd), MPROC_WAIT_READ, 0                                         \
    }
#define MPROC_WAIT_PROCESS(p) MPROC_WAIT_FD(mproc_process_fd(p))

/*
 * mproc_wait: waits until at least one item is ready or the timeout passes
 * (Python's multiprocessing.connection.wait). A connection is ready to read
 * as for mproc_conn_poll() (bytes of a message, or EOF: a recv with timeout
 * 0 makes progress, and a timeout inside a message loses nothing); a pidfd
 * when the process has exited; any fd when poll(2) says so (errors and
 * hangups count as ready). MPROC_WAIT_WRITE on a connection asks poll(2)
 * about its fd: for an mproc_pipe end that is the doorbell, writable even
 * while the ring is full, so send with a timeout instead of waiting for
 * it. Sets every item's `ready` field and returns
 * how many are ready (>= 1), MPROC_ETIMEDOUT (all `ready` are 0),
 * MPROC_EINVAL (NULL items with n > 0, an item with neither conn nor
 * fd >= 0, bad timeout, n == 0 with MPROC_FOREVER), MPROC_EBADF (an fd that
 * is not open), MPROC_ENOMEM. n == 0 sleeps for the timeout. Thread-safe
 * as long as items is not shared.
 */
MPROC_API int mproc_wait(mproc_wait_item *items, size_t n, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_CONN_H */
