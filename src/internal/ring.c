/*
 * ring: message pipe directions in shared memory. See ring.h for the
 * protocol; docs/conn.md for the layout and the measurements behind the
 * spin length and the ring size.
 */
#include "internal/ring.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal/frame.h"
#include "internal/waitword.h"
#include "mproc/error.h"
#include "os/os.h"

#define MASK (MPROC__RING_DATA - 1u)
#define CHUNK MPROC__RING_CHUNK
/* How long a side spins for the other before it sleeps: below the cost of
 * a sleep and a wake-up between two CPUs (about 20-25 us here), so spinning
 * never costs more than the sleep it may save. */
#define SPIN_NS 10000
/* How often a sender that never has to wait asks the kernel whether the
 * reader is still there. */
#define CHECK_NS 10000000

_Static_assert((MPROC__RING_DATA & MASK) == 0, "ring size: a power of two");
_Static_assert(CHUNK >= MPROC__FRAME_HDR, "a chunk holds a header");

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* Spinning helps only when the other side runs on another CPU. */
static bool may_spin(void)
{
    static atomic_int ncpu;
    int n = atomic_load_explicit(&ncpu, memory_order_relaxed);
    if (n == 0) {
        long k = sysconf(_SC_NPROCESSORS_ONLN);
        n = k > 1 ? 2 : 1;
        atomic_store_explicit(&ncpu, n, memory_order_relaxed);
    }
    return n > 1;
}

static size_t map_size(int n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t s = (size_t)n * sizeof(mproc__ring);
    return (s + page - 1) / page * page;
}

int mproc__ring_create(int n, int *memfd, mproc__ring **rings)
{
    size_t size = map_size(n);
    int fd = mproc__os_memfd("mproc-pipe", size);
    if (fd < 0)
        return fd;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        int rc = -errno;
        mproc__os_close(fd);
        return rc;
    }
    mproc__ring *r = p;
    for (int i = 0; i < n; i++) {
        r[i].magic = MPROC__RING_MAGIC;
        r[i].version = MPROC__RING_VERSION;
        r[i].data_size = MPROC__RING_DATA;
        mproc__lockword_init(&r[i].wlock, false);
    }
    *memfd = fd;
    *rings = r;
    return 0;
}

int mproc__ring_attach(int memfd, int n, mproc__ring **rings)
{
    size_t size = map_size(n);
    struct stat st;
    if (fstat(memfd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || (size_t)st.st_size != size)
        return MPROC_EPROTO;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (p == MAP_FAILED)
        return -errno;
    mproc__ring *r = p;
    for (int i = 0; i < n; i++)
        if (r[i].magic != MPROC__RING_MAGIC ||
            r[i].version != MPROC__RING_VERSION ||
            r[i].data_size != MPROC__RING_DATA) {
            munmap(p, size);
            return MPROC_EPROTO;
        }
    *rings = r;
    return 0;
}

void mproc__ring_unmap(mproc__ring *rings, int n)
{
    if (rings != NULL)
        munmap(rings, map_size(n));
}

void mproc__ringio_init(mproc__ringio *x, mproc__ring *r, int fd, unsigned io)
{
    x->r = r;
    x->fd = fd;
    x->io = io;
    x->seen = 0;
    x->checked_ns = 0;
    x->gone = false;
    atomic_init(&x->eof, false);
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

static int check_reader(void *arg)
{
    return mproc__ring_reader_gone(arg);
}

/* After publishing: ring the doorbell if the reader sleeps, and now and
 * then make sure a reader is left at all. */
static int notify(mproc__ringio *w)
{
    mproc__ring *r = w->r;
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&r->armed, memory_order_relaxed) != 0 &&
        atomic_exchange(&r->armed, 0) != 0)
        return ring_bell(w);
    int64_t now = mproc__os_monotonic_coarse_ns();
    if (now - w->checked_ns >= CHECK_NS) {
        w->checked_ns = now;
        return mproc__ring_reader_gone(w);
    }
    return 0;
}

int mproc__ring_lock(mproc__ringio *w, const mproc__deadline *d)
{
    mproc__ring *r = w->r;
    int rc = mproc__lockword_try_fast(&r->wlock)
                 ? 0
                 : mproc__lockword_acquire(&r->wlock, d);
    if (rc == MPROC_EOWNERDEAD) {
        /* The last sender died holding the lock. What it had not
         * published is simply overwritten; a frame it had begun to
         * publish can never be finished. */
        if (atomic_load(&r->inside) != 0) {
            atomic_store(&r->torn, 1);
            atomic_store(&r->armed, 1);
            (void)notify(w);
        }
        mproc__lockword_consistent(&r->wlock);
        rc = 0;
    }
    if (rc < 0)
        return rc == MPROC_ENOTRECOVERABLE ? MPROC_EBROKEN : rc;
    if (atomic_load_explicit(&r->torn, memory_order_relaxed) != 0) {
        mproc__lockword_release_fast(&r->wlock);
        /* A stream torn because its reader left (a sender streaming when
         * it learned) is closed, not broken, for every sender. */
        return mproc__ring_reader_gone(w) < 0 ? MPROC_ECLOSED : MPROC_EBROKEN;
    }
    return 0;
}

void mproc__ring_unlock(mproc__ringio *w)
{
    mproc__lockword_release_fast(&w->r->wlock);
}

/* Free bytes after head as far as this process knows. seen is its own last
 * look at the tail: senders in other processes may since have moved head
 * more than a ring past it, which means "look again", not "all free". */
static inline uint64_t space(const mproc__ringio *w, uint64_t head)
{
    uint64_t used = head - w->seen;
    return used < MPROC__RING_DATA ? MPROC__RING_DATA - used : 0;
}

static bool spin_for_space(mproc__ringio *w, uint64_t head, uint64_t need)
{
    int64_t until = mproc__os_monotonic_ns() + SPIN_NS;
    for (unsigned i = 1;; i++) {
        w->seen = atomic_load_explicit(&w->r->tail, memory_order_acquire);
        if (space(w, head) >= need)
            return true;
        cpu_relax();
        if ((i & 63u) == 0 && mproc__os_monotonic_ns() > until)
            return false;
    }
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
        if (head - w->seen > MPROC__RING_DATA)
            return MPROC_EPROTO; /* the shared words make no sense */
        if (space(w, head) >= need)
            return 0;
        if (mproc__deadline_expired(d))
            return MPROC_ETIMEDOUT;
        if (!spun && may_spin()) {
            spun = true;
            if (spin_for_space(w, head, need))
                return 0;
        }
        uint32_t seq = atomic_load(&r->space_seq);
        atomic_store(&r->space_wait, 1);
        w->seen = atomic_load(&r->tail);
        if (space(w, head) >= need)
            return 0;
        int rc = mproc__ring_reader_gone(w);
        if (rc == 0)
            rc = mproc__waitword_sleep(&r->space_seq, seq, d, check_reader, w);
        if (rc < 0)
            return rc;
    }
}

int mproc__ring_wait_space(mproc__ringio *w, size_t total,
                           const mproc__deadline *d)
{
    uint64_t head = atomic_load_explicit(&w->r->head, memory_order_relaxed);
    return wait_space(w, head, total, d);
}

/* Copies n bytes of iov, starting skip bytes in, to the ring at pos. */
static void copy_in(mproc__ring *r, uint64_t pos, const struct iovec *iov,
                    int cnt, size_t skip, size_t n)
{
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
            size_t at = (size_t)(pos & MASK);
            size_t part = MPROC__RING_DATA - at < k ? MPROC__RING_DATA - at : k;
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
    if (total <= MPROC__RING_DATA) {
        int rc = wait_space(w, head, total, d);
        if (rc < 0)
            return rc;
        copy_in(r, head, iov, cnt, 0, total);
        atomic_store_explicit(&r->head, head + total, memory_order_release);
        *done = total;
        return notify(w);
    }
    atomic_store(&r->inside, 1);
    size_t sent = 0;
    int rc = 0;
    while (sent < total) {
        size_t left = total - sent;
        rc = wait_space(w, head, left < CHUNK ? left : CHUNK, d);
        if (rc < 0)
            break;
        size_t n = (size_t)space(w, head);
        if (n > left)
            n = left;
        copy_in(r, head, iov, cnt, sent, n);
        head += n;
        atomic_store_explicit(&r->head, head, memory_order_release);
        sent += n;
        rc = notify(w);
        if (rc < 0)
            break;
    }
    *done = sent;
    if (sent == total) {
        atomic_store(&r->inside, 0);
    } else if (sent > 0) {
        /* Nobody will finish this frame: tell the reader now. */
        atomic_store(&r->torn, 1);
        atomic_store(&r->armed, 1);
        (void)notify(w);
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

/* mproc__ring_drain; *more: it stopped after a short read, which saves
 * a system call but may leave an EOF unread behind the bytes. */
static int drain(mproc__ringio *r, int *fds, int *nfds, int maxfds, bool *more)
{
    mproc__deadline now;
    mproc__deadline_init(&now, 0);
    unsigned char junk[64];
    *more = false;
    for (;;) {
        size_t got = 0;
        int rc = mproc__io_read(r->fd, r->io, junk, sizeof junk, &got, fds,
                                nfds, maxfds, &now);
        if (rc == MPROC_ECLOSED) {
            atomic_store(&r->eof, true);
            return 0;
        }
        if (rc == MPROC_ETIMEDOUT)
            return 0;
        if (rc == 0 && got < sizeof junk) {
            *more = true;
            return 0;
        }
        if (rc < 0)
            return rc == MPROC_EPROTO ? rc : 0;
    }
}

int mproc__ring_drain(mproc__ringio *r, int *fds, int *nfds, int maxfds)
{
    bool more;
    return drain(r, fds, nfds, maxfds, &more);
}

static bool spin_for_data(mproc__ringio *r, uint64_t tail, uint64_t need)
{
    mproc__ring *g = r->r;
    int64_t until = mproc__os_monotonic_ns() + SPIN_NS;
    for (unsigned i = 1;; i++) {
        r->seen = atomic_load_explicit(&g->head, memory_order_acquire);
        if (r->seen - tail >= need ||
            atomic_load_explicit(&g->torn, memory_order_relaxed) != 0)
            return true;
        cpu_relax();
        if ((i & 63u) == 0 && mproc__os_monotonic_ns() > until)
            return false;
    }
}

int mproc__ring_wait(mproc__ringio *r, uint64_t need, const mproc__deadline *d,
                     int *fds, int *nfds, int maxfds)
{
    mproc__ring *g = r->r;
    uint64_t tail = atomic_load_explicit(&g->tail, memory_order_relaxed);
    if (r->seen - tail >= need && r->seen - tail <= MPROC__RING_DATA)
        return 0;
    bool spun = false;
    for (;;) {
        r->seen = atomic_load_explicit(&g->head, memory_order_acquire);
        uint64_t avail = r->seen - tail;
        if (avail > MPROC__RING_DATA)
            return MPROC_EPROTO;
        if (avail >= need)
            return 0;
        if (atomic_load(&g->torn) != 0)
            return MPROC_EPROTO;
        if (atomic_load(&r->eof))
            return MPROC_ECLOSED;
        bool expired = mproc__deadline_expired(d);
        if (!spun && !expired && may_spin()) {
            spun = true;
            if (spin_for_data(r, tail, need))
                continue;
        }
        atomic_store(&g->armed, 1);
        r->seen = atomic_load(&g->head);
        if (r->seen - tail >= need || atomic_load(&g->torn) != 0)
            continue;
        int rc;
        if (expired) {
            /* Take a doorbell byte left from an earlier round, so the fd
             * is not readable with nothing behind it; and look behind
             * such bytes once more, so that every sender's close is
             * MPROC_ECLOSED now rather than a timeout first. */
            bool more;
            rc = drain(r, fds, nfds, maxfds, &more);
            if (rc == 0 && more && !atomic_load(&r->eof))
                rc = drain(r, fds, nfds, maxfds, &more);
            if (rc == 0 && atomic_load(&r->eof))
                continue;
            return rc < 0 ? rc : MPROC_ETIMEDOUT;
        }
        rc = mproc__io_wait(r->fd, POLLIN, d);
        if (rc == 0)
            rc = mproc__ring_drain(r, fds, nfds, maxfds);
        if (rc < 0)
            return rc;
    }
}

void mproc__ring_copy(mproc__ringio *r, uint64_t off, void *dst, size_t n)
{
    mproc__ring *g = r->r;
    uint64_t pos = atomic_load_explicit(&g->tail, memory_order_relaxed) + off;
    unsigned char *out = dst;
    while (n > 0) {
        size_t at = (size_t)(pos & MASK);
        size_t part = MPROC__RING_DATA - at < n ? MPROC__RING_DATA - at : n;
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
    if (atomic_load_explicit(&g->space_wait, memory_order_relaxed) != 0 &&
        atomic_exchange(&g->space_wait, 0) != 0) {
        atomic_fetch_add(&g->space_seq, 1);
        mproc__waitword_wake_raw(&g->space_seq, INT_MAX);
    }
}

bool mproc__ring_arm(mproc__ringio *r)
{
    mproc__ring *g = r->r;
    if (mproc__ring_readable(r) > 0 || atomic_load(&r->eof) ||
        atomic_load(&g->torn) != 0)
        return true;
    atomic_store(&g->armed, 1);
    return mproc__ring_readable(r) > 0 || atomic_load(&g->torn) != 0;
}

void mproc__ring_reader_closing(mproc__ringio *r)
{
    atomic_store(&r->r->armed, 1);
}
