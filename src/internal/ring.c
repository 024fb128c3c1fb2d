/*
 * ring: message pipe directions in shared memory, a ring of records
 * (records.c) with a doorbell. See ring.h for the protocol; docs/conn.md
 * for the layout and the measurements behind the spin length and the ring
 * size.
 */
#include "internal/ring.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/frame.h"
#include "internal/spin.h"
#include "mproc/error.h"
#include "os/os.h"

/* How often a sender that never has to wait asks the kernel whether the
 * reader is still there. */
#define CHECK_NS 10000000

_Static_assert((MPROC__RING_DATA & (MPROC__RING_DATA - 1)) == 0 &&
                   MPROC__RING_DATA >= MPROC__RING_DATA_MIN &&
                   MPROC__RING_DATA <= MPROC__RING_DATA_MAX,
               "ring size: a power of two in range");
_Static_assert(MPROC__RING_DATA_MAX <= (1u << 30), "records' positions");
/* The layout docs/conn.md gives. */
_Static_assert(offsetof(mproc__ring, torn) == 16, "ring layout");
_Static_assert(offsetof(mproc__ring, fdseq) == 24, "ring layout");
_Static_assert(offsetof(mproc__ring, w) == 128, "ring layout");
_Static_assert(offsetof(mproc__ring, data) == 1024, "ring layout");

static bool size_ok(uint64_t size)
{
    return size >= MPROC__RING_DATA_MIN && size <= MPROC__RING_DATA_MAX &&
           (size & (size - 1)) == 0;
}

/* One ring's bytes in the file: the control words and the data. */
static size_t stride(uint32_t size)
{
    return sizeof(mproc__ring) + size;
}

static size_t map_size(int n, uint32_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t s = (size_t)n * stride(size);
    return (s + page - 1) / page * page;
}

mproc__ring *mproc__ring_nth(mproc__ring *rings, int i, uint32_t size)
{
    return (mproc__ring *)(void *)((unsigned char *)rings +
                                   (size_t)i * stride(size));
}

int mproc__ring_create(int n, uint32_t data_size, int *memfd,
                       mproc__ring **rings)
{
    if (!size_ok(data_size))
        return MPROC_EINVAL;
    size_t size = map_size(n, data_size);
    int fd = mproc__os_memfd("mproc-pipe", size);
    if (fd < 0)
        return fd;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int rc = -errno;
        mproc__os_close(fd);
        return rc;
    }
    for (int i = 0; i < n; i++) {
        mproc__ring *r = mproc__ring_nth(p, i, data_size);
        r->magic = MPROC__RING_MAGIC;
        r->version = MPROC__RING_VERSION;
        r->data_size = data_size;
        mproc__rec_init(&r->w);
    }
    *memfd = fd;
    *rings = p;
    return 0;
}

int mproc__ring_attach(int memfd, int n, mproc__ring **rings, uint32_t *out)
{
    /* Seals first: once sealed, the size looked at next cannot change. */
    if (!mproc__os_memfd_sealed(memfd))
        return MPROC_EPROTO;
    struct stat st;
    if (fstat(memfd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return MPROC_EPROTO;
    /* The data size is the one whose mapping has the file's size: found
     * from the file, which no peer can change, then checked against every
     * ring's header. */
    uint32_t data_size = 0;
    for (uint64_t z = MPROC__RING_DATA_MIN; z <= MPROC__RING_DATA_MAX; z *= 2)
        if (map_size(n, (uint32_t)z) == (size_t)st.st_size)
            data_size = (uint32_t)z;
    if (data_size == 0)
        return MPROC_EPROTO;
    size_t size = map_size(n, data_size);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (p == MAP_FAILED)
        return -errno;
    for (int i = 0; i < n; i++) {
        const mproc__ring *r = mproc__ring_nth(p, i, data_size);
        if (r->magic != MPROC__RING_MAGIC ||
            r->version != MPROC__RING_VERSION || r->data_size != data_size) {
            munmap(p, size);
            return MPROC_EPROTO;
        }
    }
    *rings = p;
    *out = data_size;
    return 0;
}

void mproc__ring_unmap(mproc__ring *rings, int n, uint32_t size)
{
    if (rings != NULL)
        munmap(rings, map_size(n, size));
}

static int ring_bell(mproc__ringio *w);

/* The hooks of the ring's two sides (records.h). */
static void bell_hook(void *arg)
{
    (void)ring_bell(arg); /* EPIPE: noted in gone */
}

/* A pipe's receiver never holds a record in place: a BORROWED mark (a
 * broken peer's) holds nothing. */
static bool never_held(void *arg, uint32_t pos, const mproc__rec *rec)
{
    (void)arg;
    (void)pos;
    (void)rec;
    return false;
}

/* A receiver that wrote an ABORT for a dead sender is awake itself. */
static void quiet_hook(void *arg)
{
    (void)arg;
}

static int reader_check(void *arg);
static int doorbell_sleep(void *arg, const mproc__deadline *d);

static const mproc__rec_hooks send_hooks = {
    .held = never_held,
    .wake = bell_hook,
    .room_check = reader_check,
};
static const mproc__rec_hooks recv_hooks = {
    .held = never_held,
    .sleep = doorbell_sleep,
    .wake = quiet_hook,
};

void mproc__ringio_init(mproc__ringio *x, mproc__ring *r, uint32_t size, int fd,
                        unsigned io, bool send)
{
    memset(x, 0, sizeof *x);
    x->r = r;
    x->size = size;
    x->fd = fd;
    x->io = io;
    atomic_init(&x->eof, false);
    x->slice_ms = MPROC__RING_SLICE_MIN_MS;
    x->tok_have = -1;
    mproc__rec_view(&x->v, &r->w, r->data, size, 0,
                    send ? &send_hooks : &recv_hooks, x);
}

static void close_tok(mproc__fdtok *t)
{
    for (int i = 0; i < t->n; i++)
        mproc__os_close(t->fds[i]);
    t->n = 0;
}

void mproc__ringio_fini(mproc__ringio *x)
{
    for (int i = 0; i < x->ntok; i++)
        close_tok(&x->toks[i]);
    if (x->tok_have >= 0)
        close_tok(&x->tok);
    free(x->toks);
    x->toks = NULL;
    x->ntok = x->captok = 0;
    x->tok_have = -1;
}

/* ----- sender ----- */

/* One byte on the doorbell, never blocking: a full doorbell already wakes
 * the reader. */
static int ring_bell(mproc__ringio *w)
{
    for (;;) {
        ssize_t n;
        if (w->io & MPROC__IO_SOCK) {
            n = send(w->fd, "", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            struct iovec v = {(void *)"", 1};
            n = mproc__io_pipe_write(w->fd, &v, 1, true);
        }
        if (n >= 0 || errno == EAGAIN)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EPIPE && errno != ECONNRESET)
            return -errno;
        w->gone = true;
        return MPROC_ECLOSED;
    }
}

int mproc__ring_reader_gone(mproc__ringio *w)
{
    if (w->gone)
        return MPROC_ECLOSED;
    /* A pipe's write end reports POLLERR once no reader is left; a socket
     * reports POLLHUP once its peer is closed (or shut down). */
    struct pollfd p = {.fd = w->fd, .events = 0, .revents = 0};
    int k;
    do
        k = poll(&p, 1, 0);
    while (k < 0 && errno == EINTR);
    if (k > 0 && (p.revents & (POLLERR | POLLHUP))) {
        w->gone = true; /* no reader ever comes back to this pipe */
        return MPROC_ECLOSED;
    }
    return 0;
}

/* While a sender sleeps for room: has the reader gone, or given up? */
static int reader_check(void *arg)
{
    mproc__ringio *w = arg;
    if (atomic_load(&w->r->torn) != 0)
        return MPROC_EBROKEN;
    return mproc__ring_reader_gone(w);
}

int mproc__ring_lock(mproc__ringio *w, const mproc__deadline *d)
{
    int rc = mproc__rec_plock(&w->v, d);
    if (rc < 0)
        return rc;
    if (atomic_load_explicit(&w->r->torn, memory_order_relaxed) != 0) {
        mproc__rec_punlock(&w->v);
        /* Torn by a receiver that found garbage: closed, not broken,
         * once it has shut its socket down (a duplex end) or left. */
        return mproc__ring_reader_gone(w) < 0 ? MPROC_ECLOSED : MPROC_EBROKEN;
    }
    return 0;
}

/* MPROC_ECLOSED while the ring still holds what was published up to head
 * (a reader that took it and then left had it delivered), else 0. */
static int untaken(mproc__ringio *w, uint32_t head)
{
    uint32_t rd = mproc__rec_pos(atomic_load(&w->r->w.rd));
    return (int32_t)(rd - head) >= 0 ? 0 : MPROC_ECLOSED;
}

int mproc__ring_unlock(mproc__ringio *w)
{
    uint32_t head = mproc__rec_pos(w->v.p_head); /* read under the lock */
    mproc__rec_punlock(&w->v);
    mproc__rec_wake_consumers(&w->v);
    /* gone may come from another thread's bell too (callers take this
     * only when the send itself succeeded). */
    return w->gone ? untaken(w, head) : 0;
}

/* After publishing (the reader is woken at mproc__ring_unlock, and a bell
 * that could not be written, for want of memory, is made up for by its
 * sleep slices): now and then makes sure a reader is left at all. Only
 * MPROC_ECLOSED is reported, and only while what was published is not
 * taken: a reader that took it and then left (a reply read, its end
 * closed) had it delivered. */
static int notify(mproc__ringio *w)
{
    int rc = 0;
    if (w->gone) {
        rc = MPROC_ECLOSED;
    } else {
        int64_t now = mproc__os_monotonic_coarse_ns();
        if (now - w->checked_ns >= CHECK_NS) {
            w->checked_ns = now;
            rc = mproc__ring_reader_gone(w);
        }
    }
    if (rc == MPROC_ECLOSED)
        rc = untaken(w, mproc__rec_pos(w->v.p_head)); /* taken: the next
                                                       * send learns */
    return rc;
}

int mproc__ring_send(mproc__ringio *w, const void *buf, size_t len,
                     const mproc__deadline *d)
{
    if (w->gone)
        return MPROC_ECLOSED;
    int rc = len <= mproc__rec_inplace_max(&w->v)
                 ? mproc__rec_put_whole(&w->v, MPROC__REC_MSG, buf, len, d)
                 : mproc__rec_put_stream(&w->v, buf, len, d);
    if (rc < 0)
        return rc;
    return notify(w);
}

int mproc__ring_send_batch(mproc__ringio *w, const mproc__rec_msg *msgs,
                           size_t n, const mproc__deadline *d, size_t *done)
{
    *done = 0;
    if (w->gone)
        return MPROC_ECLOSED;
    int rc = mproc__rec_put_batch(&w->v, msgs, n, d, done);
    if (*done == 0)
        return rc;
    int nrc = notify(w);
    return rc < 0 ? rc : nrc;
}

int mproc__ring_place_fds(mproc__ringio *w, const mproc__deadline *d,
                          uint32_t *pos, uint64_t *seq)
{
    if (w->gone)
        return MPROC_ECLOSED;
    int rc = mproc__rec_place(
        &w->v, MPROC__REC_HDR + mproc__rec_round8(MPROC__RING_FD_PAYLOAD),
        MPROC__REC_ROOM_SLOT, d, pos);
    if (rc == 0)
        *seq = atomic_fetch_add(&w->r->fdseq, 1) + 1;
    return rc;
}

int mproc__ring_commit_fds(mproc__ringio *w, uint32_t pos,
                           const unsigned char pay[MPROC__RING_FD_PAYLOAD])
{
    mproc__rec_put_hdr(&w->v, pos, MPROC__REC_FDS, MPROC__RING_FD_PAYLOAD);
    memcpy(mproc__rec_at(&w->v, pos) + 1, pay, MPROC__RING_FD_PAYLOAD);
    mproc__rec_publish(
        &w->v, pos + MPROC__REC_HDR + mproc__rec_round8(MPROC__RING_FD_PAYLOAD),
        1);
    return notify(w);
}

/* ----- receiver ----- */

uint64_t mproc__ring_readable(const mproc__ringio *r)
{
    const mproc__rec_shared *s = &r->r->w;
    uint64_t h = atomic_load_explicit(&s->head, memory_order_acquire);
    uint64_t rd = atomic_load_explicit(&s->rd, memory_order_relaxed);
    return mproc__rec_pos(h) - mproc__rec_pos(rd);
}

/* Reads doorbell bytes without blocking until none are left or EOF.
 * *more: it stopped after a short read, which saves a system call but may
 * leave an EOF unread behind the bytes. */
static int drain(mproc__ringio *r, bool *more);

/* The receiver's sleep (records.h, the sleep hook): poll() on the doorbell
 * for one slice, 50 ms doubling to a second while nothing comes, since a
 * sender killed inside a message leaves it to the receiver to end it
 * (records.c looks after each slice). */
static int doorbell_sleep(void *arg, const mproc__deadline *d)
{
    mproc__ringio *r = arg;
    if (atomic_load(&r->r->torn) != 0)
        return MPROC_EPROTO;
    if (atomic_load(&r->eof))
        return MPROC_ECLOSED;
    mproc__deadline slice;
    mproc__deadline_init(&slice, r->slice_ms);
    slice = mproc__deadline_min(slice, *d);
    int rc = mproc__io_wait(r->fd, POLLIN, &slice);
    if (rc == MPROC_ETIMEDOUT) {
        if (mproc__deadline_expired(d))
            return MPROC_ETIMEDOUT;
        r->slice_ms = mproc__slice_next(r->slice_ms, MPROC__RING_SLICE_MAX_MS);
        return 1;
    }
    bool more;
    if (rc == 0)
        rc = drain(r, &more);
    if (rc < 0)
        return rc;
    return atomic_load(&r->eof) ? MPROC_ECLOSED : 0;
}

/* A wait that found nothing by its deadline. Takes doorbell bytes left
 * from earlier rounds first (so the fd is not readable with nothing behind
 * it, and an EOF behind them is seen), then arms: a bell rung after the
 * look below stays on the fd for whoever waits on it next. 1: something
 * came after all (look again); MPROC_ETIMEDOUT; MPROC_ECLOSED. */
static int timed_out(mproc__ringio *r)
{
    bool more;
    int rc = drain(r, &more);
    if (rc == 0 && more && !atomic_load(&r->eof))
        rc = drain(r, &more);
    if (rc < 0)
        return rc;
    if (atomic_load(&r->r->torn) != 0)
        return MPROC_EPROTO;
    if (atomic_load(&r->eof)) {
        /* Every sender is gone: a message one of them began is ended. */
        if (mproc__ring_readable(r) == 0)
            (void)mproc__rec_settle_producer(&r->v, true);
        return mproc__ring_readable(r) > 0 ? 1 : MPROC_ECLOSED;
    }
    return mproc__ring_arm(r) ? 1 : MPROC_ETIMEDOUT;
}

int mproc__ring_next(mproc__ringio *r, const mproc__deadline *d, unsigned *kind,
                     uint64_t *len)
{
    r->slice_ms = MPROC__RING_SLICE_MIN_MS;
    for (;;) {
        if (atomic_load_explicit(&r->r->torn, memory_order_relaxed) != 0)
            return MPROC_EPROTO;
        int rc = mproc__rec_next(&r->v, d, &r->f);
        if (rc == MPROC_ETIMEDOUT) {
            rc = timed_out(r);
            if (rc == 1)
                continue;
        }
        if (rc < 0)
            return rc;
        if (r->f.kind == MPROC__REC_FDS && r->f.len != MPROC__RING_FD_PAYLOAD)
            return MPROC_EPROTO;
        if (r->f.kind != MPROC__REC_FIRST) {
            *kind = r->f.kind;
            *len = r->f.len;
            return 0;
        }
        uint64_t total = mproc__rec_stream_total(&r->v, &r->f);
        if (total > MPROC__FRAME_MAX || total < r->f.len - 8u)
            return MPROC_EPROTO;
        /* One its sender already aborted is dropped here, not reported by
         * its size or kind. */
        rc = mproc__rec_skip_aborted(&r->v, r->f.pos + r->f.size, false);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            *kind = MPROC__REC_FIRST;
            *len = total;
            return 0;
        }
    }
}

int mproc__ring_drop_doomed(mproc__ringio *r)
{
    return mproc__rec_skip_aborted(&r->v, r->f.pos + r->f.size, true);
}

/* After a take: frees lazily and wakes a sender waiting for room. */
static void taken(mproc__ringio *r)
{
    mproc__rec_lazy_free(&r->v);
    mproc__rec_wake_producer(&r->v);
}

void mproc__ring_peek(const mproc__ringio *r, void *dst, size_t n)
{
    memcpy(dst, mproc__rec_at(&r->v, r->f.pos) + 1, n);
}

void mproc__ring_take_whole(mproc__ringio *r, void *dst)
{
    if (r->f.len > 0)
        memcpy(dst, mproc__rec_at(&r->v, r->f.pos) + 1, r->f.len);
    mproc__rec_consume(&r->v, r->f.size, 1);
    taken(r);
}

int mproc__ring_resume(mproc__ringio *r, unsigned char *dst, uint64_t total,
                       uint64_t *got, const mproc__deadline *d)
{
    r->slice_ms = MPROC__RING_SLICE_MIN_MS;
    for (;;) {
        int rc = mproc__rec_read_stream(&r->v, dst, total, got, d);
        if (rc == MPROC_ETIMEDOUT) {
            rc = timed_out(r);
            if (rc == 1)
                continue;
            if (rc == MPROC_ECLOSED)
                rc = MPROC_EPROTO; /* every sender gone inside it */
        }
        return rc;
    }
}

int mproc__ring_take_stream(mproc__ringio *r, unsigned char *dst,
                            uint64_t total, uint64_t *got,
                            const mproc__deadline *d)
{
    *got = r->f.len - 8u;
    memcpy(dst, (unsigned char *)(mproc__rec_at(&r->v, r->f.pos) + 1) + 8,
           (size_t)*got);
    mproc__rec_consume(&r->v, r->f.size, 1);
    taken(r);
    return mproc__ring_resume(r, dst, total, got, d);
}

int mproc__ring_partial_doomed(mproc__ringio *r)
{
    uint64_t rd = atomic_load_explicit(&r->r->w.rd, memory_order_relaxed);
    return mproc__rec_skip_aborted(&r->v, mproc__rec_pos(rd), false);
}

void mproc__ring_note_bell(const mproc__ringio *r, int64_t slept_ns)
{
    /* A bell rung after we went to sleep: what a wake-up costs here. */
    int64_t bell = atomic_load_explicit(&r->r->w.wake_ns, memory_order_relaxed);
    if (bell >= slept_ns)
        mproc__spin_note_wake(bell, mproc__os_monotonic_ns());
}

bool mproc__ring_arm(mproc__ringio *r)
{
    mproc__rec_shared *s = &r->r->w;
    if (mproc__ring_readable(r) > 0 || atomic_load(&r->eof) ||
        atomic_load(&r->r->torn) != 0)
        return true;
    mproc__rec_raise(s, &s->data_wait);
    /* Sequentially consistent after the raise: either this look sees a
     * publish or its sender sees the flag. */
    return mproc__rec_pos(atomic_load(&s->head)) !=
               mproc__rec_pos(
                   atomic_load_explicit(&s->rd, memory_order_relaxed)) ||
           atomic_load(&r->r->torn) != 0;
}

/* The most fd tokens kept: more than the ring can hold fd frames for,
 * since every token is
 * read off the socket as soon as anything drains it while its frame may
 * wait in the ring. Only a peer that sends tokens without frames gets
 * past it: the ring is then broken. */
static int max_toks(const mproc__ringio *r)
{
    return (int)(r->size /
                 (MPROC__REC_HDR + mproc__rec_round8(MPROC__RING_FD_PAYLOAD))) +
           64;
}

/* Queues the token just read: false when it cannot be kept. */
static bool keep_tok(mproc__ringio *r)
{
    if (r->ntok == max_toks(r)) {
        close_tok(&r->tok);
        return false;
    }
    if (r->ntok == r->captok) {
        int cap = r->captok == 0 ? 4 : 2 * r->captok;
        mproc__fdtok *t = realloc(r->toks, (size_t)cap * sizeof *t);
        if (t == NULL) {
            close_tok(&r->tok);
            return false;
        }
        r->toks = t;
        r->captok = cap;
    }
    r->toks[r->ntok++] = r->tok;
    return true;
}

/* Takes the bell bytes and fd tokens of one read. fds came with it (at
 * most one token's: the kernel ends a read after the message that carried
 * fds, and hands them over with that message's first byte; a peer that
 * sends a 0xfd byte of its own only muddles its own fds). 0, or
 * MPROC_EPROTO when a token could not be kept. */
static int parse(mproc__ringio *r, const unsigned char *b, size_t n,
                 const int *fds, int nfds)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (r->tok_have >= 0) {
            r->tok.seq |= (uint64_t)b[i] << (8 * r->tok_have);
            if (++r->tok_have == MPROC__RING_FDTOK_LEN - 1) {
                r->tok_have = -1;
                if (!keep_tok(r))
                    rc = MPROC_EPROTO; /* its frame would find no fds */
            }
        } else if (b[i] == MPROC__RING_FDTOK && nfds > 0) {
            r->tok_have = 0;
            r->tok.seq = 0;
            r->tok.n = nfds;
            memcpy(r->tok.fds, fds, (size_t)nfds * sizeof(int));
            nfds = 0;
        }
    }
    for (int i = 0; i < nfds; i++) /* fds with no token: not ours */
        mproc__os_close(fds[i]);
    return rc;
}

/* Reads doorbell bytes without blocking until none are left or EOF.
 * *more: it stopped after a short read, which saves a system call but may
 * leave an EOF unread behind the bytes. */
static int drain(mproc__ringio *r, bool *more)
{
    mproc__deadline now;
    mproc__deadline_init(&now, 0);
    unsigned char junk[64];
    *more = false;
    for (;;) {
        size_t got = 0;
        int fds[MPROC__IO_MAX_PASS], nfds = 0;
        int rc = mproc__io_read(r->fd, r->io, junk, sizeof junk, &got, fds,
                                &nfds, MPROC__IO_MAX_PASS, &now);
        if (parse(r, junk, got, fds, nfds) < 0 && rc >= 0)
            rc = MPROC_EPROTO;
        if (rc == MPROC_ECLOSED) {
            atomic_store(&r->eof, true);
            return 0;
        }
        if (rc == MPROC_ETIMEDOUT)
            return 0;
        if (rc < 0)
            return rc == MPROC_EPROTO ? rc : 0;
        if (got < sizeof junk && nfds == 0) {
            *more = true;
            return 0;
        }
    }
}

int mproc__ring_drain(mproc__ringio *r)
{
    bool more;
    return drain(r, &more);
}

int mproc__ring_take_fds(mproc__ringio *r, uint64_t seq,
                         int fds[MPROC__IO_MAX_PASS], int *n)
{
    for (bool drained = false;;) {
        while (r->ntok > 0 && r->toks[0].seq < seq) {
            close_tok(&r->toks[0]); /* its sender died before its frame */
            memmove(r->toks, r->toks + 1,
                    (size_t)(--r->ntok) * sizeof *r->toks);
        }
        if (r->ntok > 0 && r->toks[0].seq == seq) {
            *n = r->toks[0].n;
            memcpy(fds, r->toks[0].fds, (size_t)*n * sizeof(int));
            memmove(r->toks, r->toks + 1,
                    (size_t)(--r->ntok) * sizeof *r->toks);
            return 0;
        }
        /* The token went ahead of its frame: it is on the socket, unless a
         * part of it is still to come in the same message. */
        if (r->ntok > 0 || drained)
            return MPROC_EPROTO;
        int rc = mproc__ring_drain(r);
        if (rc < 0)
            return rc;
        drained = true;
    }
}

bool mproc__ring_recover(mproc__ringio *r)
{
    return mproc__rec_settle_producer(&r->v, true);
}

void mproc__ring_reader_broke(mproc__ringio *r)
{
    atomic_store(&r->r->torn, 1);
    mproc__rec_wake_room_all(&r->v);
}

void mproc__ring_reader_closing(mproc__ringio *r)
{
    mproc__rec_shared *s = &r->r->w;
    mproc__rec_raise(s, &s->data_wait);
}
