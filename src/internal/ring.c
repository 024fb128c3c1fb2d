/*
 * ring: message pipe directions in shared memory. See ring.h for the
 * protocol; docs/conn.md for the layout and the measurements behind the
 * spin length and the ring size.
 */
#include "internal/ring.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/frame.h"
#include "internal/spin.h"
#include "internal/waitword.h"
#include "mproc/error.h"
#include "os/os.h"

/* How often a sender that never has to wait asks the kernel whether the
 * reader is still there. */
#define CHECK_NS 10000000

_Static_assert((MPROC__RING_DATA & (MPROC__RING_DATA - 1)) == 0 &&
                   MPROC__RING_DATA >= MPROC__RING_DATA_MIN &&
                   MPROC__RING_DATA <= MPROC__RING_DATA_MAX,
               "ring size: a power of two in range");
_Static_assert(MPROC__RING_DATA_MIN / 4 >= MPROC__FRAME_HDR,
               "a streamed piece holds a header");
/* The layout docs/conn.md gives. */
_Static_assert(offsetof(mproc__ring, head) == 128, "ring layout");
_Static_assert(offsetof(mproc__ring, torn) == 136, "ring layout");
_Static_assert(offsetof(mproc__ring, wlock) == 256, "ring layout");
_Static_assert(offsetof(mproc__ring, inside) == 288, "ring layout");
_Static_assert(offsetof(mproc__ring, fdseq) == 296, "ring layout");
_Static_assert(offsetof(mproc__ring, cut) == 392, "ring layout");
_Static_assert(offsetof(mproc__ring, cut_seen) == 400, "ring layout");
_Static_assert(offsetof(mproc__ring, tail) == 384, "ring layout");
_Static_assert(offsetof(mproc__ring, armed) == 512, "ring layout");
_Static_assert(offsetof(mproc__ring, room) == 516, "ring layout");
_Static_assert(offsetof(mproc__ring, bell_ns) == 528, "ring layout");
_Static_assert(offsetof(mproc__ring, data) == 640, "ring layout");

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
        mproc__lockword_init(&r->wlock, false);
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

void mproc__ringio_init(mproc__ringio *x, mproc__ring *r, uint32_t size, int fd,
                        unsigned io)
{
    x->r = r;
    x->size = size;
    x->mask = size - 1u;
    x->fd = fd;
    x->io = io;
    x->seen = 0;
    x->checked_ns = 0;
    x->gone = false;
    atomic_init(&x->eof, false);
    x->fstart = x->fend = 0;
    x->toks = NULL;
    x->ntok = x->captok = 0;
    x->tok_have = -1;
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

/* ----- room ----- */

void mproc__ring_room_wake(mproc__ring_room *m, uint64_t avail, uint64_t size)
{
    uint64_t need = atomic_load_explicit(&m->need, memory_order_relaxed);
    if (avail >= (need < size ? need : size) &&
        atomic_exchange(&m->wait, 0) != 0) {
        atomic_fetch_add(&m->seq, 1);
        mproc__waitword_wake_raw(&m->seq, INT_MAX);
    }
}

void mproc__ring_room_wake_all(mproc__ring_room *m)
{
    atomic_store(&m->wait, 0);
    atomic_fetch_add(&m->seq, 1);
    mproc__waitword_wake_raw(&m->seq, INT_MAX);
}

/* ----- producer ----- */

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
static int check_reader(void *arg)
{
    mproc__ringio *w = arg;
    if (atomic_load(&w->r->torn) != 0)
        return MPROC_EBROKEN;
    return mproc__ring_reader_gone(w);
}

/* After publishing: ring the doorbell if the reader sleeps, and now and
 * then make sure a reader is left at all. Only MPROC_ECLOSED is reported:
 * the message is out, and a bell that could not be written (no memory) is
 * made up for by the reader's sleep slices. */
static int notify(mproc__ringio *w)
{
    mproc__ring *r = w->r;
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->armed, memory_order_relaxed) != 0 &&
        atomic_exchange(&r->armed, 0) != 0) {
        /* For the receiver's spin budget: when it was woken. */
        atomic_store_explicit(&r->bell_ns, mproc__os_monotonic_ns(),
                              memory_order_relaxed);
        return ring_bell(w) == MPROC_ECLOSED ? MPROC_ECLOSED : 0;
    }
    int64_t now = mproc__os_monotonic_coarse_ns();
    if (now - w->checked_ns >= CHECK_NS) {
        w->checked_ns = now;
        return mproc__ring_reader_gone(w);
    }
    return 0;
}

/* Whether the receiver surely has handled the last cut, old (0: none):
 * it said so (cut_seen), or it has consumed a byte after it, the header
 * of the frame that follows. At the cut itself, without saying so, it
 * may still be inside the cut frame, not having looked at the cut yet,
 * and a later cut would hide this one from it. */
static bool passed_cut(const mproc__ring *r, uint64_t old)
{
    /* Sequentially consistent: in wait_passed these loads follow the
     * store of the room flag, which ack_cut and consume load after a
     * fence; one of the two sides then sees the other. */
    return old == 0 || atomic_load(&r->tail) > old ||
           atomic_load(&r->cut_seen) == old;
}

/* Under the senders' lock: waits until the receiver has handled the last
 * cut, old, with head where it is. It tells so by consuming past it
 * (which wakes room sleepers once that much is free) or by cut_seen
 * (whose store wakes them all). */
static int wait_passed(mproc__ringio *w, uint64_t head, uint64_t old,
                       const mproc__deadline *d)
{
    mproc__ring *r = w->r;
    if (head - old > w->size)
        return MPROC_EPROTO; /* tail <= old: more than a ring unread */
    uint64_t need = w->size - (head - old) + 1; /* free: tail > old */
    for (;;) {
        if (passed_cut(r, old))
            return 0;
        if (atomic_load(&r->torn) != 0)
            return MPROC_EBROKEN;
        if (mproc__deadline_expired(d))
            return MPROC_ETIMEDOUT;
        uint32_t seq = mproc__ring_room_raise(&r->room, need, w->size);
        if (passed_cut(r, old)) /* after the flag: see ack_cut */
            continue;
        int rc = check_reader(w);
        if (rc == 0)
            rc = mproc__ring_room_sleep(&r->room, seq, d, check_reader, w);
        if (rc < 0 && rc != MPROC_ETIMEDOUT)
            return rc;
    }
}

/* What try_cut did. */
enum { CUT_MADE, CUT_NONE, CUT_WAIT };

/* Under the senders' lock (a sender's, or the receiver's as a bystander),
 * for a frame left begun: records the cut at head (CUT_MADE) once the
 * receiver has handled the last cut (else CUT_WAIT, with *head and *old
 * for wait_passed); when nothing was published since the last cut, the
 * frame has no byte in the ring (its sender died before its first
 * publish, or after it stored the cut and before it cleared inside) and
 * only inside is cleared (CUT_NONE). MPROC_EPROTO for words that make no
 * sense. */
static int try_cut(mproc__ring *g, uint64_t *head, uint64_t *old)
{
    *head = atomic_load_explicit(&g->head, memory_order_acquire);
    *old = atomic_load(&g->cut);
    if (*old > *head)
        return MPROC_EPROTO;
    if (*old == *head && *old != 0) {
        atomic_store(&g->inside, 0);
        return CUT_NONE;
    }
    if (!passed_cut(g, *old))
        return CUT_WAIT;
    /* Before any later publish, which a receiver reading the cut frame
     * could otherwise take for the rest of it. */
    atomic_store_explicit(&g->cut, *head, memory_order_release);
    atomic_store(&g->inside, 0);
    return CUT_MADE;
}

/* Under the senders' lock: cuts the frame its sender began and will never
 * end, waiting for the receiver to handle the last cut first (one is
 * kept); the receiver drops the frame at the cut. 0 (inside cleared),
 * or, with inside left set for the next holder, what waiting for the
 * receiver gave (MPROC_ETIMEDOUT, MPROC_ECLOSED, MPROC_EPROTO). */
static int settle_cut(mproc__ringio *w, const mproc__deadline *d)
{
    uint64_t head, old;
    int rc = try_cut(w->r, &head, &old);
    if (rc == CUT_WAIT) {
        rc = wait_passed(w, head, old, d);
        if (rc == 0)
            rc = try_cut(w->r, &head, &old);
    }
    if (rc == CUT_MADE) {
        /* The receiver may sleep waiting for the rest: wake it. */
        atomic_store(&w->r->armed, 1);
        (void)notify(w);
    }
    return rc < 0 ? rc : 0;
}

int mproc__ring_lock(mproc__ringio *w, const mproc__deadline *d)
{
    mproc__ring *r = w->r;
    int rc = mproc__lockword_acquire_fast(&r->wlock, d);
    if (rc == MPROC_EOWNERDEAD) {
        /* What the dead holder had not published is simply overwritten
         * (a frame it was inside is cut below). */
        mproc__lockword_consistent(&r->wlock);
        /* It may have died between publishing and ringing: ring. */
        atomic_store(&r->armed, 1);
        (void)notify(w);
        rc = 0;
    }
    if (rc < 0)
        return rc == MPROC_ENOTRECOVERABLE ? MPROC_EBROKEN : rc;
    if (atomic_load_explicit(&r->torn, memory_order_relaxed) != 0) {
        mproc__lockword_release_fast(&r->wlock);
        /* Torn by a receiver that found garbage: closed, not broken,
         * once it has shut its socket down (a duplex end) or left. */
        return mproc__ring_reader_gone(w) < 0 ? MPROC_ECLOSED : MPROC_EBROKEN;
    }
    if (atomic_load_explicit(&r->inside, memory_order_relaxed) != 0) {
        /* The last holder began a frame and will never end it. */
        rc = settle_cut(w, d);
        if (rc < 0) {
            mproc__lockword_release_fast(&r->wlock);
            return rc;
        }
    }
    return 0;
}

void mproc__ring_unlock(mproc__ringio *w)
{
    mproc__lockword_release_fast(&w->r->wlock);
}

/* Free bytes after head by the tail this sender saw last. Other senders
 * may have moved head far past it since: then nothing is known to be
 * free until the tail is loaded again. */
static inline uint64_t space(const mproc__ringio *w, uint64_t head)
{
    uint64_t used = head - w->seen;
    return used >= w->size ? 0 : w->size - used;
}

/* What a spinning side waits for: need bytes of room after pos (a
 * sender: pos is head) or of data after it (the receiver: pos is tail),
 * or the ring torn. */
typedef struct spin_arg {
    mproc__ringio *x;
    uint64_t pos, need;
} spin_arg;

static bool room_came(void *arg)
{
    spin_arg *a = arg;
    a->x->seen = atomic_load_explicit(&a->x->r->tail, memory_order_acquire);
    return space(a->x, a->pos) >= a->need ||
           atomic_load_explicit(&a->x->r->torn, memory_order_relaxed) != 0;
}

static bool spin_for_space(mproc__ringio *w, uint64_t head, uint64_t need,
                           int64_t spin_ns)
{
    spin_arg a = {w, head, need};
    return mproc__spin_until(room_came, &a, spin_ns);
}

/* Waits until need bytes after head are free. */
static int wait_space(mproc__ringio *w, uint64_t head, uint64_t need,
                      const mproc__deadline *d)
{
    mproc__ring *r = w->r;
    bool spun = false;
    for (;;) {
        if (space(w, head) >= need)
            return 0;
        w->seen = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head - w->seen > w->size)
            return MPROC_EPROTO; /* the shared words make no sense */
        if (space(w, head) >= need)
            return 0;
        if (atomic_load_explicit(&r->torn, memory_order_relaxed) != 0)
            return MPROC_EBROKEN; /* the reader gave up on this ring */
        if (mproc__deadline_expired(d))
            return MPROC_ETIMEDOUT;
        int64_t spin_ns = mproc__spin_budget_ns();
        if (!spun && spin_ns > 0) {
            spun = true;
            if (spin_for_space(w, head, need, spin_ns))
                continue; /* room, or torn: the top of the loop says */
        }
        uint32_t seq = mproc__ring_room_raise(&r->room, need, w->size);
        w->seen = atomic_load(&r->tail);
        if (space(w, head) >= need || atomic_load(&r->torn) != 0)
            continue;
        int rc = check_reader(w);
        if (rc == 0)
            rc = mproc__ring_room_sleep(&r->room, seq, d, check_reader, w);
        if (rc < 0)
            return rc;
    }
}

uint64_t mproc__ring_next_fdseq(mproc__ringio *w)
{
    uint64_t seq = atomic_load_explicit(&w->r->fdseq, memory_order_relaxed) + 1;
    atomic_store_explicit(&w->r->fdseq, seq, memory_order_relaxed);
    return seq;
}

int mproc__ring_wait_space(mproc__ringio *w, size_t total,
                           const mproc__deadline *d)
{
    uint64_t head = atomic_load_explicit(&w->r->head, memory_order_relaxed);
    return wait_space(w, head, total, d);
}

/* Copies n bytes of iov, starting skip bytes in, to the ring at pos. */
static void copy_in(const mproc__ringio *w, uint64_t pos,
                    const struct iovec *iov, int cnt, size_t skip, size_t n)
{
    mproc__ring *r = w->r;
    for (int i = 0; i < cnt && n > 0; i++) {
        size_t len = iov[i].iov_len;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        const unsigned char *src = (const unsigned char *)iov[i].iov_base;
        size_t k = len - skip < n ? len - skip : n;
        src += skip;
        skip = 0;
        n -= k;
        while (k > 0) {
            size_t at = (size_t)(pos & w->mask);
            size_t part = w->size - at < k ? w->size - at : k;
            memcpy(r->data + at, src, part);
            src += part;
            pos += part;
            k -= part;
        }
    }
}

int mproc__ring_put(mproc__ringio *w, const struct iovec *iov, int cnt,
                    size_t total, const mproc__deadline *d, size_t *done)
{
    mproc__ring *r = w->r;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    *done = 0;
    if (total <= w->size) {
        int rc = wait_space(w, head, total, d);
        if (rc < 0)
            return rc;
        copy_in(w, head, iov, cnt, 0, total);
        atomic_store_explicit(&r->head, head + total, memory_order_release);
        *done = total;
        return notify(w);
    }
    size_t sent = 0;
    int rc = 0;
    size_t piece = w->size / 4;
    while (sent < total) {
        size_t left = total - sent;
        rc = wait_space(w, head, left < piece ? left : piece, d);
        if (rc < 0)
            break;
        /* A piece at a time, published as soon as it is in: the receiver
         * copies one out while the next goes in (a whole ring's worth at
         * once left each side waiting for the other's copy). */
        size_t n = (size_t)space(w, head);
        if (n > piece)
            n = piece;
        if (n > left)
            n = left;
        copy_in(w, head, iov, cnt, sent, n);
        /* Only a frame begun in the ring is cut by its sender's death:
         * one killed while it waits for room to begin leaves nothing. */
        if (sent == 0)
            atomic_store(&r->inside, 1);
        head += n;
        atomic_store_explicit(&r->head, head, memory_order_release);
        sent += n;
        rc = notify(w);
        if (rc < 0)
            break;
    }
    *done = sent;
    if (sent > 0 && sent < total) {
        /* Nobody will finish this frame: cut it now if the receiver has
         * passed the last cut, else the next sender will (inside stays). */
        mproc__deadline now;
        mproc__deadline_init(&now, 0);
        (void)settle_cut(w, &now);
    } else {
        atomic_store(&r->inside, 0);
    }
    return rc;
}

/* ----- consumer ----- */

uint64_t mproc__ring_readable(const mproc__ringio *r)
{
    return atomic_load_explicit(&r->r->head, memory_order_acquire) -
           atomic_load_explicit(&r->r->tail, memory_order_relaxed);
}

/* The most fd tokens kept: more than the ring can hold fd frames for,
 * since every token is
 * read off the socket as soon as anything drains it while its frame may
 * wait in the ring. Only a peer that sends tokens without frames gets
 * past it: the ring is then broken. */
static int max_toks(const mproc__ringio *r)
{
    return (int)(r->size / (MPROC__FRAME_HDR + MPROC__RING_FD_PAYLOAD)) + 64;
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

/* The receiver as a bystander: takes the senders' lock when it is free or
 * (with dead, which costs a look at /proc) its holder's thread is gone
 * (*took, when not NULL: taken from the dead), cuts a frame left begun
 * and lets the lock go. True when it cut. A frame is left begun with the
 * lock free by a sender whose send timed out while an older cut was not
 * yet handled by the receiver. */
static bool bystander_cut(mproc__ringio *r, bool dead, bool *took)
{
    mproc__ring *g = r->r;
    if (took != NULL)
        *took = false;
    if (!mproc__lockword_try_fast(&g->wlock)) {
        if (!dead ||
            mproc__lockword_take_if_gone(&g->wlock) != MPROC_EOWNERDEAD)
            return false;
        mproc__lockword_consistent(&g->wlock);
        if (took != NULL)
            *took = true;
    }
    /* A frame its last holder began and will never end stops here (if
     * the receiver has not handled the last cut, the next sender cuts
     * it). */
    uint64_t head, old;
    bool cut =
        atomic_load(&g->inside) != 0 && try_cut(g, &head, &old) == CUT_MADE;
    mproc__lockword_release_fast(&g->wlock);
    return cut;
}

bool mproc__ring_recover(mproc__ringio *r)
{
    bool took;
    (void)bystander_cut(r, true, &took);
    return took;
}

static atomic_uint_least64_t rescued;

uint64_t mproc__ring_rescued(void)
{
    return atomic_load(&rescued);
}

/* After a sleep slice that no bell ended: a sender published past seen
 * (head when this receiver armed), is done (the senders' lock is free, so
 * it has been through notify) and still left armed set, so it did not see
 * the arm. That is a lost wake-up, which the fences rule out; the slice
 * rescued it. Counted for the tests. */
static void count_rescue(mproc__ring *g, uint64_t seen)
{
    if (atomic_load(&g->head) != seen && atomic_load(&g->armed) != 0 &&
        atomic_load(&g->wlock.word) == 0)
        atomic_fetch_add(&rescued, 1);
}

/* How long a receiver spins; a test hook changes it. */
static atomic_int_least64_t recv_spin_ns = -1; /* -1: the spin budget */

void mproc__ring_set_recv_spin(int64_t ns)
{
    atomic_store(&recv_spin_ns, ns >= 0 ? ns : -1);
}

static bool data_came(void *arg)
{
    spin_arg *a = arg;
    a->x->seen = atomic_load_explicit(&a->x->r->head, memory_order_acquire);
    return a->x->seen - a->pos >= a->need ||
           atomic_load_explicit(&a->x->r->torn, memory_order_relaxed) != 0;
}

static bool spin_for_data(mproc__ringio *r, uint64_t tail, uint64_t need,
                          int64_t spin_ns)
{
    spin_arg a = {r, tail, need};
    return mproc__spin_until(data_came, &a, spin_ns);
}

/* Sets armed, then looks at head again (sequentially consistent, so that
 * either this look sees a publish or its sender sees armed): true when
 * need bytes are there or the ring is torn. */
static bool arm_and_look(mproc__ringio *r, uint64_t tail, uint64_t need)
{
    mproc__ring *g = r->r;
    atomic_store(&g->armed, 1);
    r->seen = atomic_load(&g->head);
    return r->seen - tail >= need || atomic_load(&g->torn) != 0;
}

void mproc__ring_note_bell(const mproc__ringio *r, int64_t slept_ns)
{
    /* A bell rung after we went to sleep: what a wake-up costs here. */
    int64_t bell = atomic_load_explicit(&r->r->bell_ns, memory_order_relaxed);
    if (bell >= slept_ns)
        mproc__spin_note_wake(bell, mproc__os_monotonic_ns());
}

int mproc__ring_wait(mproc__ringio *r, uint64_t need, const mproc__deadline *d)
{
    mproc__ring *g = r->r;
    uint64_t tail = atomic_load_explicit(&g->tail, memory_order_relaxed);
    /* By what was seen last, but not inside a streamed frame: a cut may
     * have been made since the look that saw it, at that look's head or
     * before (mproc__ring_frame_begin may come after that look). */
    if (r->fend == 0 && r->seen - tail >= need && r->seen - tail <= r->size)
        return 0;
    bool spun = false;
    int64_t slice_ms = MPROC__RING_SLICE_MIN_MS;
    for (;;) {
        r->seen = atomic_load_explicit(&g->head, memory_order_acquire);
        uint64_t avail = r->seen - tail;
        if (avail > r->size)
            return MPROC_EPROTO;
        if (r->fend != 0) {
            /* After the load of head: a cut is made before anything is
             * published after it, so bytes seen past a cut inside this
             * frame come with the cut in view. */
            uint64_t cut = atomic_load_explicit(&g->cut, memory_order_acquire);
            if (cut > r->fstart && cut < r->fend)
                return MPROC__RING_CUT;
        }
        if (avail >= need)
            return 0;
        if (atomic_load(&g->torn) != 0)
            return MPROC_EPROTO;
        if (atomic_load(&r->eof)) {
            /* Every sender is gone: a frame one of them began is cut, so
             * that it is dropped rather than called a protocol error. */
            if (r->fend != 0 && bystander_cut(r, true, NULL))
                continue;
            return MPROC_ECLOSED;
        }
        bool more;
        int rc;
        if (mproc__deadline_expired(d)) {
            /* Take doorbell bytes left from earlier rounds first (so the
             * fd is not readable with nothing behind it, and an EOF behind
             * them is seen), then arm: a bell rung after the look below
             * stays on the fd for whoever waits on it next. */
            rc = drain(r, &more);
            if (rc == 0 && more && !atomic_load(&r->eof))
                rc = drain(r, &more);
            if (rc < 0)
                return rc;
            if (atomic_load(&r->eof) || arm_and_look(r, tail, need))
                continue;
            return MPROC_ETIMEDOUT;
        }
        int64_t spin_ns =
            atomic_load_explicit(&recv_spin_ns, memory_order_relaxed);
        if (spin_ns < 0)
            spin_ns = mproc__spin_budget_ns();
        if (!spun && spin_ns > 0) {
            spun = true;
            if (spin_for_data(r, tail, need, spin_ns))
                continue;
        }
        if (arm_and_look(r, tail, need))
            continue;
        uint64_t armed_at = r->seen;
        /* Sleep in slices: a sender killed between publishing and ringing
         * (or inside a frame) holds the senders' lock, and only a look
         * at that lock finds it out when no other sender comes. */
        mproc__deadline slice;
        mproc__deadline_init(&slice, slice_ms);
        slice = mproc__deadline_min(slice, *d);
        int64_t slept_at = mproc__os_monotonic_ns();
        rc = mproc__io_wait(r->fd, POLLIN, &slice);
        if (rc == 0)
            mproc__ring_note_bell(r, slept_at);
        if (rc == MPROC_ETIMEDOUT) {
            if (!mproc__ring_recover(r))
                count_rescue(g, armed_at);
            if (slice_ms < MPROC__RING_SLICE_MAX_MS)
                slice_ms *= 2;
            continue;
        }
        if (rc == 0)
            rc = drain(r, &more);
        if (rc < 0)
            return rc;
    }
}

uint64_t mproc__ring_ready(const mproc__ringio *r)
{
    return r->seen - atomic_load_explicit(&r->r->tail, memory_order_relaxed);
}

void mproc__ring_frame_begin(mproc__ringio *r, uint64_t len)
{
    r->fstart = atomic_load_explicit(&r->r->tail, memory_order_relaxed);
    r->fend = r->fstart + len;
}

void mproc__ring_frame_end(mproc__ringio *r)
{
    r->fstart = r->fend = 0;
}

/* The receiver has handled the cut at cut: says so, and wakes a sender
 * that waits for it (wait_passed). */
static void ack_cut(mproc__ring *g, uint64_t cut)
{
    atomic_store_explicit(&g->cut_seen, cut, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (mproc__ring_room_waited(&g->room))
        mproc__ring_room_wake_all(&g->room);
}

void mproc__ring_between_frames(mproc__ringio *r)
{
    mproc__ring *g = r->r;
    uint64_t cut = atomic_load_explicit(&g->cut, memory_order_acquire);
    if (cut != atomic_load_explicit(&g->cut_seen, memory_order_relaxed) &&
        cut <= atomic_load_explicit(&g->tail, memory_order_relaxed))
        ack_cut(g, cut);
}

bool mproc__ring_frame_cut(const mproc__ringio *r)
{
    uint64_t cut = atomic_load_explicit(&r->r->cut, memory_order_acquire);
    return r->fend != 0 && cut > r->fstart && cut < r->fend;
}

int mproc__ring_drop_if_cut(mproc__ringio *r, uint64_t len, bool dead)
{
    mproc__ring *g = r->r;
    mproc__ring_frame_begin(r, len);
    /* Not all of it published and left begun: the last frame, whose
     * sender may be gone or have given up (a live one streaming it holds
     * the lock, and the bystander then does nothing). */
    if (!mproc__ring_frame_cut(r) &&
        !(r->fend > atomic_load_explicit(&g->head, memory_order_acquire) &&
          atomic_load(&g->inside) != 0 && bystander_cut(r, dead, NULL) &&
          mproc__ring_frame_cut(r))) {
        mproc__ring_frame_end(r);
        return 0;
    }
    int rc = mproc__ring_skip_cut(r);
    return rc < 0 ? rc : 1;
}

int mproc__ring_skip_cut(mproc__ringio *r)
{
    mproc__ring *g = r->r;
    uint64_t cut = atomic_load_explicit(&g->cut, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&g->tail, memory_order_relaxed);
    r->seen = atomic_load_explicit(&g->head, memory_order_acquire);
    mproc__ring_frame_end(r);
    if (cut < tail || cut > r->seen)
        return MPROC_EPROTO;
    mproc__ring_consume(r, cut - tail);
    ack_cut(g, cut);
    return 0;
}

void mproc__ring_copy(mproc__ringio *r, uint64_t off, void *dst, size_t n)
{
    mproc__ring *g = r->r;
    uint64_t pos = atomic_load_explicit(&g->tail, memory_order_relaxed) + off;
    unsigned char *out = dst;
    while (n > 0) {
        size_t at = (size_t)(pos & r->mask);
        size_t part = r->size - at < n ? r->size - at : n;
        memcpy(out, g->data + at, part);
        out += part;
        pos += part;
        n -= part;
    }
}

void mproc__ring_consume(mproc__ringio *r, uint64_t n)
{
    mproc__ring *g = r->r;
    uint64_t tail = atomic_load_explicit(&g->tail, memory_order_relaxed);
    atomic_store_explicit(&g->tail, tail + n, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (!mproc__ring_room_waited(&g->room))
        return;
    /* The sleeper holds the senders' lock, so head stays where it is until
     * it wakes. */
    uint64_t used =
        atomic_load_explicit(&g->head, memory_order_relaxed) - (tail + n);
    if (used <= r->size)
        mproc__ring_room_wake(&g->room, r->size - used, r->size);
}

bool mproc__ring_arm(mproc__ringio *r)
{
    mproc__ring *g = r->r;
    if (mproc__ring_readable(r) > 0 || atomic_load(&r->eof) ||
        atomic_load(&g->torn) != 0)
        return true;
    /* Not arm_and_look: that one moves the receive lock's cached head. */
    atomic_store(&g->armed, 1);
    /* Sequentially consistent after the store, as in mproc__ring_wait:
     * an acquire load could be ordered before it and miss a publish. */
    return atomic_load(&g->head) !=
               atomic_load_explicit(&g->tail, memory_order_relaxed) ||
           atomic_load(&g->torn) != 0;
}

void mproc__ring_reader_broke(mproc__ringio *r)
{
    mproc__ring *g = r->r;
    atomic_store(&g->torn, 1);
    mproc__ring_room_wake_all(&g->room);
}

void mproc__ring_reader_closing(mproc__ringio *r)
{
    atomic_store(&r->r->armed, 1);
}
