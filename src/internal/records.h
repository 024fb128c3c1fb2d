/*
 * records: the ring of records in shared memory that queues carry their
 * messages on, with a robust producers' lock and a robust consumers' lock,
 * so one producer and one consumer work in parallel and any process may
 * die at any instruction. A record is an 8-byte header at an 8-byte
 * aligned position and its payload padded to 8; it never wraps around the
 * end of the ring (a PAD record fills the rest first), so a consumer may
 * read or hold it in place. A message up to half the ring travels in one
 * record published with one store; a larger one streams in pieces (FIRST,
 * MID..., LAST), and one whose producer stops half way is ended by an
 * ABORT record that its producer, the next holder of the producers' lock,
 * or a consumer writes.
 *
 * The layout and the recovery rules are in docs/queue.md. What a user of
 * the ring adds on top (a queue's per-process slots and task counts, which
 * records a consumer holds in place) it tells the ring through hooks.
 */
#ifndef MPROC_INTERNAL_RECORDS_H
#define MPROC_INTERNAL_RECORDS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal/deadline.h"
#include "internal/lockcore.h"
#include "mproc/error.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the futex words are the low halves of 64-bit words: little-endian only"
#endif

#define MPROC__REC_HDR 8u
enum {
    MPROC__REC_MSG = 1,   /* a whole message */
    MPROC__REC_PAD = 2,   /* nothing: skip to the end of the ring */
    MPROC__REC_FIRST = 3, /* the first piece of a streamed message: u64
                             total, then data */
    MPROC__REC_MID = 4,   /* a middle piece */
    MPROC__REC_LAST = 5,  /* the last piece */
    MPROC__REC_ABORT = 6, /* the streamed message being read is dropped */
    MPROC__REC_FDS = 7    /* a whole message that names fds passed beside
                             the ring (pipes) */
};
/* The state byte of a record: 0 while unread or once free to reuse,
 * BORROWED once a consumer took it in place (whether the mark still holds
 * the memory is the held hook's to say). */
#define MPROC__REC_BORROWED 1u
/* Messages in a ring at most (the counts are 32 bits). */
#define MPROC__REC_COUNT_MAX 0x7fffffffu

typedef struct mproc__rec {
    uint32_t len;
    uint8_t kind;
    _Atomic uint8_t state;
    uint16_t owner; /* BORROWED: whose (the user's index); before state */
} mproc__rec;

/*
 * Room: how a producer short of room sleeps and the consumer that frees it
 * wakes it. The producer raises wait with the bytes it wants, looks at the
 * room once more (sequentially consistent, pairing with the consumer's
 * fence), and sleeps on seq in slices; the consumer that freed bytes,
 * after a fence, takes wait down only once what is free reaches need,
 * bumps seq and wakes. Asking for a quarter of the ring (or the record, if
 * more) wakes early enough that the ring never runs dry while the producer
 * sleeps and late enough that one wake-up moves many small messages.
 */
typedef struct mproc__rec_room {
    _Atomic uint32_t wait; /* a producer sleeps on seq */
    _Atomic uint32_t seq;
    _Atomic uint32_t need; /* the bytes it waits for */
} mproc__rec_room;

/*
 * The shared words (768 bytes, offsets relative to the struct; each group
 * that one side writes on a 128-byte line of its own; the padding is
 * explicit because a user may place it where no more than 8-byte
 * alignment is known). Positions are byte counters modulo 2^32 (the ring
 * is at most 2^30 bytes, so differences are exact); head and rd carry a
 * message counter in their high halves, so that a count and a position
 * change with one store.
 */
typedef struct mproc__rec_shared {
    /* Producers: written under plock. */
    _Atomic uint64_t head;    /* puts << 32 | position */
    _Atomic uint32_t pinside; /* a streamed message was begun and not ended */
    _Atomic uint32_t closed;
    unsigned char pad1[128 - 16];
    mproc__lockword plock;
    unsigned char pad2[256 - 128 - sizeof(mproc__lockword)];
    /* Consumers: rd under clock; tail under tlock. */
    _Atomic uint64_t rd; /* takes << 32 | position */
    unsigned char pad3[384 - 264];
    mproc__lockword clock;
    unsigned char pad4[512 - 384 - sizeof(mproc__lockword)];
    _Atomic uint32_t tail; /* memory free before this */
    mproc__rec_room room;  /* a producer sleeps for room */
    mproc__lockword tlock; /* whoever moves tail (mproc__rec_free) */
    unsigned char pad5[640 - 528 - sizeof(mproc__lockword)];
    /* Wake flags: set by a sleeper, cleared by the waker that wakes it. */
    _Atomic uint32_t data_wait;  /* someone sleeps on head (a raise token) */
    _Atomic uint32_t empty_wait; /* someone sleeps on rd until empty */
    _Atomic int64_t wake_ns;     /* when a producer last woke sleepers */
    _Atomic uint32_t raises;     /* counts raises: tokens are odd, never 0 */
    unsigned char pad6[768 - 660];
} mproc__rec_shared;

_Static_assert(sizeof(mproc__rec) == MPROC__REC_HDR, "record header");
_Static_assert(offsetof(mproc__rec_shared, plock) == 128, "ring layout");
_Static_assert(offsetof(mproc__rec_shared, rd) == 256, "ring layout");
_Static_assert(offsetof(mproc__rec_shared, clock) == 384, "ring layout");
_Static_assert(offsetof(mproc__rec_shared, tail) == 512, "ring layout");
_Static_assert(offsetof(mproc__rec_shared, room) == 516, "ring layout");
_Static_assert(offsetof(mproc__rec_shared, tlock) == 528, "ring layout");
_Static_assert(offsetof(mproc__rec_shared, data_wait) == 640, "ring layout");
_Static_assert(offsetof(mproc__rec_shared, wake_ns) == 648, "ring layout");
_Static_assert(sizeof(mproc__rec_shared) == 768, "ring layout");

/* What the ring's user knows that the ring does not. */
typedef struct mproc__rec_hooks {
    /* Whether the record at pos, marked BORROWED, still holds its memory
     * (NULL: a mark always does). */
    bool (*held)(void *arg, uint32_t pos, const mproc__rec *rec);
    /* Frees what dead processes hold in place: true when it did (NULL:
     * nobody holds anything). */
    bool (*reap)(void *arg);
    /* The consumers' lock was taken over from a dead holder, rd as it
     * left it (NULL: nothing to settle). */
    void (*consumer_died)(void *arg, uint64_t rd);
    /* A consumer with nothing to take, its flag raised: sleeps until
     * woken (wake), a slice passes, or d. 0 (woken: look again), 1 (a
     * slice passed with no wake-up: look again), MPROC_ETIMEDOUT,
     * MPROC_ECLOSED (no producer can come any more), or another code to
     * stop with (NULL: a futex sleep on head, in slices). */
    int (*sleep)(void *arg, const mproc__deadline *d);
    /* A producer found a consumer's flag raised and took it down: wakes
     * it (NULL: a futex wake on head). */
    void (*wake)(void *arg);
    /* A producer asleep for room, every slice: 0 to go on, or a code to
     * stop with (the consumers are gone) (NULL: go on). */
    int (*room_check)(void *arg);
} mproc__rec_hooks;

/*
 * One process's view of a ring: the shared words, the data, the constants
 * as checked when the ring was mapped (never read from shared memory
 * again), and what this view last saw of the other side, so that a put or
 * get that finds room or data by it reads no line the other side writes.
 * Those are valid only while nobody on this view's own side moved since: a
 * producer's p_tail and p_takes while head is still p_head (it was the
 * last to publish, or looked then), a consumer's c_head while rd is still
 * c_rd. Within that, stale values only understate room and data (the words
 * only grow), and the words are read again before any wait.
 */
typedef struct mproc__rec_ring {
    mproc__rec_shared *s;
    unsigned char *data;
    uint32_t cap, mask; /* data bytes (a power of two), cap - 1 */
    uint32_t maxsize;   /* bound in messages; 0: none */
    uint64_t p_head, c_rd;
    uint32_t p_tail, p_takes, c_head;
    const mproc__rec_hooks *hooks;
    void *arg;
} mproc__rec_ring;

/* Sets up the shared words of a new ring (zeroed memory). */
void mproc__rec_init(mproc__rec_shared *s);

/* A view of the ring at s with cap data bytes at data (checked by the
 * caller). Writes nothing shared. */
void mproc__rec_view(mproc__rec_ring *r, mproc__rec_shared *s,
                     unsigned char *data, uint32_t cap, uint32_t maxsize,
                     const mproc__rec_hooks *hooks, void *arg);

/* ----- positions and records ----- */

static inline _Atomic uint32_t *mproc__rec_lo32(_Atomic uint64_t *w)
{
    return (_Atomic uint32_t *)(void *)w;
}
static inline uint32_t mproc__rec_pos(uint64_t w)
{
    return (uint32_t)w;
}
static inline uint32_t mproc__rec_cnt(uint64_t w)
{
    return (uint32_t)(w >> 32);
}
static inline uint64_t mproc__rec_pack(uint32_t cnt, uint32_t pos)
{
    return (uint64_t)cnt << 32 | pos;
}
static inline uint32_t mproc__rec_round8(uint64_t n)
{
    return (uint32_t)((n + 7u) & ~(uint64_t)7u);
}
/* Messages in the ring by a head and an rd. */
static inline uint32_t mproc__rec_count(uint64_t head, uint64_t rd)
{
    return mproc__rec_cnt(head) - mproc__rec_cnt(rd);
}

/* The record header at pos (8-aligned, as every position the ring writes
 * is). */
static inline mproc__rec *mproc__rec_at(const mproc__rec_ring *r, uint32_t pos)
{
    return (mproc__rec *)(void *)(r->data + (pos & r->mask));
}

/* The largest payload of a record that travels whole: a record of up to
 * half the ring always fits once the ring drains, whatever padding the end
 * of the ring needs before it. */
static inline uint32_t mproc__rec_inplace_max(const mproc__rec_ring *r)
{
    return r->cap / 2u - MPROC__REC_HDR;
}

/* Whether consumers may read from rd to h: both 8-aligned and at most a
 * ring apart. False only for words scribbled on. */
static inline bool mproc__rec_span_ok(const mproc__rec_ring *r, uint32_t rd,
                                      uint32_t h)
{
    return ((rd | h) & 7u) == 0 && h - rd <= r->cap;
}

/* The size in the ring of the record at pos, validated against the bytes
 * known to follow it (avail) and the end of the ring: 0 for garbage. */
uint32_t mproc__rec_size(const mproc__rec_ring *r, uint32_t pos, uint32_t avail,
                         uint32_t *kind, uint32_t *len);

/* Writes a record header at pos (not published). */
void mproc__rec_put_hdr(mproc__rec_ring *r, uint32_t pos, uint32_t kind,
                        uint32_t len);

/* ----- waking ----- */

/* A sleeper raises its flag (data_wait or empty_wait) with a token no
 * raise before it used; a waker clears only the token it saw, then
 * wakes, so a delayed waker cannot clear a later raise of the same
 * sleeper. Sequentially consistent. */
void mproc__rec_raise(mproc__rec_shared *s, _Atomic uint32_t *flag);

/* Wakes every sleeper on w. */
void mproc__rec_wake_all(_Atomic uint32_t *w);

/* After publishing: wakes whoever sleeps on head. */
void mproc__rec_wake_consumers(mproc__rec_ring *r);

/* After freeing room: wakes a producer that waits for what is now there
 * (bytes, or a message slot under maxsize). */
void mproc__rec_wake_producer(mproc__rec_ring *r);

/* After a take: wakes a sleeper waiting for the ring to empty. */
void mproc__rec_wake_emptied(mproc__rec_ring *r);

/* After a take: both of the above with one fence. */
void mproc__rec_wake_after_take(mproc__rec_ring *r);

/* Wakes a producer asleep for room whatever it waits for (the consumers
 * gave up on the ring). */
void mproc__rec_wake_room_all(mproc__rec_ring *r);

/* Shuts the ring down (closed) and wakes everyone who sleeps on it. */
void mproc__rec_shutdown(mproc__rec_ring *r);

/* ----- producers ----- */

/* Takes the producers' lock before d; settles what a dead holder left: an
 * ABORT owed for a streamed message it had begun. 0, MPROC_ETIMEDOUT,
 * MPROC_EPROTO (a lock word that makes no sense), as the lock's acquire
 * otherwise. */
int mproc__rec_plock(mproc__rec_ring *r, const mproc__deadline *d);
void mproc__rec_punlock(mproc__rec_ring *r);

/* What a producer waits for besides bytes (mproc__rec_place). */
#define MPROC__REC_ROOM_SLOT 1u   /* a message slot (below maxsize) */
#define MPROC__REC_ROOM_CLOSED 2u /* even after shutdown (an owed ABORT) */

/* Under plock: makes room for a record of size bytes at the producers'
 * position, with a PAD record first when it would cross the end of the
 * ring (written, not yet published). *pos (out) is where the record goes,
 * written only on success. 0, MPROC_ETIMEDOUT, MPROC_ECLOSED (shut down,
 * unless MPROC__REC_ROOM_CLOSED), MPROC_EPROTO. */
int mproc__rec_place(mproc__rec_ring *r, uint32_t size, unsigned how,
                     const mproc__deadline *d, uint32_t *pos);

/* Under plock: publishes everything written up to pos, with dputs more
 * messages. */
void mproc__rec_publish(mproc__rec_ring *r, uint32_t pos, uint32_t dputs);

/* Under plock: one message of len (<= mproc__rec_inplace_max) bytes in
 * one record of kind (MSG or FDS), published (consumers not yet woken). As
 * place. */
int mproc__rec_put_whole(mproc__rec_ring *r, uint32_t kind, const void *buf,
                         size_t len, const mproc__deadline *d);

/* Under plock: one message in pieces, while consumers take them (each
 * piece wakes them). A put that fails half way ends the message with an
 * ABORT record (or leaves it owed). As place. */
int mproc__rec_put_stream(mproc__rec_ring *r, const void *buf, size_t len,
                          const mproc__deadline *d);

/* A message of a batch (the layout of mproc_queue_msg and mproc_conn_msg). */
typedef struct mproc__rec_msg {
    const void *data;
    size_t len;
} mproc__rec_msg;

/* Under plock: the n messages in order, whole ones written one after
 * another and published together (before any wait for room, and before a
 * streamed one, what is written is published and consumers woken), larger
 * ones streamed. *done (out) counts the messages that went whole. 0 or
 * the first failure, as mproc__rec_put_whole and put_stream. */
int mproc__rec_put_batch(mproc__rec_ring *r, const mproc__rec_msg *msgs,
                         size_t n, const mproc__deadline *d, size_t *done);

/* For a streamed message that will never end: when its producer's lock is
 * free now (or, with dead, its holder is gone: a look at /proc), takes the
 * lock and writes the ABORT it owes, if room allows. Any process. True
 * when it wrote one. */
bool mproc__rec_settle_producer(mproc__rec_ring *r, bool dead);

/* ----- consumers ----- */

/* Takes the consumers' lock before d; after a dead holder, a record it had
 * marked borrowed without moving rd is unmarked (it is delivered again),
 * and the consumer_died hook settles the rest. As mproc__rec_plock. */
int mproc__rec_clock(mproc__rec_ring *r, const mproc__deadline *d);
void mproc__rec_cunlock(mproc__rec_ring *r);

/* A record found at rd: where, its size in the ring, kind and len. */
typedef struct mproc__rec_found {
    uint32_t pos, size, kind, len;
} mproc__rec_found;

/* Under clock: waits until something follows rd (a record) or the ring is
 * shut down with nothing left. 0, MPROC_ETIMEDOUT, MPROC_ECLOSED. */
int mproc__rec_wait_data(mproc__rec_ring *r, const mproc__deadline *d);

/* Under clock: waits for the next message at rd (MSG, FDS or FIRST), skipping
 * padding and what is left of streamed messages whose reader died. 0,
 * MPROC_ETIMEDOUT, MPROC_ECLOSED, MPROC_EPROTO. */
int mproc__rec_next(mproc__rec_ring *r, const mproc__deadline *d,
                    mproc__rec_found *f);

/* Under clock: moves rd past a record of size bytes, counting takes. */
void mproc__rec_consume(mproc__rec_ring *r, uint32_t size, uint32_t takes);

/* Under clock, after moving rd: frees what was taken, lazily (once an
 * eighth of the ring waits to be freed). */
void mproc__rec_lazy_free(mproc__rec_ring *r);

/* Frees the records before rd that nobody holds; with reap, asks the reap
 * hook to free what dead holders hold on the way. Any process, any time. */
void mproc__rec_free(mproc__rec_ring *r, bool reap);

/* Under clock, at a record after rd that belongs to the streamed message
 * being read (from: the position after its FIRST piece, or rd inside it):
 * when the published records show it aborted (an ABORT before its LAST),
 * or it is left begun and mproc__rec_settle_producer (with dead) aborts it,
 * moves rd past the ABORT (1); else 0 (it may still end); MPROC_EPROTO.
 * So that a message that will never end is not reported by its size. */
int mproc__rec_skip_aborted(mproc__rec_ring *r, uint32_t from, bool dead);

/* The total length of the streamed message whose FIRST piece is f. */
uint64_t mproc__rec_stream_total(const mproc__rec_ring *r,
                                 const mproc__rec_found *f);

/* Under clock, with the FIRST piece taken already: reads the rest of a
 * streamed message into dst (total bytes, *got of them there), until it
 * ends (0), is aborted (MPROC_ECANCELED), or d passes (MPROC_ETIMEDOUT,
 * *got says how far it came); MPROC_EPROTO. */
int mproc__rec_read_stream(mproc__rec_ring *r, unsigned char *dst,
                           uint64_t total, uint64_t *got,
                           const mproc__deadline *d);

/* Test hooks: how long a consumer in this process spins before it sleeps,
 * in ns (0: not at all; negative: the spin budget); and how many sleeps
 * through a sleep hook ended by their slice with a wake-up lost (see
 * records.c, hook_sleep), which must stay 0. */
void mproc__rec_set_consumer_spin(int64_t ns);
uint64_t mproc__rec_rescued(void);

#endif
