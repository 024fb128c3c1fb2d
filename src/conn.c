/*
 * Connections: message and byte pipes between processes. A message is one
 * frame (internal/frame.h). mproc_pipe() ends carry their frames through
 * rings in shared memory (internal/ring.h), their fd serving as doorbell.
 * Every other end goes through the kernel: a send is one system call;
 * receives read up to 64 KiB at a time into a per-end buffer so that many
 * small messages cost one read, and large payloads are read straight into
 * the caller's memory. FIFOs, the listener/client and mproc_wait live in
 * conn_named.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/conn.h"
#include "internal/deadline.h"
#include "internal/frame.h"
#include "internal/registry.h"
#include "internal/ring.h"
#include "mproc/conn.h"
#include "os/mutex.h"
#include "os/os.h"

#define RBUF_SIZE 65536u
#define MAX_FDQ 8
#define BATCH_MAX 64
#define SMALL_COPY 512

/* Payload of a frame that carries an fd. */
#define PASS_FD 0u   /* a plain fd */
#define PASS_CONN 1u /* a connection end; byte 1 says messages or bytes */
#define PASS_LEN 4u
/* Over a ring the payload also carries the number its fds' token has on
 * the doorbell socket (8 bytes, little-endian), so that fds a sender
 * killed between passing them and publishing its frame left there are
 * told apart and closed. */
#define PASS_LEN_RING MPROC__RING_FD_PAYLOAD
_Static_assert(PASS_LEN_RING == PASS_LEN + 8u, "fd frame payload");
/* Bits of byte 1 of a PASS_CONN payload. */
#define PASS_BYTES 0x1u   /* a byte stream */
#define PASS_SHARED 0x2u  /* a FIFO write end shared by several writers */
#define PASS_RING 0x4u    /* an mproc_pipe end: its memory file follows */
#define PASS_SIDE_B 0x8u  /* ... the second end made */
#define PASS_DUPLEX 0x10u /* ... of a duplex pair (two rings) */
#define PASS_KNOWN                                                             \
    (PASS_BYTES | PASS_SHARED | PASS_RING | PASS_SIDE_B | PASS_DUPLEX)

struct mproc_conn {
    int fd;
    int hold_fd; /* a FIFO reader's own write end, or -1 (mproc_fifo_opts) */
    unsigned io; /* MPROC__IO_* */
    bool bytes, can_send, can_recv, multi_writer;
    pthread_mutex_t smu; /* serializes senders */
    pthread_mutex_t rmu; /* serializes receivers; guards the fields below */
    atomic_int send_err; /* sticky: MPROC_EBROKEN / MPROC_EPROTO */
    int recv_err;        /* sticky, guarded by rmu */
    unsigned char *rbuf; /* RBUF_SIZE bytes, allocated on first recv */
    size_t rpos, rend;   /* unread bytes are rbuf[rpos..rend) */
    atomic_size_t nbuf;  /* rend - rpos, for poll/wait without the lock */
    atomic_int any_err;  /* recv_err, for poll/wait without the lock */
    /* A large message whose recv timed out part way: its payload so far
     * (pbuf, plen + 1 bytes allocated, poff received), resumed by the next
     * recv. While pbuf is set, rbuf holds nothing. Guarded by rmu. */
    unsigned char *pbuf;
    size_t plen, poff;
    int fdq[MAX_FDQ]; /* fds received, not yet taken */
    int nfdq;
    /* mproc_pipe ends: the rings (nrings of them, mapped from memfd), the
     * one this end receives from (rin) and sends to (rout). rin's consumer
     * state is guarded by rmu; rout's by the ring's senders' lock. */
    mproc__ring *rings;
    int nrings, memfd;
    uint32_t ring_size; /* data bytes per ring, as created or attached */
    bool side_b;
    mproc__ringio rin, rout;
    mproc__reg_node reg; /* in the registry of ends (internal/registry.h) */
};

/* An end closed in this process by a start with inherit_only. */
#define SEVERED(c) ((c) != NULL && (c)->fd < 0)

static bool ringed(const mproc_conn *c)
{
    return c->rings != NULL;
}

static void put_fd(int *out, size_t cap, size_t *k, int fd)
{
    if (*k < cap)
        out[*k] = fd;
    (*k)++;
}

/* Every fd the end holds: its own, its memory file, fds received and not
 * yet taken (queued, or on ring tokens). */
static size_t conn_fds(const mproc__reg_node *n, int *out, size_t cap)
{
    const mproc_conn *c = n->obj;
    const mproc__ringio *x = &c->rin;
    size_t k = 0;
    put_fd(out, cap, &k, c->fd);
    put_fd(out, cap, &k, c->memfd);
    put_fd(out, cap, &k, c->hold_fd);
    for (int i = 0; i < c->nfdq; i++)
        put_fd(out, cap, &k, c->fdq[i]);
    for (int i = 0; x->r != NULL && x->tok_have >= 0 && i < x->tok.n; i++)
        put_fd(out, cap, &k, x->tok.fds[i]);
    for (int i = 0; x->r != NULL && i < x->ntok; i++)
        for (int j = 0; j < x->toks[i].n; j++)
            put_fd(out, cap, &k, x->toks[i].fds[j]);
    return k;
}

/* In a child that does not keep this end: closes its fds and mapping but
 * keeps the handle, so that its close frees it without closing an fd
 * number the child may have reused, and every other call is MPROC_EBADF. */
static void conn_sever(mproc__reg_node *n)
{
    mproc_conn *c = (mproc_conn *)n->obj;
    for (int i = 0; i < c->nfdq; i++)
        mproc__os_close(c->fdq[i]);
    if (ringed(c)) {
        if (c->rin.r != NULL)
            mproc__ringio_fini(&c->rin);
        mproc__ring_unmap(c->rings, c->nrings, c->ring_size);
        mproc__os_close(c->memfd);
    }
    mproc__os_close(c->fd);
    mproc__os_close(c->hold_fd);
    c->fd = c->memfd = c->hold_fd = -1;
    c->nfdq = 0;
    c->rings = NULL;
    c->rin.r = c->rout.r = NULL;
    c->can_send = c->can_recv = false;
}

static const mproc__reg_ops conn_reg_ops = {conn_fds, conn_sever};

int mproc__conn_new(int fd, unsigned io, bool bytes, bool can_send,
                    bool can_recv, mproc_conn **out)
{
    mproc_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return MPROC_ENOMEM;
    c->fd = fd;
    c->hold_fd = -1;
    c->io = io;
    c->bytes = bytes;
    c->can_send = can_send;
    c->can_recv = can_recv;
    c->memfd = -1;
    pthread_mutex_init(&c->smu, NULL);
    pthread_mutex_init(&c->rmu, NULL);
    atomic_init(&c->nbuf, 0);
    atomic_init(&c->any_err, 0);
    atomic_init(&c->send_err, 0);
    mproc__reg_add(&c->reg, &conn_reg_ops, c);
    *out = c;
    return 0;
}

void mproc__conn_set_multi_writer(mproc_conn *c, bool multi)
{
    c->multi_writer = multi;
}

void mproc__conn_hold_writer(mproc_conn *c, int fd)
{
    c->hold_fd = fd;
}

/* Takes m before the deadline (MPROC_ETIMEDOUT otherwise): a call with a
 * timeout is bounded also while another thread holds the end. */
static int lock_by(pthread_mutex_t *m, const mproc__deadline *d)
{
    if (mproc__deadline_is_forever(d))
        return mproc__os_mutex_lock_until(m, NULL);
    struct timespec at = mproc__deadline_abs(d);
    return mproc__os_mutex_lock_until(m, &at);
}

static int make_pair(int fds[2], unsigned io, bool bytes, bool duplex,
                     mproc_conn **a, mproc_conn **b)
{
    mproc_conn *x = NULL, *y = NULL;
    int rc = mproc__conn_new(fds[0], io, bytes, duplex, true, &x);
    if (rc == 0)
        rc = mproc__conn_new(fds[1], io, bytes, true, duplex, &y);
    if (rc < 0) {
        free(x);
        mproc__os_close(fds[0]);
        mproc__os_close(fds[1]);
        return rc;
    }
    *a = x;
    *b = y;
    return 0;
}

/* Gives c the rings of its pair: side a receives from ring 0 and sends to
 * ring 1 (duplex only); side b the other way round. */
static void set_rings(mproc_conn *c, mproc__ring *rings, int n, uint32_t size,
                      int memfd, bool side_b)
{
    c->rings = rings;
    c->nrings = n;
    c->ring_size = size;
    c->memfd = memfd;
    c->side_b = side_b;
    mproc__ring *r0 = mproc__ring_nth(rings, 0, size);
    mproc__ring *r1 = n == 2 ? mproc__ring_nth(rings, 1, size) : NULL;
    mproc__ring *in = side_b ? r1 : r0;
    mproc__ring *out = side_b ? r0 : r1;
    if (c->can_recv && in != NULL)
        mproc__ringio_init(&c->rin, in, size, c->fd, c->io, false);
    if (c->can_send && out != NULL)
        mproc__ringio_init(&c->rout, out, size, c->fd, c->io, true);
}

static int add_rings(mproc_conn *x, mproc_conn *y, bool duplex, uint32_t size)
{
    int n = duplex ? 2 : 1, mx, my;
    mproc__ring *rx, *ry;
    uint32_t ysize;
    int rc = mproc__ring_create(n, size, &mx, &rx);
    if (rc < 0)
        return rc;
    my = fcntl(mx, F_DUPFD_CLOEXEC, 0);
    rc = my < 0 ? -errno : mproc__ring_attach(my, n, &ry, &ysize);
    if (rc < 0) {
        mproc__os_close(my);
        mproc__ring_unmap(rx, n, size);
        mproc__os_close(mx);
        return rc;
    }
    set_rings(x, rx, n, size, mx, false);
    set_rings(y, ry, n, ysize, my, true);
    return 0;
}

static int pipe_pair(mproc_conn **a, mproc_conn **b, bool duplex,
                     uint32_t ring_size)
{
    if (a == NULL || b == NULL)
        return MPROC_EINVAL;
    int fds[2];
    mproc_conn *x, *y;
    int rc;
    if (duplex) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0)
            return -errno;
        rc = make_pair(fds, MPROC__IO_SOCK, false, true, &x, &y);
    } else {
        if (pipe2(fds, O_CLOEXEC) < 0)
            return -errno;
        rc = make_pair(fds, 0, false, false, &x, &y);
    }
    if (rc == 0 && ring_size != 0 &&
        (rc = add_rings(x, y, duplex, ring_size)) < 0) {
        mproc_conn_close(x);
        mproc_conn_close(y);
    }
    if (rc < 0)
        return rc;
    *a = x;
    *b = y;
    return 0;
}

int mproc_pipe(mproc_conn **a, mproc_conn **b, bool duplex,
               const mproc_pipe_opts *opts)
{
    mproc_pipe_opts o = MPROC_PIPE_OPTS_INIT;
    if (opts != NULL)
        o = *opts;
    if (o.ring_size > MPROC_PIPE_RING_MAX)
        return MPROC_EINVAL;
    uint32_t size = MPROC_PIPE_RING_MIN;
    size_t want = o.ring_size == 0 ? MPROC_PIPE_RING_DEFAULT : o.ring_size;
    while (size < want)
        size <<= 1;
    return pipe_pair(a, b, duplex, size);
}

int mproc_pipe_kernel(mproc_conn **a, mproc_conn **b, bool duplex)
{
    return pipe_pair(a, b, duplex, 0);
}

int mproc_pipe_bytes(mproc_conn **r, mproc_conn **w)
{
    if (r == NULL || w == NULL)
        return MPROC_EINVAL;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    return make_pair(fds, 0, true, false, r, w);
}

/* Wraps an fd of unknown kind: its type and access mode decide. */
static int wrap_fd(int fd, bool bytes, mproc_conn **out)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    int acc = fl & O_ACCMODE;
    if (S_ISSOCK(st.st_mode)) {
        int type = 0;
        socklen_t sl = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) < 0 ||
            type != SOCK_STREAM)
            return MPROC_EINVAL;
        return mproc__conn_new(fd, MPROC__IO_SOCK, bytes, true, true, out);
    }
    if (!S_ISFIFO(st.st_mode))
        return MPROC_EINVAL;
    /* Named or not, a pipe's read end may see "no writer yet"; the FIFO
     * rule (EOF only after a writer left) is right for both. */
    return mproc__conn_new(fd, MPROC__IO_FIFO, bytes, acc != O_RDONLY,
                           acc != O_WRONLY, out);
}

int mproc_conn_from_fd(mproc_conn **out, int fd, unsigned flags)
{
    if (out == NULL ||
        (flags & ~(MPROC_CONN_BYTES | MPROC_CONN_SINGLE_WRITER)) != 0)
        return MPROC_EINVAL;
    if (fd < 0)
        return MPROC_EBADF;
    mproc_conn *c;
    int rc = wrap_fd(fd, (flags & MPROC_CONN_BYTES) != 0, &c);
    if (rc < 0)
        return rc;
    /* Other processes may hold the same pipe or FIFO open for writing:
     * unless the caller says it is alone, keep messages atomic. */
    c->multi_writer = !(c->io & MPROC__IO_SOCK) && c->can_send && !c->bytes &&
                      !(flags & MPROC_CONN_SINGLE_WRITER);
    *out = c;
    return 0;
}

void mproc_conn_close(mproc_conn *c)
{
    if (c == NULL)
        return;
    mproc__reg_remove(&c->reg);
    for (int i = 0; i < c->nfdq; i++)
        mproc__os_close(c->fdq[i]);
    if (ringed(c)) {
        if (c->rin.r != NULL) {
            mproc__ring_reader_closing(&c->rin);
            mproc__ringio_fini(&c->rin);
        }
        mproc__ring_unmap(c->rings, c->nrings, c->ring_size);
        mproc__os_close(c->memfd);
    }
    mproc__os_close(c->fd);
    mproc__os_close(c->hold_fd);
    free(c->rbuf);
    free(c->pbuf);
    pthread_mutex_destroy(&c->smu);
    pthread_mutex_destroy(&c->rmu);
    free(c);
}

int mproc_conn_fd(const mproc_conn *c)
{
    return c != NULL ? c->fd : -1;
}

bool mproc_conn_can_send(const mproc_conn *c)
{
    return c != NULL && c->can_send;
}

bool mproc_conn_can_recv(const mproc_conn *c)
{
    return c != NULL && c->can_recv;
}

/* ----- sending ----- */

/* A sticky send error after a torn write; caller holds smu. */
static int after_send(mproc_conn *c, int rc, size_t done, size_t total)
{
    if (rc < 0 && rc != MPROC_ECLOSED && done > 0 && done < total)
        atomic_store(&c->send_err, MPROC_EBROKEN);
    return rc;
}

/* Sends one message (or, with msgs, n of them: *done says how many went)
 * on the end's ring. */
static int ring_send(mproc_conn *c, const void *buf, size_t len,
                     const mproc_conn_msg *msgs, size_t n, size_t *done,
                     const mproc__deadline *d)
{
    _Static_assert(sizeof(mproc_conn_msg) == sizeof(mproc__rec_msg) &&
                       offsetof(mproc_conn_msg, len) ==
                           offsetof(mproc__rec_msg, len),
                   "a batch's messages are the ring's");
    int rc = atomic_load(&c->send_err);
    if (rc == 0)
        rc = mproc__ring_lock(&c->rout, d);
    if (rc < 0)
        return rc;
    if (msgs != NULL)
        rc = mproc__ring_send_batch(&c->rout, (const mproc__rec_msg *)msgs, n,
                                    d, done);
    else
        rc = mproc__ring_send(&c->rout, buf, len, d);
    int urc = mproc__ring_unlock(&c->rout);
    if (rc == 0)
        rc = urc;
    /* A message that went out in part was aborted: the receiver drops it,
     * and the direction goes on (no sticky error, unlike a kernel end). */
    return rc;
}

int mproc_conn_send(mproc_conn *c, const void *buf, size_t len,
                    int64_t timeout_ms)
{
    if (SEVERED(c))
        return MPROC_EBADF;
    if (c == NULL || !c->can_send || c->bytes || (buf == NULL && len > 0))
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    if ((uint64_t)len > MPROC__FRAME_MAX ||
        (c->multi_writer && len > MPROC_FIFO_ATOMIC_MAX))
        return MPROC_EMSGSIZE;
    if (ringed(c))
        return ring_send(c, buf, len, NULL, 0, NULL, &d);
    /* Small messages are copied behind their header: one contiguous buffer
     * is measurably cheaper for the kernel than two iovecs. */
    unsigned char small[SMALL_COPY];
    struct iovec iov[2] = {{small, MPROC__FRAME_HDR}, {(void *)buf, len}};
    int cnt = len > 0 ? 2 : 1;
    mproc__frame_put_header(small, len, 0);
    if (len <= SMALL_COPY - MPROC__FRAME_HDR) {
        if (len > 0)
            memcpy(small + MPROC__FRAME_HDR, buf, len);
        iov[0].iov_len += len;
        cnt = 1;
    }
    size_t done = 0;
    rc = lock_by(&c->smu, &d);
    if (rc < 0)
        return rc;
    rc = atomic_load(&c->send_err);
    if (rc == 0) {
        rc = mproc__io_writev(c->fd, c->io, iov, cnt, &d, &done);
        rc = after_send(c, rc, done, MPROC__FRAME_HDR + len);
    }
    pthread_mutex_unlock(&c->smu);
    return rc;
}

int mproc_conn_send_batch(mproc_conn *c, const mproc_conn_msg *msgs, size_t n,
                          size_t *sent, int64_t timeout_ms)
{
    if (sent != NULL)
        *sent = 0;
    if (SEVERED(c))
        return MPROC_EBADF;
    if (c == NULL || !c->can_send || c->bytes || (msgs == NULL && n > 0))
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].data == NULL && msgs[i].len > 0)
            return MPROC_EINVAL;
        if ((uint64_t)msgs[i].len > MPROC__FRAME_MAX ||
            (c->multi_writer && msgs[i].len > MPROC_FIFO_ATOMIC_MAX))
            return MPROC_EMSGSIZE;
    }
    if (n == 0)
        return 0;
    unsigned char hdrs[BATCH_MAX][MPROC__FRAME_HDR];
    struct iovec iov[2 * BATCH_MAX];
    size_t lens[BATCH_MAX];
    size_t count = 0;
    if (ringed(c)) {
        rc = ring_send(c, NULL, 0, msgs, n, &count, &d);
        if (sent != NULL)
            *sent = count;
        return rc;
    }
    rc = lock_by(&c->smu, &d);
    if (rc < 0)
        return rc;
    rc = atomic_load(&c->send_err);
    for (size_t i = 0; rc == 0 && i < n;) {
        /* One group: up to BATCH_MAX messages; on a shared FIFO only as
         * many as fit in one atomic write, so no writer's message is torn
         * by another's. */
        int cnt = 0;
        size_t k = 0, total = 0;
        while (i + k < n && k < BATCH_MAX) {
            size_t one = MPROC__FRAME_HDR + msgs[i + k].len;
            if (c->multi_writer && k > 0 &&
                total + one > MPROC_FIFO_ATOMIC_MAX + MPROC__FRAME_HDR)
                break;
            mproc__frame_put_header(hdrs[k], msgs[i + k].len, 0);
            iov[cnt++] = (struct iovec){hdrs[k], MPROC__FRAME_HDR};
            if (msgs[i + k].len > 0)
                iov[cnt++] =
                    (struct iovec){(void *)msgs[i + k].data, msgs[i + k].len};
            lens[k] = one;
            total += one;
            k++;
        }
        size_t done = 0;
        rc = mproc__io_writev(c->fd, c->io, iov, cnt, &d, &done);
        /* Count the whole messages that went. */
        size_t whole = 0, acc = 0;
        while (whole < k && acc + lens[whole] <= done)
            acc += lens[whole++];
        count += whole;
        if (rc < 0 && rc != MPROC_ECLOSED && acc != done)
            atomic_store(&c->send_err, MPROC_EBROKEN);
        i += k;
    }
    pthread_mutex_unlock(&c->smu);
    if (sent != NULL)
        *sent = count;
    return rc;
}

/* ----- receiving ----- */

/* Records a failure that makes the stream unusable; caller holds rmu. */
static int fail_recv(mproc_conn *c, int rc)
{
    c->recv_err = rc;
    atomic_store(&c->any_err, rc);
    if (rc == MPROC_EPROTO) {
        /* Garbage from the peer: stop talking to it in both directions. */
        atomic_store(&c->send_err, MPROC_EPROTO);
        if (c->io & MPROC__IO_SOCK)
            shutdown(c->fd, SHUT_RDWR);
        /* A pipe cannot be shut down: the ring tells its senders. */
        if (ringed(c) && c->rin.r != NULL)
            mproc__ring_reader_broke(&c->rin);
    }
    return rc;
}

static void set_nbuf(mproc_conn *c)
{
    atomic_store_explicit(&c->nbuf, c->rend - c->rpos, memory_order_relaxed);
}

/* Reads until at least want bytes (<= RBUF_SIZE) are buffered. */
static int fill_to(mproc_conn *c, size_t want, const mproc__deadline *d)
{
    if (c->rbuf == NULL) {
        c->rbuf = malloc(RBUF_SIZE);
        if (c->rbuf == NULL)
            return MPROC_ENOMEM;
    }
    if (c->rpos == c->rend)
        c->rpos = c->rend = 0;
    if (c->rpos + want > RBUF_SIZE) {
        memmove(c->rbuf, c->rbuf + c->rpos, c->rend - c->rpos);
        c->rend -= c->rpos;
        c->rpos = 0;
    }
    int rc = 0;
    while (c->rend - c->rpos < want) {
        size_t got = 0;
        rc =
            mproc__io_read(c->fd, c->io, c->rbuf + c->rend, RBUF_SIZE - c->rend,
                           &got, c->fdq, &c->nfdq, MAX_FDQ, d);
        c->rend += got;
        if (rc < 0)
            break;
    }
    set_nbuf(c);
    return rc;
}

/* Peeks at the next header without consuming it. */
static int peek_header(mproc_conn *c, uint64_t *len, unsigned *flags,
                       const mproc__deadline *d)
{
    if (ringed(c)) {
        unsigned kind;
        int rc = mproc__ring_next(&c->rin, d, &kind, len);
        if (rc == MPROC_EPROTO)
            return fail_recv(c, rc);
        if (rc < 0)
            return rc;
        *flags = kind == MPROC__REC_FDS ? MPROC__FRAME_FD : 0u;
        return 0;
    }
    int rc = fill_to(c, MPROC__FRAME_HDR, d);
    if (rc == MPROC_EPROTO || (rc == MPROC_ECLOSED && c->rend > c->rpos))
        return fail_recv(c, MPROC_EPROTO);
    if (rc < 0)
        return rc;
    rc = mproc__frame_get_header(c->rbuf + c->rpos, len, flags);
    if (rc < 0)
        return fail_recv(c, rc);
    return 0;
}

/* Keeps the first off bytes of a large payload (len) that timed out, so the
 * next recv resumes it. dst is adopted when it is a malloc'ed len + 1 buffer
 * (own), copied otherwise. Without memory for the copy the direction is
 * broken, as it cannot be resumed. */
static int keep_partial(mproc_conn *c, unsigned char *dst, size_t len,
                        size_t off, bool own, int rc)
{
    unsigned char *p = own ? dst : malloc(len + 1);
    if (p == NULL) {
        fail_recv(c, MPROC_EBROKEN);
        return rc;
    }
    if (!own && off > 0)
        memcpy(p, dst, off);
    c->pbuf = p;
    c->plen = len;
    c->poff = off;
    return rc;
}

/* Reads the payload's bytes [*off, len) straight from the fd into dst. */
static int read_rest(mproc_conn *c, unsigned char *dst, size_t len, size_t *off,
                     const mproc__deadline *d)
{
    if (ringed(c)) {
        uint64_t got = *off;
        int rc = mproc__ring_resume(&c->rin, dst, len, &got, d);
        *off = (size_t)got;
        return rc == MPROC_EPROTO ? fail_recv(c, rc) : rc;
    }
    while (*off < len) {
        size_t got = 0;
        int rc = mproc__io_read(c->fd, c->io, dst + *off, len - *off, &got,
                                c->fdq, &c->nfdq, MAX_FDQ, d);
        *off += got;
        if (rc == MPROC_ECLOSED || rc == MPROC_EPROTO)
            return fail_recv(c, MPROC_EPROTO);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Consumes the header just peeked and moves the payload to dst. A message
 * that fits in the buffer is waited for whole before anything is consumed,
 * so a timeout leaves it queued; a larger one is read straight into dst,
 * and a timeout inside it keeps the part read (keep_partial) for the next
 * recv. own: dst is a malloc'ed len + 1 buffer the connection may keep. */
static int take_payload(mproc_conn *c, void *dst, size_t len, bool own,
                        const mproc__deadline *d)
{
    int rc;
    if (ringed(c) && c->rin.f.kind != MPROC__REC_FIRST) {
        mproc__ring_take_whole(&c->rin, dst);
        return 0;
    }
    if (ringed(c)) {
        uint64_t off = 0;
        rc = mproc__ring_take_stream(&c->rin, dst, len, &off, d);
        if (rc == MPROC_EPROTO)
            return fail_recv(c, rc);
        if (rc < 0 && rc != MPROC__RING_CUT && c->recv_err == 0) {
            if (rc == MPROC_ETIMEDOUT)
                return keep_partial(c, dst, len, (size_t)off, own, rc);
            fail_recv(c, MPROC_EBROKEN);
        }
        return rc;
    }
    if (len <= RBUF_SIZE - MPROC__FRAME_HDR) {
        rc = fill_to(c, MPROC__FRAME_HDR + len, d);
        if (rc == MPROC_ECLOSED || rc == MPROC_EPROTO)
            return fail_recv(c, MPROC_EPROTO);
        if (rc < 0)
            return rc;
        if (len > 0)
            memcpy(dst, c->rbuf + c->rpos + MPROC__FRAME_HDR, len);
        c->rpos += MPROC__FRAME_HDR + len;
        set_nbuf(c);
        return 0;
    }
    c->rpos += MPROC__FRAME_HDR;
    size_t off = c->rend - c->rpos;
    if (off > len)
        off = len;
    memcpy(dst, c->rbuf + c->rpos, off);
    c->rpos += off;
    set_nbuf(c);
    rc = read_rest(c, dst, len, &off, d);
    if (rc < 0 && c->recv_err == 0) {
        if (rc == MPROC_ETIMEDOUT)
            return keep_partial(c, dst, len, off, own, rc);
        fail_recv(c, MPROC_EBROKEN);
    }
    return rc;
}

/* Resumes the partial message: 0 once pbuf holds all plen bytes. */
static int resume_partial(mproc_conn *c, const mproc__deadline *d)
{
    int rc = read_rest(c, c->pbuf, c->plen, &c->poff, d);
    if (rc < 0 && rc != MPROC_ETIMEDOUT && rc != MPROC__RING_CUT &&
        c->recv_err == 0)
        fail_recv(c, MPROC_EBROKEN);
    if (rc < 0 && (c->recv_err != 0 || rc == MPROC__RING_CUT)) {
        free(c->pbuf);
        c->pbuf = NULL;
    }
    return rc;
}

/* The next message's length and flags: the partial one, or a new header. */
static int peek_next(mproc_conn *c, uint64_t *len, unsigned *flags,
                     const mproc__deadline *d)
{
    int rc = c->recv_err;
    if (rc < 0)
        return rc;
    if (c->pbuf != NULL && ringed(c)) {
        /* The part kept from an earlier timeout belongs to a message its
         * sender aborted since: dropped. */
        rc = mproc__ring_partial_doomed(&c->rin);
        if (rc < 0)
            return fail_recv(c, rc);
        if (rc == 1) {
            free(c->pbuf);
            c->pbuf = NULL;
        }
    }
    if (c->pbuf != NULL) {
        *len = c->plen;
        *flags = 0;
        return 0;
    }
    return peek_header(c, len, flags, d);
}

/* Before the next message (n bytes, just peeked) is reported by its size:
 * on a ring, a streamed one whose sender is gone (a look at /proc, which
 * peek_header spares every large message) is cut and dropped
 * (MPROC__RING_CUT: look again); else 0. */
static int drop_abandoned(mproc_conn *c, uint64_t n)
{
    (void)n;
    if (!ringed(c) || c->pbuf != NULL || c->rin.f.kind != MPROC__REC_FIRST)
        return 0;
    int rc = mproc__ring_drop_doomed(&c->rin);
    if (rc < 0)
        return fail_recv(c, rc);
    return rc == 1 ? MPROC__RING_CUT : 0;
}

static int recv_check(mproc_conn *c, size_t *len, int64_t timeout_ms,
                      mproc__deadline *d)
{
    if (SEVERED(c))
        return MPROC_EBADF;
    if (c == NULL || !c->can_recv || c->bytes || len == NULL)
        return MPROC_EINVAL;
    return mproc__deadline_init(d, timeout_ms);
}

/* Takes the next message whole: into buf (limit bytes), or, when out is
 * not NULL, into a new block (at most limit bytes, with a NUL after them)
 * put in *out. A message too large is left where it is (MPROC_EMSGSIZE
 * with its size in *len); one its sender cut is dropped and the next one
 * taken. */
static int recv_message(mproc_conn *c, void *buf, size_t limit, void **out,
                        size_t *len, const mproc__deadline *d)
{
    bool alloc = out != NULL;
    int rc = lock_by(&c->rmu, d);
    if (rc < 0)
        return rc;
    uint64_t n;
    unsigned char *m = NULL;
    do { /* again after a message its sender cut: it is dropped */
        if (alloc)
            free(m);
        m = NULL;
        unsigned flags;
        rc = peek_next(c, &n, &flags, d);
        if (rc == 0 && flags != 0)
            rc = MPROC_ESTATE;
        if (rc == 0 && (n > limit || n >= SIZE_MAX) &&
            (rc = drop_abandoned(c, n)) == 0) {
            *len = n > SIZE_MAX ? SIZE_MAX : (size_t)n;
            rc = MPROC_EMSGSIZE;
        }
        if (rc == 0 && c->pbuf != NULL) {
            rc = resume_partial(c, d);
            if (rc == 0) {
                m = c->pbuf;
                c->pbuf = NULL;
            }
        } else if (rc == 0) {
            m = alloc ? malloc((size_t)n + 1) : buf;
            if (alloc && m == NULL)
                rc = MPROC_ENOMEM;
            if (rc == 0)
                rc = take_payload(c, m, (size_t)n, alloc, d);
            if (rc < 0 && alloc && c->pbuf == m)
                m = NULL; /* kept for the next recv */
        }
    } while (rc == MPROC__RING_CUT);
    pthread_mutex_unlock(&c->rmu);
    if (rc < 0) {
        if (alloc)
            free(m);
        return rc;
    }
    if (alloc) {
        m[n] = '\0';
        *out = m;
    } else if (m != buf) {
        /* The rest of a message an earlier recv timed out inside. */
        memcpy(buf, m, (size_t)n);
        free(m);
    }
    *len = (size_t)n;
    return 0;
}

int mproc_conn_recv(mproc_conn *c, void *buf, size_t cap, size_t *len,
                    int64_t timeout_ms)
{
    mproc__deadline d;
    int rc = recv_check(c, len, timeout_ms, &d);
    if (rc < 0)
        return rc;
    if (buf == NULL && cap > 0)
        return MPROC_EINVAL;
    return recv_message(c, buf, cap, NULL, len, &d);
}

int mproc_conn_recv_alloc(mproc_conn *c, void **out, size_t *len, size_t max,
                          int64_t timeout_ms)
{
    mproc__deadline d;
    int rc = recv_check(c, len, timeout_ms, &d);
    if (rc < 0)
        return rc;
    if (out == NULL)
        return MPROC_EINVAL;
    return recv_message(c, NULL, max, out, len, &d);
}

int mproc_conn_poll(mproc_conn *c, int64_t timeout_ms)
{
    if (SEVERED(c))
        return MPROC_EBADF;
    if (c == NULL || !c->can_recv)
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    /* No lock: the atomics say enough, and a receiver blocked in another
     * thread must not hold this call beyond its timeout. */
    rc = atomic_load(&c->any_err);
    if (rc < 0 || atomic_load(&c->nbuf) > 0)
        return rc;
    if (ringed(c)) {
        /* In slices: a recv in another thread may take the bell rung for
         * this wait, and a sender may die before it rings. */
        int64_t slice_ms = MPROC__RING_SLICE_MIN_MS;
        while (!mproc__ring_arm(&c->rin)) {
            mproc__deadline slice;
            mproc__deadline_init(&slice, slice_ms);
            slice = mproc__deadline_min(slice, d);
            rc = mproc__io_wait(c->fd, POLLIN, &slice);
            if (rc == MPROC_ETIMEDOUT && !mproc__deadline_expired(&d)) {
                mproc__ring_recover(&c->rin);
                slice_ms =
                    mproc__slice_next(slice_ms, MPROC__RING_SLICE_MAX_MS);
                continue;
            }
            if (rc < 0)
                return rc;
            if (!mproc__conn_drain_doorbell(c))
                return 0; /* a recv runs: it will see what came */
        }
        return 0;
    }
    /* A FIFO with no writer yet reports nothing; one whose writers left
     * reports a hangup, which is EOF: both are right as poll gives them. */
    return mproc__io_wait(c->fd, POLLIN, &d);
}

bool mproc__conn_drain_doorbell(mproc_conn *c)
{
    if (pthread_mutex_trylock(&c->rmu) != 0)
        return false;
    int rc = mproc__ring_drain(&c->rin);
    if (rc < 0)
        fail_recv(c, rc);
    pthread_mutex_unlock(&c->rmu);
    return true;
}

bool mproc__conn_ready_buffered(mproc_conn *c)
{
    if (atomic_load_explicit(&c->nbuf, memory_order_relaxed) > 0 ||
        atomic_load_explicit(&c->any_err, memory_order_relaxed) < 0)
        return true;
    return ringed(c) && c->can_recv && mproc__ring_arm(&c->rin);
}

struct mproc__ringio *mproc__conn_ringio(mproc_conn *c, bool send)
{
    mproc__ringio *x = send ? &c->rout : &c->rin;
    return ringed(c) && x->r != NULL ? x : NULL;
}

void mproc__conn_ring_recover(mproc_conn *c)
{
    mproc__ring_recover(&c->rin);
}

bool mproc__conn_ringed(const mproc_conn *c)
{
    return ringed(c) && c->can_recv;
}

/* ----- byte pipes ----- */

int mproc_conn_write(mproc_conn *c, const void *buf, size_t len,
                     size_t *written, int64_t timeout_ms)
{
    if (written != NULL)
        *written = 0;
    if (SEVERED(c))
        return MPROC_EBADF;
    if (c == NULL || !c->can_send || !c->bytes || (buf == NULL && len > 0))
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    struct iovec iov = {(void *)buf, len};
    rc = lock_by(&c->smu, &d);
    if (rc < 0)
        return rc;
    rc = mproc__io_writev(c->fd, c->io, &iov, len > 0 ? 1 : 0, &d, written);
    pthread_mutex_unlock(&c->smu);
    return rc;
}

int mproc_conn_read(mproc_conn *c, void *buf, size_t cap, size_t *got,
                    int64_t timeout_ms)
{
    if (got != NULL)
        *got = 0;
    if (SEVERED(c))
        return MPROC_EBADF;
    if (c == NULL || !c->can_recv || !c->bytes || buf == NULL || cap == 0 ||
        got == NULL)
        return MPROC_EINVAL;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    rc = lock_by(&c->rmu, &d);
    if (rc < 0)
        return rc;
    rc = mproc__io_read(c->fd, c->io, buf, cap, got, c->fdq, &c->nfdq, MAX_FDQ,
                        &d);
    /* Fds passed along a byte stream stay queued (up to MAX_FDQ, closed
     * with the end); only those beyond that were closed, and the bytes
     * that came with them are fine. */
    if (rc == MPROC_EPROTO && *got > 0)
        rc = 0;
    pthread_mutex_unlock(&c->rmu);
    return rc;
}

/* ----- passing fds ----- */

/* A frame that carries fds: PASS_LEN bytes of payload (tag, arg, number of
 * fds; over a ring also their token's number, PASS_LEN_RING). Over the
 * kernel the fds ride on the frame's first byte; over a ring they go
 * ahead on the socket on a token of their own (which also rings the
 * doorbell), once the ring has room for the frame, so that a frame is
 * never published without its fds. */
static int send_with_fds(mproc_conn *c, const int *fds, int nfd, unsigned tag,
                         unsigned arg, int64_t timeout_ms)
{
    if (SEVERED(c))
        return MPROC_EBADF;
    if (c == NULL || !c->can_send || c->bytes)
        return MPROC_EINVAL;
    if (!(c->io & MPROC__IO_SOCK))
        return MPROC_ENOTSOCK;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    for (int i = 0; i < nfd; i++)
        if (fds[i] < 0 || fcntl(fds[i], F_GETFD) < 0)
            return MPROC_EBADF;
    unsigned char msg[MPROC__FRAME_HDR + PASS_LEN_RING] = {0};
    size_t plen = ringed(c) ? PASS_LEN_RING : PASS_LEN;
    mproc__frame_put_header(msg, plen, MPROC__FRAME_FD);
    msg[MPROC__FRAME_HDR] = (unsigned char)tag;
    msg[MPROC__FRAME_HDR + 1] = (unsigned char)arg;
    msg[MPROC__FRAME_HDR + 2] = (unsigned char)nfd;
    struct iovec iov = {msg, MPROC__FRAME_HDR + plen};
    size_t done = 0;
    if (ringed(c)) {
        rc = atomic_load(&c->send_err);
        if (rc == 0)
            rc = mproc__ring_lock(&c->rout, &d);
        if (rc < 0)
            return rc;
        uint32_t pos;
        uint64_t seq;
        rc = mproc__ring_place_fds(&c->rout, &d, &pos, &seq);
        if (rc == 0) {
            unsigned char tok[MPROC__RING_FDTOK_LEN];
            tok[0] = MPROC__RING_FDTOK;
            mproc__le_put(tok + 1, seq, 8);
            mproc__le_put(msg + MPROC__FRAME_HDR + PASS_LEN, seq, 8);
            struct iovec one = {tok, sizeof tok};
            rc = mproc__io_send_fds(c->fd, &one, 1, fds, nfd, &d, &done);
        }
        if (rc == 0)
            rc = mproc__ring_commit_fds(&c->rout, pos, msg + MPROC__FRAME_HDR);
        int urc = mproc__ring_unlock(&c->rout);
        return rc == 0 ? urc : rc;
    }
    rc = lock_by(&c->smu, &d);
    if (rc < 0)
        return rc;
    rc = atomic_load(&c->send_err);
    if (rc == 0) {
        rc = mproc__io_send_fds(c->fd, &iov, 1, fds, nfd, &d, &done);
        rc = after_send(c, rc, done, iov.iov_len);
    }
    pthread_mutex_unlock(&c->smu);
    return rc;
}

int mproc_conn_send_fd(mproc_conn *c, int fd, int64_t timeout_ms)
{
    return send_with_fds(c, &fd, 1, PASS_FD, 0, timeout_ms);
}

int mproc_conn_send_conn(mproc_conn *c, const mproc_conn *end,
                         int64_t timeout_ms)
{
    if (end == NULL)
        return MPROC_EINVAL;
    unsigned arg =
        (end->bytes ? PASS_BYTES : 0u) | (end->multi_writer ? PASS_SHARED : 0u);
    int fds[2] = {end->fd, end->memfd};
    if (ringed(end))
        arg |= PASS_RING | (end->side_b ? PASS_SIDE_B : 0u) |
               (end->nrings == 2 ? PASS_DUPLEX : 0u);
    return send_with_fds(c, fds, ringed(end) ? 2 : 1, PASS_CONN, arg,
                         timeout_ms);
}

/* The payload of the next frame, which must carry fds (of kind want, or
 * any when want is negative), without consuming it. */
static int peek_pass(mproc_conn *c, int want, unsigned char pay[PASS_LEN_RING],
                     const mproc__deadline *d)
{
    uint64_t n;
    unsigned flags;
    int rc = peek_next(c, &n, &flags, d);
    if (rc == 0 && !(flags & MPROC__FRAME_FD))
        return MPROC_ESTATE;
    if (rc == 0 && n != (ringed(c) ? PASS_LEN_RING : PASS_LEN))
        return fail_recv(c, MPROC_EPROTO);
    if (rc < 0)
        return rc;
    if (ringed(c)) {
        mproc__ring_peek(&c->rin, pay, PASS_LEN_RING);
    } else {
        rc = fill_to(c, MPROC__FRAME_HDR + PASS_LEN, d);
        if (rc == MPROC_ECLOSED || rc == MPROC_EPROTO)
            return fail_recv(c, MPROC_EPROTO);
        if (rc < 0)
            return rc;
        memcpy(pay, c->rbuf + c->rpos + MPROC__FRAME_HDR, PASS_LEN);
    }
    if (pay[2] < 1 || pay[2] > MPROC__IO_MAX_PASS)
        return fail_recv(c, MPROC_EPROTO);
    if (want >= 0 && pay[0] != (unsigned)want)
        return MPROC_ESTATE;
    return 0;
}

static void close_fds(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        mproc__os_close(fds[i]);
}

/* Takes the next frame, which must carry fds (of kind want, or any when
 * want is negative): fds[0 .. *nfd), *arg. Another frame stays queued
 * (MPROC_ESTATE). */
static int recv_with_fds(mproc_conn *c, int fds[MPROC__IO_MAX_PASS], int *nfd,
                         int want, unsigned *arg, int64_t timeout_ms)
{
    if (SEVERED(c))
        return MPROC_EBADF;
    if (c == NULL || !c->can_recv || c->bytes)
        return MPROC_EINVAL;
    if (!(c->io & MPROC__IO_SOCK))
        return MPROC_ENOTSOCK;
    mproc__deadline d;
    int rc = mproc__deadline_init(&d, timeout_ms);
    if (rc < 0)
        return rc;
    rc = lock_by(&c->rmu, &d);
    if (rc < 0)
        return rc;
    unsigned char pay[PASS_LEN_RING];
    rc = peek_pass(c, want, pay, &d);
    if (rc == 0)
        rc = take_payload(c, pay, ringed(c) ? PASS_LEN_RING : PASS_LEN, false,
                          &d);
    int got = 0;
    bool lost = false;
    if (rc == 0 && ringed(c)) {
        /* Over a ring the fds went ahead on the socket, on a token that
         * carries this frame's number. */
        rc = mproc__ring_take_fds(&c->rin, mproc__le_get(pay + PASS_LEN, 8),
                                  fds, &got);
        for (int i = 0; rc == 0 && i < got; i++)
            lost |= fds[i] == MPROC__IO_FD_LOST;
        if (rc == 0 && !lost && got != pay[2])
            rc = MPROC_EPROTO;
    }
    while (rc == 0 && !ringed(c) && got < pay[2]) {
        if (c->nfdq == 0) {
            rc = MPROC_EPROTO;
            break;
        }
        int fd = c->fdq[0];
        c->nfdq--;
        memmove(c->fdq, c->fdq + 1, (size_t)c->nfdq * sizeof(int));
        if (fd == MPROC__IO_FD_LOST) {
            lost = true; /* the frame's other fds never came */
            break;
        }
        fds[got++] = fd;
    }
    /* The kernel could not give this process the fds: the frame is taken,
     * its fds are gone, and the stream goes on at the next frame. */
    if (rc == 0 && lost)
        rc = MPROC_EMFILE;
    if (rc < 0)
        close_fds(fds, got);
    if (rc == MPROC_EPROTO)
        rc = fail_recv(c, rc);
    if (rc == 0) {
        *nfd = got;
        *arg = pay[1];
    }
    pthread_mutex_unlock(&c->rmu);
    return rc;
}

int mproc_conn_recv_fd(mproc_conn *c, int *fd, int64_t timeout_ms)
{
    if (fd == NULL)
        return MPROC_EINVAL;
    int fds[MPROC__IO_MAX_PASS], nfd;
    unsigned arg;
    int rc = recv_with_fds(c, fds, &nfd, -1, &arg, timeout_ms);
    if (rc < 0)
        return rc;
    /* The fd of a passed connection end; its memory file is not wanted. */
    close_fds(fds + 1, nfd - 1);
    *fd = fds[0];
    return 0;
}

/* Gives a received end the rings of the pair it belongs to. */
static int attach_rings(mproc_conn *e, int memfd, unsigned arg)
{
    int n = (arg & PASS_DUPLEX) ? 2 : 1;
    bool side_b = (arg & PASS_SIDE_B) != 0;
    /* The end must be what the pair made: a socket for a duplex pair; a
     * simplex pair's receiving side a and sending side b. */
    if ((n == 2) != ((e->io & MPROC__IO_SOCK) != 0) ||
        (n == 1 &&
         (side_b ? !e->can_send || e->can_recv : e->can_send || !e->can_recv)))
        return MPROC_EPROTO;
    mproc__ring *rings;
    uint32_t size;
    int rc = mproc__ring_attach(memfd, n, &rings, &size);
    if (rc < 0)
        return rc;
    if (n == 1)
        e->io &= ~(unsigned)MPROC__IO_FIFO; /* an mproc_pipe, not a FIFO */
    set_rings(e, rings, n, size, memfd, side_b);
    return 0;
}

int mproc_conn_recv_conn(mproc_conn *c, mproc_conn **out, int64_t timeout_ms)
{
    if (out == NULL)
        return MPROC_EINVAL;
    int fds[MPROC__IO_MAX_PASS], nfd;
    unsigned arg;
    int rc = recv_with_fds(c, fds, &nfd, PASS_CONN, &arg, timeout_ms);
    if (rc < 0)
        return rc;
    bool ring = (arg & PASS_RING) != 0;
    if ((arg & ~PASS_KNOWN) != 0 || nfd != (ring ? 2 : 1) ||
        (ring && (arg & (PASS_BYTES | PASS_SHARED)) != 0) ||
        (!ring && (arg & (PASS_SIDE_B | PASS_DUPLEX)) != 0)) {
        close_fds(fds, nfd);
        return MPROC_EPROTO;
    }
    mproc_conn *e;
    rc = wrap_fd(fds[0], (arg & PASS_BYTES) != 0, &e);
    if (rc < 0) {
        close_fds(fds, nfd);
        /* What the peer sent is not a usable end. */
        return rc == MPROC_ENOMEM ? rc : MPROC_EPROTO;
    }
    e->multi_writer = e->can_send && !e->bytes && (arg & PASS_SHARED) != 0;
    if (nfd == 2 && (rc = attach_rings(e, fds[1], arg)) < 0) {
        mproc__os_close(fds[1]);
        mproc_conn_close(e);
        return rc == MPROC_ENOMEM ? rc : MPROC_EPROTO;
    }
    *out = e;
    return 0;
}

int mproc_conn_peer(const mproc_conn *c, mproc_peer *out)
{
    if (SEVERED(c))
        return MPROC_EBADF;
    if (c == NULL || out == NULL)
        return MPROC_EINVAL;
    if (!(c->io & MPROC__IO_SOCK))
        return MPROC_ENOTSOCK;
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
        return -errno;
    out->pid = cr.pid;
    out->uid = cr.uid;
    out->gid = cr.gid;
    return 0;
}
