/*
 * records: the ring of records under a producers' and a consumers' robust
 * lock (records.h). This file is the ring alone: placing, publishing,
 * streaming and aborting records, waiting for room and for data, waking,
 * and freeing what was taken; what its user keeps beside it (a queue's
 * slots and task counts) it reaches through hooks.
 */
#include "internal/records.h"

#include <limits.h>
#include <string.h>

#include "internal/spin.h"
#include "internal/waitword.h"
#include "os/os.h"

void mproc__rec_init(mproc__rec_shared *s)
{
    mproc__lockword_init(&s->plock, false);
    mproc__lockword_init(&s->clock, false);
    mproc__lockword_init(&s->tlock, false);
}

void mproc__rec_view(mproc__rec_ring *r, mproc__rec_shared *s,
                     unsigned char *data, uint32_t cap, uint32_t maxsize,
                     const mproc__rec_hooks *hooks, void *arg)
{
    memset(r, 0, sizeof *r);
    r->s = s;
    r->data = data;
    r->cap = cap;
    r->mask = cap - 1u;
    r->maxsize = maxsize;
    r->hooks = hooks;
    r->arg = arg;
}

/* The payload of one streamed piece: a quarter of the ring, so that a
 * producer and a consumer work on different pieces at once. */
static uint32_t piece_max(const mproc__rec_ring *r)
{
    return r->cap / 4u - 2u * MPROC__REC_HDR;
}

uint32_t mproc__rec_size(const mproc__rec_ring *r, uint32_t pos, uint32_t avail,
                         uint32_t *kind, uint32_t *len)
{
    const mproc__rec *h = mproc__rec_at(r, pos);
    uint32_t l = h->len, k = h->kind;
    uint32_t idx = pos & r->mask;
    if (k < MPROC__REC_MSG || k > MPROC__REC_FDS ||
        (uint64_t)l + MPROC__REC_HDR > r->cap - idx)
        return 0;
    uint32_t size = MPROC__REC_HDR + mproc__rec_round8(l);
    if (size > r->cap - idx || size > avail ||
        (k == MPROC__REC_FIRST && l < 8u))
        return 0;
    *kind = k;
    *len = l;
    return size;
}

void mproc__rec_put_hdr(mproc__rec_ring *r, uint32_t pos, uint32_t kind,
                        uint32_t len)
{
    mproc__rec *h = mproc__rec_at(r, pos);
    h->len = len;
    h->kind = (uint8_t)kind;
    atomic_store_explicit(&h->state, 0, memory_order_relaxed);
    h->owner = 0;
}

/* -------------------------------------------------------------- room */

/* Producer: raises the flag for need bytes and returns the seq to sleep
 * on once a last look has found no room. */
static uint32_t room_raise(mproc__rec_room *m, uint64_t need, uint64_t size)
{
    uint32_t seq = atomic_load(&m->seq);
    uint64_t want = need > size / 4 ? need : size / 4;
    atomic_store(&m->need, (uint32_t)want);
    atomic_store(&m->wait, 1);
    return seq;
}

/* Consumer, after a sequentially consistent fence: whether a producer may
 * sleep for room (one relaxed load: the common answer is no). */
static bool room_waited(const mproc__rec_room *m)
{
    return atomic_load_explicit(&m->wait, memory_order_relaxed) != 0;
}

/* Consumer: avail bytes are free now in a ring of size bytes; wakes the
 * sleeping producer once that is what it waits for (a need above the ring,
 * written by a peer that scribbles, counts as the whole ring). */
static void room_wake(mproc__rec_room *m, uint64_t avail, uint64_t size)
{
    uint64_t need = atomic_load_explicit(&m->need, memory_order_relaxed);
    if (avail >= (need < size ? need : size) &&
        atomic_exchange(&m->wait, 0) != 0) {
        atomic_fetch_add(&m->seq, 1);
        mproc__waitword_wake_raw(&m->seq, INT_MAX);
    }
}

void mproc__rec_wake_room_all(mproc__rec_ring *r)
{
    mproc__rec_room *m = &r->s->room;
    atomic_store(&m->wait, 0);
    atomic_fetch_add(&m->seq, 1);
    mproc__waitword_wake_raw(&m->seq, INT_MAX);
}

/* ------------------------------------------------------------ waking */

void mproc__rec_wake_all(_Atomic uint32_t *w)
{
    mproc__os_futex_wake((const uint32_t *)w, INT_MAX);
}

void mproc__rec_raise(mproc__rec_shared *s, _Atomic uint32_t *flag)
{
    atomic_store(flag, (atomic_fetch_add(&s->raises, 1) << 1) | 1u);
}

/* After a sequentially consistent fence: true when a sleeper's flag was
 * up and this caller took it down (and so must wake it). */
static bool take_flag(_Atomic uint32_t *flag)
{
    uint32_t tok = atomic_load_explicit(flag, memory_order_relaxed);
    return tok != 0 && atomic_compare_exchange_strong(flag, &tok, 0);
}

void mproc__rec_wake_consumers(mproc__rec_ring *r)
{
    mproc__rec_shared *s = r->s;
    atomic_thread_fence(memory_order_seq_cst);
    if (take_flag(&s->data_wait)) {
        atomic_store_explicit(&s->wake_ns, mproc__os_monotonic_ns(),
                              memory_order_relaxed);
        if (r->hooks != NULL && r->hooks->wake != NULL)
            r->hooks->wake(r->arg);
        else
            mproc__rec_wake_all(mproc__rec_lo32(&s->head));
    }
}

/* After taking or freeing, and a sequentially consistent fence (which
 * pairs with the sleeper's store of its flag): wakes a producer that waits
 * for what is now there. */
static void wake_producer_fenced(mproc__rec_ring *r)
{
    mproc__rec_shared *s = r->s;
    if (!room_waited(&s->room))
        return;
    /* Not while freeing all that is taken could not make the room it
     * waits for (room_wake): a consumer taking one message at a time
     * would otherwise free after every take, against the waiting
     * producer's own frees (one tlock, one tail). */
    uint32_t hp =
        mproc__rec_pos(atomic_load_explicit(&s->head, memory_order_relaxed));
    uint32_t in_use =
        hp - mproc__rec_pos(atomic_load_explicit(&s->rd, memory_order_relaxed));
    uint32_t need = atomic_load_explicit(&s->room.need, memory_order_relaxed);
    if (in_use <= r->cap && r->cap - in_use < (need < r->cap ? need : r->cap))
        return;
    /* Consumers free lazily (lazy_free): what the sleeper waits for may
     * be taken and not yet freed. */
    mproc__rec_free(r, false);
    uint64_t h = atomic_load_explicit(&s->head, memory_order_relaxed);
    uint32_t t = atomic_load_explicit(&s->tail, memory_order_relaxed);
    uint32_t used = mproc__rec_pos(h) - t;
    bool slot =
        r->maxsize == 0 ||
        mproc__rec_count(
            h, atomic_load_explicit(&s->rd, memory_order_relaxed)) < r->maxsize;
    if (used <= r->cap && slot)
        room_wake(&s->room, r->cap - used, r->cap);
}

void mproc__rec_wake_producer(mproc__rec_ring *r)
{
    atomic_thread_fence(memory_order_seq_cst);
    wake_producer_fenced(r);
}

static void wake_emptied_fenced(mproc__rec_shared *s)
{
    if (atomic_load_explicit(&s->empty_wait, memory_order_relaxed) != 0 &&
        mproc__rec_count(atomic_load(&s->head), atomic_load(&s->rd)) == 0 &&
        take_flag(&s->empty_wait))
        mproc__rec_wake_all(mproc__rec_lo32(&s->rd));
}

void mproc__rec_wake_emptied(mproc__rec_ring *r)
{
    atomic_thread_fence(memory_order_seq_cst);
    wake_emptied_fenced(r->s);
}

void mproc__rec_wake_after_take(mproc__rec_ring *r)
{
    atomic_thread_fence(memory_order_seq_cst);
    wake_producer_fenced(r);
    wake_emptied_fenced(r->s);
}

void mproc__rec_shutdown(mproc__rec_ring *r)
{
    mproc__rec_shared *s = r->s;
    atomic_store(&s->closed, 1);
    /* Everyone who sleeps wakes and sees it. */
    atomic_store(&s->data_wait, 0);
    mproc__rec_wake_all(mproc__rec_lo32(&s->head));
    mproc__rec_wake_room_all(r);
    atomic_store(&s->empty_wait, 0);
    mproc__rec_wake_all(mproc__rec_lo32(&s->rd));
}

typedef struct word_arg {
    _Atomic uint32_t *w;
    uint32_t expected;
} word_arg;

static bool word_moved(void *arg)
{
    word_arg *a = arg;
    return atomic_load_explicit(a->w, memory_order_acquire) != a->expected;
}

/* How long a consumer spins before it sleeps; a test hook sets it. */
static atomic_int_least64_t consumer_spin_ns = -1; /* -1: the spin budget */

void mproc__rec_set_consumer_spin(int64_t ns)
{
    atomic_store(&consumer_spin_ns, ns >= 0 ? ns : -1);
}

static atomic_uint_least64_t rescued;

uint64_t mproc__rec_rescued(void)
{
    return atomic_load(&rescued);
}

/* Spins while *w == expected, for at most the spin budget (or, with
 * consumer, what the test hook says). */
static bool spin_while(_Atomic uint32_t *w, uint32_t expected, bool consumer)
{
    int64_t budget =
        consumer ? atomic_load_explicit(&consumer_spin_ns, memory_order_relaxed)
                 : -1;
    if (budget < 0)
        budget = mproc__spin_budget_ns();
    word_arg a = {w, expected};
    return budget > 0 && mproc__spin_until(word_moved, &a, budget);
}

/* -------------------------------------------------------------- tail */

/* Whether the record at pos, marked borrowed, holds its memory. */
static bool held(mproc__rec_ring *r, uint32_t pos, const mproc__rec *rec)
{
    return r->hooks == NULL || r->hooks->held == NULL ||
           r->hooks->held(r->arg, pos, rec);
}

static bool reap(mproc__rec_ring *r)
{
    return r->hooks != NULL && r->hooks->reap != NULL && r->hooks->reap(r->arg);
}

void mproc__rec_free(mproc__rec_ring *r, bool with_reap)
{
    mproc__rec_shared *s = r->s;
    /* One mover at a time (and a busy lock means another is moving it, so
     * this one need not): a mover reads record headers between tail and
     * rd, which a producer may overwrite as soon as tail has passed them,
     * so tail must not move under a reader. A mover killed holding the
     * lock is taken over by the next (nothing to repair: tail is one
     * store). */
    mproc__deadline now;
    mproc__deadline_init(&now, 0);
    int rc = mproc__lockword_acquire_fast(&s->tlock, &now);
    if (rc == MPROC_EOWNERDEAD)
        rc = mproc__lockword_consistent(&s->tlock);
    if (rc != 0)
        return;
    uint32_t t = atomic_load_explicit(&s->tail, memory_order_acquire);
    uint32_t rd =
        mproc__rec_pos(atomic_load_explicit(&s->rd, memory_order_acquire));
    uint32_t nt = t;
    bool moved = false;
    if (mproc__rec_span_ok(r, t, rd)) { /* else scribbled: callers report */
        bool reaped = false;
        while (nt != rd) {
            uint32_t kind, len;
            uint32_t size = mproc__rec_size(r, nt, rd - nt, &kind, &len);
            if (size == 0)
                break; /* scribbled: the consumers report it */
            mproc__rec *rec = mproc__rec_at(r, nt);
            if (atomic_load_explicit(&rec->state, memory_order_acquire) ==
                    MPROC__REC_BORROWED &&
                held(r, nt, rec)) {
                if (!with_reap || reaped || !reap(r))
                    break;
                reaped = true;
                continue; /* look at it again */
            }
            nt += size;
        }
        if (nt != t) {
            atomic_store_explicit(&s->tail, nt, memory_order_release);
            moved = true;
        }
    }
    mproc__lockword_release_fast(&s->tlock);
    if (moved)
        mproc__rec_wake_producer(r);
}

void mproc__rec_lazy_free(mproc__rec_ring *r)
{
    /* Moving tail after every take costs a compare-and-swap on a line
     * producers read; a producer short of room frees for itself
     * (wait_room), and one asleep for room is freed for before it is woken
     * (wake_producer_fenced). */
    uint32_t t = atomic_load_explicit(&r->s->tail, memory_order_relaxed);
    if (mproc__rec_pos(r->c_rd) - t >= r->cap / 8u)
        mproc__rec_free(r, false);
}

/* --------------------------------------------------------- producers */

static int write_abort(mproc__rec_ring *r, const mproc__deadline *d);

int mproc__rec_plock(mproc__rec_ring *r, const mproc__deadline *d)
{
    mproc__rec_shared *s = r->s;
    int rc = mproc__lockword_acquire_fast(&s->plock, d);
    if (rc == MPROC_EOWNERDEAD) {
        mproc__lockword_consistent(&s->plock);
        /* It may have died between publishing and waking. */
        mproc__rec_wake_consumers(r);
        rc = 0;
    }
    if (rc < 0)
        return rc == MPROC_ENOTRECOVERABLE ? MPROC_EPROTO : rc;
    if (atomic_load_explicit(&s->pinside, memory_order_relaxed) != 0) {
        /* After shutdown the caller's call fails whatever happens here:
         * one try, and a consumer writes the abort if there is no room. */
        bool closed = atomic_load(&s->closed) != 0;
        mproc__deadline now;
        mproc__deadline_init(&now, 0);
        rc = write_abort(r, closed ? &now : d);
        if (rc < 0 && !closed) {
            mproc__lockword_release_fast(&s->plock);
            return rc;
        }
    }
    return 0;
}

void mproc__rec_punlock(mproc__rec_ring *r)
{
    mproc__lockword_release_fast(&r->s->plock);
}

/* Whether need bytes after the producers' position h are free (and, with
 * slot, a message slot): 1, 0, or MPROC_EPROTO for words that make no
 * sense. */
static int room_for(mproc__rec_ring *r, uint64_t h, uint32_t need, bool slot)
{
    mproc__rec_shared *s = r->s;
    uint32_t t = atomic_load(&s->tail);
    uint32_t used = mproc__rec_pos(h) - t;
    /* tail <= rd <= head, all 8-aligned, within a ring. */
    if (!mproc__rec_span_ok(r, t, mproc__rec_pos(h)) ||
        mproc__rec_pos(atomic_load(&s->rd)) - t > used)
        return MPROC_EPROTO;
    if (slot) {
        uint32_t n = mproc__rec_count(h, atomic_load(&s->rd));
        if ((r->maxsize != 0 && n >= r->maxsize) || n >= MPROC__REC_COUNT_MAX)
            return 0;
    }
    return r->cap - used >= need;
}

/* A producer asleep for room (see check_room). */
typedef struct room_wait {
    mproc__rec_ring *r;
    uint64_t head; /* ours: plock is held */
    uint32_t need;
    bool slot;
} room_wait;

/* While a producer sleeps for room: frees what dead consumers hold, and
 * ends the sleep once the room is there. Consumers wake it only when a
 * quarter of the ring is free (wait_room), which may never happen: a
 * consumer that takes one message and stops may free just enough. */
static int check_room(void *arg)
{
    room_wait *w = arg;
    const mproc__rec_hooks *k = w->r->hooks;
    if (k != NULL && k->room_check != NULL) {
        int rc = k->room_check(w->r->arg);
        if (rc < 0)
            return rc;
    }
    mproc__rec_free(w->r, true);
    return room_for(w->r, w->head, w->need, w->slot) != 0 ? 1 : 0;
}

typedef struct takes_arg {
    _Atomic uint64_t *rd;
    uint32_t from, by;
} takes_arg;

static bool taken_by(void *arg)
{
    takes_arg *a = arg;
    return mproc__rec_pos(atomic_load_explicit(a->rd, memory_order_acquire)) -
               a->from >=
           a->by;
}

/* A producer that found no room, h its position: spins (the spin budget)
 * until the consumers have taken enough that freeing it would give
 * max(need, an eighth of the ring) bytes of room, or any message when
 * bytes are not what is short (a bound in messages). So a full ring is
 * refilled in runs: one record a take would keep both sides on the same
 * lines (rd, tail, tlock) for every message. True when that came, or when
 * the budget ran out after some take (the caller frees it and looks
 * again: a producer that slept then would wait for a wake-up that asks
 * for a quarter of the ring, or for its slice). */
static bool spin_for_takes(mproc__rec_ring *r, uint64_t h, uint32_t need)
{
    takes_arg a = {&r->s->rd, mproc__rec_pos(atomic_load(&r->s->rd)), 1};
    uint32_t want = need > r->cap / 8 ? need : r->cap / 8;
    uint32_t in_use = mproc__rec_pos(h) - a.from;
    if (in_use <= r->cap && want <= r->cap && r->cap - in_use < want)
        a.by = want - (r->cap - in_use);
    int64_t budget = mproc__spin_budget_ns();
    if (budget <= 0)
        return false;
    return mproc__spin_until(taken_by, &a, budget) ||
           mproc__rec_pos(atomic_load(&r->s->rd)) != a.from;
}

/* Under plock: waits until need bytes after the producers' position are
 * free and, with ROOM_SLOT, fewer than maxsize messages are in the ring.
 * 0, MPROC_ETIMEDOUT, MPROC_ECLOSED (not with ROOM_CLOSED), MPROC_EPROTO. */
static int wait_room(mproc__rec_ring *r, uint32_t need, unsigned how,
                     const mproc__deadline *d)
{
    mproc__rec_shared *s = r->s;
    bool slot = (how & MPROC__REC_ROOM_SLOT) != 0;
    bool refuse_closed = (how & MPROC__REC_ROOM_CLOSED) == 0;
    uint64_t h0 = atomic_load_explicit(&s->head, memory_order_relaxed);
    if (h0 == r->p_head) {
        /* By what this view saw last (see p_head): no look at the
         * consumers' lines. */
        uint32_t used = mproc__rec_pos(h0) - r->p_tail;
        uint32_t n = mproc__rec_cnt(h0) - r->p_takes;
        if (used <= r->cap && r->cap - used >= need &&
            (!slot || ((r->maxsize == 0 || n < r->maxsize) &&
                       n < MPROC__REC_COUNT_MAX)) &&
            !(refuse_closed &&
              atomic_load_explicit(&s->closed, memory_order_relaxed) != 0))
            return 0;
    }
    bool spun = false;
    for (;;) {
        uint64_t h = atomic_load_explicit(&s->head, memory_order_relaxed);
        uint32_t t = atomic_load_explicit(&s->tail, memory_order_acquire);
        int room = room_for(r, h, need, slot);
        if (room < 0)
            return room;
        /* Checked sane by room_for: what the fast path above uses next. */
        r->p_head = h;
        r->p_tail = t;
        r->p_takes =
            mproc__rec_cnt(atomic_load_explicit(&s->rd, memory_order_relaxed));
        if (refuse_closed &&
            atomic_load_explicit(&s->closed, memory_order_acquire) != 0)
            return MPROC_ECLOSED;
        if (room)
            return 0;
        /* Consumers free lazily: free what they took before giving up or
         * waiting (an ABORT written with no time to wait needs it). */
        mproc__rec_free(r, false);
        if (atomic_load(&s->tail) != t)
            continue;
        if (mproc__deadline_expired(d))
            return MPROC_ETIMEDOUT;
        if (!spun) {
            /* For consumers to take: they free lazily, this side frees. */
            spun = true;
            if (spin_for_takes(r, h, need))
                continue;
        }
        uint32_t seq = room_raise(&s->room, need, r->cap);
        /* Looked at again after the flag (sequentially consistent): a
         * consumer that freed room before it saw the flag is seen here. */
        if (room_for(r, h, need, slot) != 0 ||
            (refuse_closed && atomic_load(&s->closed) != 0))
            continue;
        room_wait w = {r, h, need, slot};
        int rc = mproc__waitword_sleep(&s->room.seq, seq, d, check_room, &w);
        if (rc < 0 && rc != MPROC_ETIMEDOUT)
            return rc;
    }
}

int mproc__rec_place(mproc__rec_ring *r, uint32_t size, unsigned how,
                     const mproc__deadline *d, uint32_t *pos)
{
    mproc__rec_shared *s = r->s;
    uint32_t h =
        mproc__rec_pos(atomic_load_explicit(&s->head, memory_order_relaxed));
    uint32_t to_end = r->cap - (h & r->mask);
    uint32_t pad = size > to_end ? to_end : 0;
    int rc = wait_room(r, pad + size, how, d);
    if (rc < 0)
        return rc;
    if (pad != 0)
        mproc__rec_put_hdr(r, h, MPROC__REC_PAD, pad - MPROC__REC_HDR);
    *pos = h + pad;
    return 0;
}

void mproc__rec_publish(mproc__rec_ring *r, uint32_t pos, uint32_t dputs)
{
    mproc__rec_shared *s = r->s;
    uint64_t h = atomic_load_explicit(&s->head, memory_order_relaxed);
    r->p_head = mproc__rec_pack(mproc__rec_cnt(h) + dputs, pos);
    atomic_store_explicit(&s->head, r->p_head, memory_order_release);
}

static int write_abort(mproc__rec_ring *r, const mproc__deadline *d)
{
    uint32_t pos;
    /* The abort is owed even after shutdown: consumers drain up to it. */
    int rc =
        mproc__rec_place(r, MPROC__REC_HDR, MPROC__REC_ROOM_CLOSED, d, &pos);
    if (rc < 0)
        return rc;
    mproc__rec_put_hdr(r, pos, MPROC__REC_ABORT, 0);
    mproc__rec_publish(r, pos + MPROC__REC_HDR, 0);
    atomic_store(&r->s->pinside, 0);
    mproc__rec_wake_consumers(r);
    return 0;
}

int mproc__rec_put_whole(mproc__rec_ring *r, uint32_t kind, const void *buf,
                         size_t len, const mproc__deadline *d)
{
    uint32_t size = MPROC__REC_HDR + mproc__rec_round8(len);
    uint32_t pos;
    int rc = mproc__rec_place(r, size, MPROC__REC_ROOM_SLOT, d, &pos);
    if (rc < 0)
        return rc;
    mproc__rec_put_hdr(r, pos, kind, (uint32_t)len);
    if (len > 0)
        memcpy(mproc__rec_at(r, pos) + 1, buf, len);
    mproc__rec_publish(r, pos + size, 1);
    return 0;
}

int mproc__rec_put_stream(mproc__rec_ring *r, const void *buf, size_t len,
                          const mproc__deadline *d)
{
    mproc__rec_shared *s = r->s;
    const unsigned char *src = buf;
    size_t off = 0;
    uint32_t piece = piece_max(r);
    bool first = true;
    int rc = 0;
    while (first || off < len) {
        size_t left = len - off;
        uint32_t n = left < piece ? (uint32_t)left : piece;
        uint32_t plen = first ? n + 8u : n;
        uint32_t size = MPROC__REC_HDR + mproc__rec_round8(plen);
        uint32_t pos;
        rc = mproc__rec_place(r, size, first ? MPROC__REC_ROOM_SLOT : 0u, d,
                              &pos);
        if (rc < 0)
            break;
        uint32_t kind = first            ? MPROC__REC_FIRST
                        : off + n == len ? MPROC__REC_LAST
                                         : MPROC__REC_MID;
        mproc__rec_put_hdr(r, pos, kind, plen);
        unsigned char *dst = (unsigned char *)(mproc__rec_at(r, pos) + 1);
        if (first) {
            uint64_t total = len;
            memcpy(dst, &total, 8);
            dst += 8;
            /* Before the first piece is published: a producer that dies
             * after it owes the consumers an ABORT. */
            atomic_store(&s->pinside, 1);
        }
        memcpy(dst, src + off, n);
        off += n;
        mproc__rec_publish(r, pos + size, first ? 1u : 0u);
        mproc__rec_wake_consumers(r);
        first = false;
    }
    if (rc < 0) {
        if (!first) {
            /* Nobody will finish it: end it now if there is room, else
             * the next holder of plock (or a consumer) will. */
            mproc__deadline now;
            mproc__deadline_init(&now, 0);
            (void)write_abort(r, &now);
        }
        return rc;
    }
    atomic_store(&s->pinside, 0);
    return 0;
}

/* Whether a whole record of size bytes (pad before it) fits at pos, with
 * pending records placed there and not yet published, by what this view
 * saw last of the consumers (head is still h, see mproc__rec_ring). */
static bool batch_fits_seen(const mproc__rec_ring *r, uint64_t h, uint32_t pos,
                            uint32_t pending, uint32_t need)
{
    uint32_t used = pos - r->p_tail;
    uint32_t nq = mproc__rec_cnt(h) + pending - r->p_takes;
    return used <= r->cap && r->cap - used >= need &&
           (r->maxsize == 0 || nq < r->maxsize) && nq < MPROC__REC_COUNT_MAX &&
           atomic_load_explicit(&r->s->closed, memory_order_relaxed) == 0;
}

int mproc__rec_put_batch(mproc__rec_ring *r, const mproc__rec_msg *msgs,
                         size_t n, const mproc__deadline *d, size_t *done)
{
    mproc__rec_shared *s = r->s;
    size_t k = 0;
    int rc = 0;
    uint32_t pos =
        mproc__rec_pos(atomic_load_explicit(&s->head, memory_order_relaxed));
    uint32_t pending = 0;
    for (; k < n && rc == 0; k++) {
        size_t len = msgs[k].len;
        bool whole = len <= mproc__rec_inplace_max(r);
        uint32_t size = MPROC__REC_HDR + mproc__rec_round8(len);
        uint32_t to_end = r->cap - (pos & r->mask);
        uint32_t pad = size > to_end ? to_end : 0;
        uint64_t h = atomic_load_explicit(&s->head, memory_order_relaxed);
        /* By what this view saw last, as a single put (wait_room): no
         * look at the consumers' lines while that says it fits. */
        bool fits = whole && h == r->p_head &&
                    batch_fits_seen(r, h, pos, pending, pad + size);
        if (whole && !fits) {
            uint32_t t = atomic_load_explicit(&s->tail, memory_order_acquire);
            uint32_t used = pos - t;
            uint64_t rd = atomic_load(&s->rd); /* after tail: see room_for */
            /* Anything odd (words scribbled on) goes the slow way, which
             * reports it. */
            if (mproc__rec_span_ok(r, t, pos) &&
                mproc__rec_pos(rd) - t <= used) {
                r->p_head = h;
                r->p_tail = t;
                r->p_takes = mproc__rec_cnt(rd);
                fits = batch_fits_seen(r, h, pos, pending, pad + size);
            }
        }
        if (!fits) {
            if (pending > 0) {
                mproc__rec_publish(r, pos, pending);
                pending = 0;
                mproc__rec_wake_consumers(r);
            }
            rc = whole ? mproc__rec_put_whole(r, MPROC__REC_MSG, msgs[k].data,
                                              len, d)
                       : mproc__rec_put_stream(r, msgs[k].data, len, d);
            if (rc < 0)
                break;
            /* Published: woken now, not after the rest of the batch, which
             * may wait for room only they can make. */
            mproc__rec_wake_consumers(r);
            pos = mproc__rec_pos(
                atomic_load_explicit(&s->head, memory_order_relaxed));
            continue;
        }
        if (pad != 0) {
            mproc__rec_put_hdr(r, pos, MPROC__REC_PAD, pad - MPROC__REC_HDR);
            pos += pad;
        }
        mproc__rec_put_hdr(r, pos, MPROC__REC_MSG, (uint32_t)len);
        if (len > 0)
            memcpy(mproc__rec_at(r, pos) + 1, msgs[k].data, len);
        pos += size;
        pending++;
    }
    if (pending > 0)
        mproc__rec_publish(r, pos, pending);
    *done = k;
    return rc;
}

/* --------------------------------------------------------- consumers */

bool mproc__rec_settle_producer(mproc__rec_ring *r, bool dead)
{
    mproc__rec_shared *s = r->s;
    if (atomic_load(&s->pinside) == 0)
        return false;
    bool got = false, wrote = false;
    if (mproc__lockword_try_fast(&s->plock))
        got = true;
    else if (dead &&
             mproc__lockword_take_if_gone(&s->plock) == MPROC_EOWNERDEAD) {
        mproc__lockword_consistent(&s->plock);
        got = true;
    }
    if (got) {
        if (atomic_load(&s->pinside) != 0) {
            mproc__deadline now;
            mproc__deadline_init(&now, 0);
            wrote = write_abort(r, &now) == 0;
        }
        mproc__lockword_release_fast(&s->plock);
    }
    return wrote;
}

/* While a consumer sleeps for data: a producer that died inside a
 * streamed message owes an ABORT; if its lock is free now (or its holder
 * is gone), write it. And a shutdown ends the sleep (1: look again):
 * shutdown wakes the sleepers but changes no word they sleep on, so one
 * that looked at the flag just before it and slept just after would
 * otherwise sleep to its deadline. */
static int check_data(void *arg)
{
    mproc__rec_ring *r = arg;
    if (atomic_load(&r->s->pinside) == 0)
        return atomic_load(&r->s->closed) != 0 ? 1 : 0;
    (void)mproc__rec_settle_producer(r, true);
    return 0;
}

/* The consumer's sleep through its user's hook: after a slice, what
 * check_data does in a futex sleep; after EOF (no producer can come), the
 * same, then a last look. A slice that no wake-up ended, while a producer
 * published after the raise, let its lock go and left the flag up, is
 * counted for the tests (mproc__rec_rescued): a lost wake-up, which the
 * ordering of publish and raise rules out, or a producer that stopped
 * for a whole slice (50 ms or more) in the few instructions between its
 * lock's release and its look at the flag (a pipe's sender wakes after
 * the release: mproc__ring_unlock). */
static int hook_sleep(mproc__rec_ring *r, uint32_t rp, const mproc__deadline *d)
{
    mproc__rec_shared *s = r->s;
    int rc = r->hooks->sleep(r->arg, d);
    if (rc == 1) {
        if (mproc__rec_pos(atomic_load(&s->head)) != rp &&
            atomic_load(&s->data_wait) != 0 && atomic_load(&s->plock.word) == 0)
            atomic_fetch_add(&rescued, 1);
        rc = 0;
    }
    if (rc == 0 || rc == MPROC_ECLOSED) {
        if (mproc__rec_pos(atomic_load(&r->s->head)) == rp)
            (void)mproc__rec_settle_producer(r, true);
        if (rc == MPROC_ECLOSED &&
            mproc__rec_pos(atomic_load(&r->s->head)) != rp)
            rc = 0; /* delivered first, then EOF */
    }
    return rc;
}

int mproc__rec_wait_data(mproc__rec_ring *r, const mproc__deadline *d)
{
    mproc__rec_shared *s = r->s;
    uint64_t rd = atomic_load_explicit(&s->rd, memory_order_relaxed);
    uint32_t rp = mproc__rec_pos(rd);
    if (rd == r->c_rd && r->c_head != rp &&
        mproc__rec_span_ok(r, rp, r->c_head))
        return 0; /* published when this view last looked (see c_rd) */
    bool spun = false;
    for (;;) {
        uint64_t h = atomic_load_explicit(&s->head, memory_order_acquire);
        r->c_head = mproc__rec_pos(h);
        r->c_rd = rd;
        if (mproc__rec_pos(h) != rp)
            return 0;
        if (atomic_load_explicit(&s->closed, memory_order_acquire) != 0 &&
            atomic_load(&s->pinside) == 0)
            return MPROC_ECLOSED;
        if (mproc__deadline_expired(d))
            return MPROC_ETIMEDOUT;
        if (!spun) {
            spun = true;
            if (spin_while(mproc__rec_lo32(&s->head), mproc__rec_pos(h), true))
                continue;
        }
        mproc__rec_raise(s, &s->data_wait);
        h = atomic_load(&s->head); /* after the flag: see wake_consumers */
        if (mproc__rec_pos(h) != rp)
            continue;
        /* Shut down: done, unless a streamed message's end is still owed.
         * Then sleep like any other wait: its producer writes the ABORT
         * (publishing wakes us), or check_data does once it is dead; a
         * loop here would never call check_data. */
        if (atomic_load(&s->closed) != 0 && atomic_load(&s->pinside) == 0)
            continue;
        int64_t slept_at = mproc__os_monotonic_ns();
        int rc =
            r->hooks != NULL && r->hooks->sleep != NULL
                ? hook_sleep(r, rp, d)
                : mproc__waitword_sleep(mproc__rec_lo32(&s->head),
                                        mproc__rec_pos(h), d, check_data, r);
        if (rc == 0 && mproc__rec_pos(atomic_load(&s->head)) != rp) {
            /* Woken by a producer that stamped after we slept: what a
             * wake-up costs here, for the spin budget. */
            int64_t w = atomic_load_explicit(&s->wake_ns, memory_order_relaxed);
            if (w >= slept_at)
                mproc__spin_note_wake(w, mproc__os_monotonic_ns());
        }
        if (rc < 0 && rc != MPROC_ETIMEDOUT)
            return rc;
    }
}

int mproc__rec_clock(mproc__rec_ring *r, const mproc__deadline *d)
{
    mproc__rec_shared *s = r->s;
    int rc = mproc__lockword_acquire_fast(&s->clock, d);
    if (rc == MPROC_EOWNERDEAD) {
        uint64_t rd = atomic_load(&s->rd);
        uint64_t h = atomic_load(&s->head);
        if (mproc__rec_pos(h) != mproc__rec_pos(rd) &&
            mproc__rec_span_ok(r, mproc__rec_pos(rd), mproc__rec_pos(h)))
            atomic_store(&mproc__rec_at(r, mproc__rec_pos(rd))->state, 0);
        if (r->hooks != NULL && r->hooks->consumer_died != NULL)
            r->hooks->consumer_died(r->arg, rd);
        mproc__lockword_consistent(&s->clock);
        rc = 0;
    }
    if (rc < 0)
        return rc == MPROC_ENOTRECOVERABLE ? MPROC_EPROTO : rc;
    return 0;
}

void mproc__rec_cunlock(mproc__rec_ring *r)
{
    mproc__lockword_release_fast(&r->s->clock);
}

void mproc__rec_consume(mproc__rec_ring *r, uint32_t size, uint32_t takes)
{
    mproc__rec_shared *s = r->s;
    uint64_t rd = atomic_load_explicit(&s->rd, memory_order_relaxed);
    r->c_rd =
        mproc__rec_pack(mproc__rec_cnt(rd) + takes, mproc__rec_pos(rd) + size);
    atomic_store_explicit(&s->rd, r->c_rd, memory_order_release);
}

int mproc__rec_next(mproc__rec_ring *r, const mproc__deadline *d,
                    mproc__rec_found *f)
{
    mproc__rec_shared *s = r->s;
    for (;;) {
        int rc = mproc__rec_wait_data(r, d);
        if (rc < 0)
            return rc;
        uint32_t rp =
            mproc__rec_pos(atomic_load_explicit(&s->rd, memory_order_relaxed));
        uint32_t h = r->c_head; /* head as wait_data saw it */
        if (!mproc__rec_span_ok(r, rp, h))
            return MPROC_EPROTO;
        uint32_t size = mproc__rec_size(r, rp, h - rp, &f->kind, &f->len);
        if (size == 0)
            return MPROC_EPROTO;
        f->pos = rp;
        f->size = size;
        if (f->kind == MPROC__REC_MSG || f->kind == MPROC__REC_FIRST ||
            f->kind == MPROC__REC_FDS)
            return 0;
        /* PAD, or MID/LAST/ABORT of a message whose reader died. */
        mproc__rec_consume(r, size, 0);
        mproc__rec_lazy_free(r);
    }
}

int mproc__rec_skip_aborted(mproc__rec_ring *r, uint32_t from, bool dead)
{
    mproc__rec_shared *s = r->s;
    for (int round = 0;; round++) {
        uint32_t rp =
            mproc__rec_pos(atomic_load_explicit(&s->rd, memory_order_relaxed));
        uint32_t h = mproc__rec_pos(
            atomic_load_explicit(&s->head, memory_order_acquire));
        if (!mproc__rec_span_ok(r, rp, h) || from - rp > h - rp)
            return MPROC_EPROTO;
        /* The message's pieces follow one another (its producer holds the
         * lock from the first to the last), PADs aside. */
        for (uint32_t p = from; p != h;) {
            uint32_t kind, len;
            uint32_t size = mproc__rec_size(r, p, h - p, &kind, &len);
            if (size == 0)
                return MPROC_EPROTO;
            if (kind == MPROC__REC_LAST)
                return 0;
            if (kind == MPROC__REC_ABORT) {
                /* With the FIRST piece, when it is still there: its take. */
                mproc__rec_consume(r, p + size - rp, from != rp ? 1u : 0u);
                mproc__rec_lazy_free(r);
                mproc__rec_wake_producer(r);
                return 1;
            }
            if (kind != MPROC__REC_MID && kind != MPROC__REC_PAD)
                return MPROC_EPROTO;
            p += size;
        }
        /* Not ended yet: by a producer that gave up or died, never. */
        if (round > 0 || !mproc__rec_settle_producer(r, dead))
            return 0;
    }
}

uint64_t mproc__rec_stream_total(const mproc__rec_ring *r,
                                 const mproc__rec_found *f)
{
    uint64_t total;
    memcpy(&total, mproc__rec_at(r, f->pos) + 1, 8);
    return total;
}

int mproc__rec_read_stream(mproc__rec_ring *r, unsigned char *dst,
                           uint64_t total, uint64_t *got,
                           const mproc__deadline *d)
{
    mproc__rec_shared *s = r->s;
    while (*got < total) {
        int rc = mproc__rec_wait_data(r, d);
        if (rc == MPROC_ECLOSED)
            rc = MPROC_EPROTO; /* shut down with an end owed: cannot be */
        if (rc < 0)
            return rc;
        uint32_t rp =
            mproc__rec_pos(atomic_load_explicit(&s->rd, memory_order_relaxed));
        uint32_t h = mproc__rec_pos(
            atomic_load_explicit(&s->head, memory_order_acquire));
        uint32_t kind, len;
        uint32_t size = mproc__rec_span_ok(r, rp, h)
                            ? mproc__rec_size(r, rp, h - rp, &kind, &len)
                            : 0;
        if (size == 0)
            return MPROC_EPROTO;
        if (kind == MPROC__REC_PAD) {
            mproc__rec_consume(r, size, 0);
            mproc__rec_lazy_free(r);
            continue;
        }
        if (kind == MPROC__REC_ABORT) {
            mproc__rec_consume(r, size, 0);
            mproc__rec_lazy_free(r);
            return MPROC_ECANCELED;
        }
        if ((kind != MPROC__REC_MID && kind != MPROC__REC_LAST) ||
            len > total - *got ||
            (kind == MPROC__REC_LAST && *got + len != total))
            return MPROC_EPROTO;
        memcpy(dst + *got, mproc__rec_at(r, rp) + 1, len);
        *got += len;
        mproc__rec_consume(r, size, 0);
        mproc__rec_lazy_free(r);
        mproc__rec_wake_producer(r); /* the streaming producer waits */
    }
    return 0;
}
