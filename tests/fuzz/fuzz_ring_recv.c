/*
 * Fuzzes the ring reader behind mproc_pipe() ends: the input is what a
 * broken or hostile sender published raw into the shared ring of records
 * (internal/records.h: 8-byte headers, len u32, kind u8; first byte:
 * simplex or duplex, which calls the receiver makes, how the sender ends,
 * how large the pieces are). The input goes in as the ring has room, the
 * receiver taking messages in between, all with timeout 0. Every call must
 * return a documented code, never crash, leak or wait, and the stream must
 * stop with MPROC_ECLOSED, MPROC_EPROTO or another documented end.
 */
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal/conn.h"
#include "internal/deadline.h"
#include "internal/frame.h"
#include "internal/ring.h"
#include "mproc.h"

#define RING 4096u             /* the smallest ring: the input wraps */
#define MAX_INPUT (256 * 1024) /* 64 rings' worth */
#define GUARD (1u << 20)       /* recv_alloc's limit */

/* Mode bits (the first input byte). */
#define M_DUPLEX 0x01u
#define M_CALLS 0x06u /* >> 1: recv / recv_alloc / recv_fd / recv_conn */
#define M_CLOSE 0x08u /* the sender closes after the last byte (EOF) */
#define M_TORN                                                                 \
    0x10u             /* ... or leaves the ring torn, as a garbled one;        \
                         both: it closes inside a message, as a sender         \
                         killed there (the message is aborted) */
#define M_PASS 0x20u  /* duplex: two real fds go ahead on the socket */
#define M_PIECE 0xc0u /* >> 6: size of the pieces published at once */

static void fail(const char *what, int rc)
{
    fprintf(stderr, "fuzz_ring_recv: %s: %s\n", what, mproc_errname(rc));
    abort();
}

static int expected(int rc)
{
    return rc == 0 || rc == MPROC_ETIMEDOUT || rc == MPROC_ECLOSED ||
           rc == MPROC_EPROTO || rc == MPROC_EMSGSIZE || rc == MPROC_ESTATE ||
           rc == MPROC_EBROKEN || rc == MPROC_ENOTSOCK || rc == MPROC_ENOMEM;
}

/* The lowest free fd: unchanged across one input, or an fd leaked. */
static int lowest_free_fd(void)
{
    int fd = dup(0);
    if (fd >= 0)
        close(fd);
    return fd;
}

/* Ahead of the input, on the socket as mproc_conn_send_conn does (a token
 * numbered 1): a pipe's read end and a real ring memory file, so FDS
 * records of the input that claim to carry a connection end (of any kind)
 * find fds to wrap. */
static void pass_fds(mproc_conn *b)
{
    int p[2], memfd;
    mproc__ring *rings;
    if (pipe2(p, O_CLOEXEC) < 0)
        abort();
    if (mproc__ring_create(1, MPROC__RING_DATA, &memfd, &rings) < 0)
        abort();
    mproc__ring_unmap(rings, 1, MPROC__RING_DATA);
    int fds[2] = {p[0], memfd};
    /* On a token numbered 1: an input record that names 1 takes them. */
    unsigned char tok[MPROC__RING_FDTOK_LEN] = {MPROC__RING_FDTOK, 1};
    struct iovec one = {tok, sizeof tok};
    mproc__deadline d;
    mproc__deadline_init(&d, 0);
    size_t done = 0;
    int rc = mproc__io_send_fds(mproc_conn_fd(b), &one, 1, fds, 2, &d, &done);
    if (rc != 0)
        fail("pass fds", rc);
    close(p[0]);
    close(p[1]);
    close(memfd);
}

/* A received end: one try each way, then closed. */
static void use_end(mproc_conn *e)
{
    unsigned char buf[16];
    size_t len;
    int rc;
    if (mproc_conn_can_send(e)) {
        rc = mproc_conn_send(e, "x", 1, 0);
        if (!expected(rc) && rc != MPROC_EINVAL)
            fail("send on a received end", rc);
    }
    if (mproc_conn_can_recv(e)) {
        rc = mproc_conn_recv(e, buf, sizeof buf, &len, 0);
        if (!expected(rc) && rc != MPROC_EINVAL)
            fail("recv on a received end", rc);
    }
    mproc_conn_close(e);
}

/* Publishes n raw bytes at the ring's head (wrapping at its end, as a
 * peer may), one message more by the count, and wakes the receiver. */
static void put_raw(mproc__ringio *w, const uint8_t *b, size_t n)
{
    mproc__deadline now;
    mproc__deadline_init(&now, 0);
    int rc = mproc__ring_lock(w, &now);
    if (rc != 0)
        fail("lock", rc);
    uint64_t h = atomic_load(&w->r->w.head);
    uint32_t pos = mproc__rec_pos(h);
    for (size_t i = 0; i < n; i++)
        w->r->data[(pos + i) & (RING - 1)] = b[i];
    atomic_store(&w->r->w.head,
                 mproc__rec_pack(mproc__rec_cnt(h) + 1, pos + (uint32_t)n));
    mproc__rec_wake_consumers(&w->v);
    mproc__ring_unlock(w);
}

/* Bytes a raw sender may still publish: the ring less what is not freed. */
static uint64_t room_left(const mproc__ringio *w)
{
    uint32_t h = mproc__rec_pos(atomic_load(&w->r->w.head));
    uint32_t used = h - atomic_load(&w->r->w.tail);
    return used >= RING ? 0 : RING - used;
}

/* One receive of the kind the mode asks; *len and *limit for a success. */
static int receive(mproc_conn *a, unsigned calls, size_t *len, size_t *limit)
{
    unsigned char small[16], buf[4096];
    void *p = NULL;
    int rc, fd = -1;
    *limit = sizeof small;
    switch (calls) {
    case 0:
        rc = mproc_conn_recv(a, small, sizeof small, len, 0);
        if (rc == MPROC_EMSGSIZE) {
            *limit = GUARD;
            rc = mproc_conn_recv_alloc(a, &p, len, GUARD, 0);
        }
        break;
    case 1:
        *limit = GUARD;
        rc = mproc_conn_recv_alloc(a, &p, len, GUARD, 0);
        break;
    case 2:
        rc = mproc_conn_recv_fd(a, &fd, 0);
        if (rc == 0)
            close(fd);
        if (rc == MPROC_ESTATE || rc == MPROC_ENOTSOCK) {
            *limit = sizeof buf;
            rc = mproc_conn_recv(a, buf, sizeof buf, len, 0);
        }
        break;
    default: {
        mproc_conn *e = NULL;
        rc = mproc_conn_poll(a, 0);
        if (rc != 0 && rc != MPROC_ETIMEDOUT && rc != MPROC_EPROTO &&
            rc != MPROC_EBROKEN)
            fail("poll", rc);
        rc = mproc_conn_recv_conn(a, &e, 0);
        if (rc == 0)
            use_end(e);
        if (rc == MPROC_ESTATE) {
            rc = mproc_conn_recv_fd(a, &fd, 0);
            if (rc == 0)
                close(fd);
        }
        if (rc == MPROC_ESTATE || rc == MPROC_ENOTSOCK) {
            *limit = sizeof buf;
            rc = mproc_conn_recv(a, buf, sizeof buf, len, 0);
        }
        break;
    }
    }
    free(p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t pieces[4] = {1, 13, 512, RING};
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    data++;
    size--;
    if (size > MAX_INPUT)
        size = MAX_INPUT;
    bool duplex = (mode & M_DUPLEX) != 0;
    size_t piece = pieces[(mode & M_PIECE) >> 6];
    int fd0 = lowest_free_fd();

    mproc_conn *a, *b;
    mproc_pipe_opts o = MPROC_PIPE_OPTS_INIT;
    o.ring_size = RING;
    if (mproc_pipe(&a, &b, duplex, &o) != 0)
        abort();
    mproc__ringio *w = mproc__conn_ringio(b, true);
    mproc__ringio *rr = mproc__conn_ringio(a, false);
    if (w == NULL || rr == NULL)
        abort();
    if (duplex && (mode & M_PASS))
        pass_fds(b);
    size_t written = 0;
    bool ended = false, eof = false;
    for (int i = 0; i < 1000000; i++) {
        /* Publish what fits, never waiting. */
        while (written < size) {
            uint64_t room = room_left(w);
            size_t n = size - written < piece ? size - written : piece;
            if (n > room)
                n = (size_t)room;
            if (n == 0)
                break;
            put_raw(w, data + written, n);
            written += n;
        }
        if (written == size && !ended) {
            ended = true;
            if ((mode & M_TORN) && (mode & M_CLOSE)) {
                atomic_store(&w->r->w.pinside, 1);
                mproc_conn_close(b);
                b = NULL;
                eof = true;
            } else if (mode & M_TORN) {
                atomic_store(&w->r->torn, 1);
                eof = true; /* the reader knows all it will get */
            } else if (mode & M_CLOSE) {
                mproc_conn_close(b);
                b = NULL;
                eof = true;
            }
        }
        size_t len = 0, limit = 0;
        int rc = receive(a, (mode & M_CALLS) >> 1, &len, &limit);
        if (!expected(rc))
            fail("recv", rc);
        if (rc == 0 && len > limit)
            fail("recv: a message longer than the buffer", rc);
        if (rc == 0 || rc == MPROC_ENOTSOCK)
            continue;
        if (rc == MPROC_ETIMEDOUT) {
            /* A full ring always holds what the next step needs, and once
             * the end is known nothing is left to wait for. */
            if (room_left(w) == 0 && mproc__ring_readable(rr) == RING)
                fail("recv waits with a full ring", rc);
            if (eof)
                fail("recv waits after the end", rc);
            if (written == size)
                break; /* the sender stays, silent */
            continue;
        }
        /* A broken stream stays broken (poll and recv say so), but for
         * recv_conn's MPROC_EPROTO about an end that cannot be used: that
         * message is dropped and the stream goes on. */
        if (rc == MPROC_EPROTO || rc == MPROC_EBROKEN) {
            int p = mproc_conn_poll(a, 0);
            if (p != rc && rc == MPROC_EPROTO && (mode & M_CALLS) >> 1 == 3 &&
                p != MPROC_EBROKEN)
                continue;
            if (p != rc)
                fail("poll after the end", p);
            unsigned char buf[16];
            int again = mproc_conn_recv(a, buf, sizeof buf, &len, 0);
            if (again != rc)
                fail("recv after the end", again);
        }
        break;
    }
    mproc_conn_close(b);
    mproc_conn_close(a);
    if (lowest_free_fd() != fd0)
        fail("an fd leaked", 0);
    return 0;
}
